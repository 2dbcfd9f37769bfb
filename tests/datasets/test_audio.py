"""The cochlea (audio -> spikes), the SHD-layout writer, and the espeak-ng spoken_digits dataset.

Tests that need espeak-ng FAIL in CI (``CI=true``: the CI image installs it) and skip elsewhere with the install
command. Sizes are tiny (32-64 channels, a few voices) so the whole file runs in seconds.
"""

from __future__ import annotations

import os
import shutil

import h5py
import numpy as np
import pytest

from neurosynth.datasets import CorruptFileError, DatasetNotFoundError, load
from neurosynth.datasets.cochlea import (
    Cochlea,
    CochleaConfig,
    encode_wav_files,
    erb_space,
    read_shd_h5,
    read_wav,
    write_shd_h5,
)

FS = 16000


def need_espeak():
    if shutil.which("espeak-ng") is None:
        msg = ("espeak-ng is not installed; install it with: sudo apt-get install -y espeak-ng "
               "(Debian/Ubuntu) or brew install espeak-ng (macOS)")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI must install espeak-ng (apt-get install -y espeak-ng): " + msg)
        pytest.skip(msg)


def tone(f, dur=0.3, fs=FS, amp=0.5, onset=0.1):
    t = np.arange(int(dur * fs)) / fs
    return np.concatenate([np.zeros(int(onset * fs)), amp * np.sin(2 * np.pi * f * t), np.zeros(int(0.1 * fs))])


# ------------------------------------------------------------------ cochlea

def test_erb_space_is_monotone_and_spans_the_range():
    f = erb_space(50, 7000, 700)
    assert f.shape == (700,)
    assert np.all(np.diff(f) > 0)
    assert f[0] == pytest.approx(50) and f[-1] == pytest.approx(7000)
    # ERB spacing: denser (in Hz) at low frequencies
    assert np.diff(f)[0] < np.diff(f)[-1] / 10


def test_tone_spikes_in_the_channels_tuned_to_it():
    """Place coding: a 1 kHz tone drives the units whose centre frequency is near 1 kHz, a 3 kHz tone others."""
    coch = Cochlea(n_channels=64)
    for f in (1000.0, 3000.0):
        t, u = coch(tone(f), FS, seed=0)
        assert len(t) > 20
        best = int(np.argmin(np.abs(coch.cf - f)))
        centre = np.median(u)
        assert abs(centre - best) <= 4, (f, centre, best)
        assert np.all(np.diff(t) >= 0)  # sorted by time
        assert t.min() >= 0.1 - 0.02  # nothing before the onset (no spontaneous firing at this noise level)


def test_spike_times_units_and_duration():
    coch = Cochlea(n_channels=32)
    x = tone(500, dur=0.5)
    t, u = coch(x, FS, seed=1)
    assert u.dtype.kind == "i" and u.min() >= 0 and u.max() < 32
    assert t.max() <= len(x) / FS + 1e-9
    # onset response: the first 50 ms of the tone have a higher rate than its last 50 ms (adaptation)
    on = np.sum((t >= 0.1) & (t < 0.15))
    late = np.sum((t >= 0.55) & (t < 0.6))
    assert on > late


def test_silence_gives_no_spikes_and_level_is_normalised():
    coch = Cochlea(n_channels=32)
    t, _ = coch(np.zeros(8000), FS)
    assert len(t) == 0
    loud, _ = coch(tone(1000, amp=0.5), FS, seed=3)
    quiet, _ = coch(tone(1000, amp=0.005), FS, seed=3)
    assert len(loud) == len(quiet)  # the voiced part is scaled to a fixed RMS


def test_same_seed_same_spikes_and_batch_independence():
    coch = Cochlea(n_channels=32, noise=0.05)
    d1, d2 = coch.cochleagram(tone(800), FS), coch.cochleagram(tone(2000, dur=0.2), FS)
    a = coch.spike_units(d1, seed=5)
    b = coch.spike_units_batch([d2, d1], [9, 5])[1]
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    other = coch.spike_units(d1, seed=6)
    assert not (len(other[0]) == len(a[0]) and np.array_equal(other[0], a[0]))  # the seed matters with noise


def test_resampling_from_other_rates():
    coch = Cochlea(n_channels=32)
    t1, u1 = coch(tone(1000, fs=22050), 22050, seed=0)
    t2, u2 = coch(tone(1000, fs=16000), 16000, seed=0)
    assert abs(len(t1) - len(t2)) <= 0.1 * len(t2)
    assert abs(np.median(u1) - np.median(u2)) <= 1


@pytest.mark.parametrize("bad, match", [
    (np.zeros(0), "no samples"),
    (np.array([0.0, np.nan, 1.0]), "NaN"),
    (np.zeros((2, 3, 4)), "1-D"),
])
def test_bad_audio_raises(bad, match):
    with pytest.raises(ValueError, match=match):
        Cochlea(n_channels=8)(bad, FS)


@pytest.mark.parametrize("kw, match", [
    ({"n_channels": 0}, "n_channels"),
    ({"f_max": 9000.0}, "f_max"),
    ({"dt": 0.33e-3}, "integer"),
])
def test_bad_config_raises(kw, match):
    with pytest.raises(ValueError, match=match):
        CochleaConfig(**kw)


def test_read_wav_errors_name_the_file(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="nope.wav"):
        read_wav(tmp_path / "nope.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"this is not a wav file at all")
    with pytest.raises(CorruptFileError, match="bad.wav"):
        read_wav(bad)


def _write_wav(path, x, fs=FS):
    from scipy.io import wavfile

    wavfile.write(path, fs, (x * 32767).astype(np.int16))


# ------------------------------------------------------------------ SHD layout

def test_shd_layout_is_read_by_the_shd_loader(tmp_path):
    """Files from encode_wav_files have SHD's dtypes and load through load('shd') unchanged."""
    paths = []
    for i, f in enumerate((500, 1500, 3000)):
        paths.append(tmp_path / f"t{i}.wav")
        _write_wav(paths[-1], tone(f))
    out = tmp_path / "data" / "SHD" / "shd_train.h5"
    info = encode_wav_files(paths, out, labels=["low", "mid", "high"], progress=False)
    assert info["keys"] == ["low", "mid", "high"] and info["samples"] == 3
    with h5py.File(out) as f:
        assert h5py.check_vlen_dtype(f["spikes/times"].dtype) == np.float16
        assert h5py.check_vlen_dtype(f["spikes/units"].dtype) == np.uint16
        assert f["labels"].dtype == np.uint16
        assert list(f["labels"][:]) == [0, 1, 2]
        assert "extra/speaker" in f and "extra/keys" in f
    shutil.copy(out, out.with_name("shd_test.h5"))
    ds = load("shd", tmp_path / "data", "train", cache=False)
    assert len(ds) == 3 and ds.classes == ["low", "mid", "high"]
    x, y = ds[2]
    assert tuple(x.shape) == (100, 700) and y == 2
    assert int(x.sum()) == info["spikes"][2]  # every spike inside 1.4 s lands in a bin
    back = read_shd_h5(out)
    assert [len(t) for t in back["times"]] == info["spikes"]


def test_encode_wav_labels_and_errors(tmp_path):
    p = tmp_path / "a.wav"
    _write_wav(p, tone(700))
    info = encode_wav_files([p, p], tmp_path / "o.h5", labels=["3", "1"], progress=False)
    assert info["keys"] == ["0", "1", "2", "3"]
    assert list(read_shd_h5(tmp_path / "o.h5")["labels"]) == [3, 1]
    assert encode_wav_files([p], tmp_path / "u.h5", progress=False)["keys"] == ["unlabelled"]
    with pytest.raises(ValueError, match="one label per file"):
        encode_wav_files([p, p], tmp_path / "x.h5", labels=["a"], progress=False)
    with pytest.raises(ValueError, match="no WAV"):
        encode_wav_files([], tmp_path / "x.h5", progress=False)
    assert not (tmp_path / "x.h5").exists()


def test_write_shd_h5_is_byte_reproducible(tmp_path):
    s = [(np.array([0.1, 0.2]), np.array([3, 4])), (np.zeros(0), np.zeros(0, int))]
    h1 = write_shd_h5(tmp_path / "a.h5", s, [1, 0], ["a", "b"])
    h2 = write_shd_h5(tmp_path / "b.h5", s, [1, 0], ["a", "b"])
    assert h1 == h2


# ------------------------------------------------------------------ spoken_digits (needs espeak-ng)

TINY = {"voices": 2, "channels": 32, "seed": 3}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    need_espeak()
    from neurosynth.datasets.spoken_digits import generate

    root = tmp_path_factory.mktemp("sd")
    from neurosynth.datasets.spoken_digits import SpokenDigitsOptions

    generate(root, SpokenDigitsOptions(**TINY), progress=False)
    return root


def test_spoken_digits_layout_split_and_loading(tiny_root):
    from neurosynth.datasets.spoken_digits import KEYS, file_path

    man = __import__("json").loads((tiny_root / "SpokenDigits" / "spoken_digits.json").read_text())
    assert set(man["voices"]["train"]).isdisjoint(man["voices"]["test"])
    tr, te = read_shd_h5(file_path(tiny_root, "train")), read_shd_h5(file_path(tiny_root, "test"))
    assert sorted(tr["labels"]) == list(range(20)) and sorted(te["labels"]) == list(range(20))
    assert set(tr["speaker"]).isdisjoint(te["speaker"])  # test speakers unseen in training
    assert tr["keys"] == list(KEYS)
    assert all(len(t) > 0 for t in tr["times"])
    assert max(u.max() for u in tr["units"]) < 32
    ds = load("spoken_digits", tiny_root, "test")
    assert len(ds) == 20 and ds.n_classes == 20
    x, y = ds[0]
    assert tuple(x.shape) == (100, 700) and x.sum() > 0 and y == te["labels"][0]


def test_spoken_digits_same_seed_same_hash(tiny_root, tmp_path):
    from neurosynth.datasets.spoken_digits import SpokenDigitsOptions, generate

    a = (tiny_root / "SpokenDigits" / "spoken_digits.json").read_text()
    man = generate(tmp_path, SpokenDigitsOptions(**TINY), progress=False)
    ref = __import__("json").loads(a)
    assert {s: f["sha256"] for s, f in man["files"].items()} == {s: f["sha256"] for s, f in ref["files"].items()}


def test_spoken_digits_corrupt_cache_is_named_and_rebuilt_only_on_request(tiny_root, tmp_path):
    import json

    from neurosynth.datasets.spoken_digits import SpokenDigitsOptions, check, file_path, generate
    from neurosynth.errors import UserError

    shutil.copytree(tiny_root / "SpokenDigits", tmp_path / "SpokenDigits")
    ref = json.loads((tmp_path / "SpokenDigits" / "spoken_digits.json").read_text())
    p = file_path(tmp_path, "train")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])  # truncated
    ok, reason = check(tmp_path)
    assert not ok and "truncated" in reason
    # a reader never rebuilds a user's dataset on its own: it names the file and the command that rebuilds it
    with pytest.raises(DatasetNotFoundError, match="shd_train.h5 is .* bytes but the manifest says .*truncated"):
        load("spoken_digits", tmp_path, "train", **TINY, progress=False)
    assert p.read_bytes() == data[: len(data) // 2]
    generate(tmp_path, SpokenDigitsOptions(**TINY), progress=False)  # explicit, same options: rebuilt
    assert check(tmp_path)[0]
    assert json.loads((tmp_path / "SpokenDigits" / "spoken_digits.json").read_text())["files"] == ref["files"]
    assert sorted(os.listdir(tmp_path)) == ["SpokenDigits"]  # no .partial, .old or .lock left
    # a missing manifest (files of an older, interrupted generation) is refused by readers too
    (tmp_path / "SpokenDigits" / "spoken_digits.json").unlink()
    assert not check(tmp_path)[0]
    with pytest.raises(DatasetNotFoundError, match="incomplete"):
        load("spoken_digits", tmp_path, "train", generate_missing=False)
    with pytest.raises(DatasetNotFoundError, match="does not rebuild a dataset on its own"):
        load("spoken_digits", tmp_path, "train", progress=False)
    generate(tmp_path, SpokenDigitsOptions(**TINY), progress=False)
    # other options than the dataset was generated with: replaced only with force
    with pytest.raises(UserError, match="generated with other options"):
        generate(tmp_path, SpokenDigitsOptions(**{**TINY, "seed": 4}), progress=False)
    assert check(tmp_path, SpokenDigitsOptions(**TINY))[0]
    generate(tmp_path, SpokenDigitsOptions(**{**TINY, "seed": 4}), progress=False, force=True)
    assert check(tmp_path, SpokenDigitsOptions(**{**TINY, "seed": 4}))[0]
    assert not check(tmp_path, SpokenDigitsOptions(**TINY))[0]


def test_spoken_digits_generate_is_atomic(tiny_root, tmp_path, monkeypatch):
    """A generation that fails half-way (here: while encoding the test split) leaves the previous dataset whole
    and nothing else behind."""
    from neurosynth.datasets import spoken_digits as sd

    shutil.copytree(tiny_root / "SpokenDigits", tmp_path / "SpokenDigits")
    before = {q.relative_to(tmp_path): q.read_bytes() for q in sorted(tmp_path.rglob("*")) if q.is_file()}
    real = sd.encode_utterances

    def fail_on_test(utts, config, **kw):
        if kw.get("desc", "").endswith("test"):
            raise OSError(28, "No space left on device")
        return real(utts, config, **kw)

    monkeypatch.setattr(sd, "encode_utterances", fail_on_test)
    with pytest.raises(OSError):
        sd.generate(tmp_path, sd.SpokenDigitsOptions(**{**TINY, "seed": 7}), progress=False, force=True)
    after = {q.relative_to(tmp_path): q.read_bytes() for q in sorted(tmp_path.rglob("*")) if q.is_file()}
    assert after == before and sd.check(tmp_path, sd.SpokenDigitsOptions(**TINY))[0]
    assert sorted(os.listdir(tmp_path)) == ["SpokenDigits"]


def test_spoken_digits_bad_options():
    with pytest.raises(ValueError, match="unknown options"):
        from neurosynth.datasets.spoken_digits import SpokenDigitsOptions

        SpokenDigitsOptions.from_kwargs(colour="red")
    with pytest.raises(ValueError, match="voices"):
        SpokenDigitsOptions(voices=1)
    with pytest.raises(ValueError, match="splits"):
        load("spoken_digits", "/nonexistent", "valid")


# ------------------------------------------------------------------ command line

def _cli(*argv):
    from neurosynth.apps.cli import main

    return main(list(argv))


def test_cli_encode_audio(tmp_path, capsys):
    paths = []
    for i, f in enumerate((400, 2500)):
        paths.append(tmp_path / f"w{i}.wav")
        _write_wav(paths[-1], tone(f))
    out = tmp_path / "d" / "SHD" / "shd_train.h5"
    assert _cli("data", "encode-audio", *map(str, paths), "--out", str(out), "--labels", "1", "0",
                "--no-progress") == 0
    assert "2 samples" in capsys.readouterr().out
    assert list(read_shd_h5(out)["labels"]) == [1, 0]
    # bad input: one error line, exit 2, nothing written
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    assert _cli("data", "encode-audio", str(bad), "--out", str(tmp_path / "x.h5"), "--no-progress") == 2
    assert "bad.wav" in capsys.readouterr().err
    assert _cli("data", "encode-audio", str(paths[0]), "--out", str(tmp_path / "y.h5"), "--labels", "a", "b",
                "--no-progress") == 2
    assert "one label per file" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "y.h5").exists()


def test_cli_info_and_plot_spoken_digits(tiny_root, tmp_path, capsys):
    assert _cli("data", "info", "spoken_digits", "--root", str(tiny_root)) == 0
    out = capsys.readouterr().out
    assert "train: 20 samples" in out and "synthetic speech" in out
    png = tmp_path / "p.png"
    assert _cli("data", "plot", "spoken_digits", "--root", str(tiny_root), "--split", "test", "--index", "1",
                "--out", str(png)) == 0
    assert png.stat().st_size > 10_000
    # info on a folder without the dataset does not generate it
    assert _cli("data", "info", "spoken_digits", "--root", str(tmp_path / "empty")) == 2
    assert "neurosynth data generate spoken_digits" in capsys.readouterr().out
    assert not (tmp_path / "empty" / "SpokenDigits" / "SHD").exists()


def test_energy_cli_reads_train_shd_runs(tmp_path, capsys):
    """`neurosynth energy --model RUN` finds the test inputs of an examples/train_shd.py run (SHD layout)."""
    import importlib.util
    from pathlib import Path

    from neurosynth.datasets.testing import write_fake_shd

    write_fake_shd(tmp_path / "d", 16, 8, 0, max_events=100, informative=True)
    spec = importlib.util.spec_from_file_location(
        "train_shd", Path(__file__).resolve().parents[2] / "examples" / "train_shd.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    run = tmp_path / "run"
    assert mod.main(["--data-root", str(tmp_path / "d"), "--epochs", "1", "--T", "10", "--hidden", "8",
                     "--batch-size", "8", "--arch", "alif", "--out", str(run), "--no-progress"]) == 0
    assert _cli("energy", "--model", str(run), "--no-progress") == 0
    out = capsys.readouterr().out
    assert "SHD-layout test split" in out and "T=10" in out
    assert (run / "energy.json").exists()
