"""The cochlea (audio -> spikes), the SHD-layout writer, and the espeak-ng spoken_digits dataset.

Tests that need espeak-ng FAIL in CI (``CI=true``: the CI image installs it) and skip elsewhere with the install
command. Sizes are tiny (32-64 channels, a few voices) so the whole file runs in seconds.
"""

from __future__ import annotations

import json
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
    """Place coding in SHD's order: a 1 kHz tone drives the units whose best frequency is near 1 kHz, a 3 kHz
    tone units nearer the base (lower unit numbers)."""
    coch = Cochlea(n_channels=64, spont_rate=0.0)
    centres = {}
    for f in (1000.0, 3000.0):
        t, u = coch(tone(f), FS, seed=0)
        assert len(t) > 10  # Lauscher's level: ~100 spikes for a 1 kHz tone over 100 units
        best = int(np.argmin(np.abs(coch.cf - f)))
        centres[f] = np.median(u)
        assert abs(centres[f] - best) <= 4, (f, centres[f], best)
        assert np.all(np.diff(t) >= 0)  # sorted by time
        assert t.min() >= 0.1 - 0.02  # nothing before the onset (no spontaneous firing)
    assert centres[3000.0] < centres[1000.0]


def test_channel_order_and_range_follow_shd():
    """Unit 0 is the base (~20 kHz), unit 699 the apex (~100 Hz); SHD's units 200/400/600 are ~4.5 kHz / 1 kHz /
    221 Hz (Lauscher's map; docs/datasets.md)."""
    from neurosynth.datasets.cochlea import CochleaConfig, channel_frequencies

    cf = channel_frequencies(CochleaConfig())
    assert cf.shape == (700,) and np.all(np.diff(cf) < 0)
    assert 18000 < cf[0] < 23000 and 90 < cf[699] < 115
    for unit, f in ((200, 4500), (400, 1000), (600, 221)):
        assert abs(np.log(cf[unit] / f)) < np.log(1.1), (unit, cf[unit], f)


def test_phase_locking_and_sub_millisecond_times():
    """Spikes lock to the phase of a low tone (vector strength near Lauscher's 0.89 at 500 Hz), not of a high one,
    and their times are continuous, not on the 0.5 ms grid."""
    from neurosynth.datasets.cochlea import vector_strength

    coch = Cochlea(n_channels=100)
    x = tone(500, dur=0.4, fs=48000)
    t, u = coch(x, 48000, seed=0)
    best = np.bincount(u).argmax()
    assert vector_strength(t[u == best], 500.0) > 0.8
    # a 6 kHz tone drives Lauscher's units and ours only weakly (a few spikes per unit, too few to measure a
    # vector strength): a stronger synapse (more spikes; the spike-time stage is the same), no window and no
    # spontaneous spikes, so every spike is the tone's
    loud = Cochlea(n_channels=100, window=False, spont_rate=0.0, weight=20.0)
    t4, u4 = loud(tone(6000, dur=0.4, fs=48000), 48000, seed=0)
    b4 = np.bincount(u4).argmax()
    near = np.abs(u4 - b4) <= 3  # the units around the best one: enough spikes to measure (a few per unit)
    assert near.sum() >= 20
    assert vector_strength(t4[near], 6000.0) < 0.4  # the model's 0.29 at 6 kHz (Lauscher's hair cells: < 0.4)
    frac = (t / coch.config.dt) % 1.0
    assert np.std(frac) > 0.2  # spread over the step, not all on its boundary
    # a unit's spikes stay at least the refractory period apart
    for unit in np.unique(u):
        assert np.all(np.diff(np.sort(t[u == unit])) >= coch.config.refractory - 1e-12)


def test_spike_times_units_and_duration():
    coch = Cochlea(n_channels=32, window=False)
    x = tone(500, dur=0.5)
    t, u = coch(x, FS, seed=1)
    assert u.dtype.kind == "i" and u.min() >= 0 and u.max() < 32
    assert t.max() <= len(x) / FS + 0.01
    # onset response: the first 50 ms of the tone have a higher rate than its last 50 ms (adaptation)
    on = np.sum((t >= 0.1) & (t < 0.15))
    late = np.sum((t >= 0.55) & (t < 0.6))
    assert on > 1.5 * late


def test_silence_gives_no_spikes_and_level_is_normalised():
    t, _ = Cochlea(n_channels=32, spont_rate=0.0)(np.zeros(8000), FS)
    assert len(t) == 0
    # the spontaneous floor (Lauscher's ~1.2 spikes/s per unit) is there without sound
    t, u = Cochlea(n_channels=100, spont_rate=1.2)(np.zeros(48000), 48000, seed=0)
    assert 80 < len(t) < 160 and len(np.unique(u)) > 50
    coch = Cochlea(n_channels=32)
    loud, _ = coch(tone(1000, amp=0.5), FS, seed=3)
    quiet, _ = coch(tone(1000, amp=0.005), FS, seed=3)
    assert len(loud) == len(quiet)  # the input is scaled to a fixed RMS


def test_same_seed_same_spikes_and_batch_independence():
    coch = Cochlea(n_channels=32, noise=0.05)
    w1, w2 = (tone(800), FS), (tone(2000, dur=0.2), FS)
    a = coch.encode_batch([w1], [5])[0]
    b = coch.encode_batch([w2, w1], [9, 5])[1]
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    other = coch(*w1, seed=6)
    assert not (len(other[0]) == len(a[0]) and np.array_equal(other[0], a[0]))  # the seed matters


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
    ({"fs": 16000}, "fs/2"),
    ({"dt": 0.33e-3}, "integer"),
    ({"vs_low": 1.0}, "vs_low"),
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

TINY = {"voices": 3, "per_voice": 1, "channels": 32, "seed": 3}


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
    v = man["voices"]
    assert not set(v["train"]) & set(v["test"]) and not set(v["train"]) & set(v["valid"])
    assert not set(v["valid"]) & set(v["test"])
    tr, te = read_shd_h5(file_path(tiny_root, "train")), read_shd_h5(file_path(tiny_root, "test"))
    va = read_shd_h5(file_path(tiny_root, "valid"))
    assert sorted(tr["labels"]) == list(range(20)) and sorted(te["labels"]) == list(range(20))
    assert sorted(va["labels"]) == list(range(20))
    assert set(tr["speaker"]).isdisjoint(te["speaker"])  # test speakers unseen in training
    assert set(tr["speaker"]).isdisjoint(va["speaker"]) and set(va["speaker"]).isdisjoint(te["speaker"])
    assert len(load("spoken_digits", tiny_root, "valid")) == 20
    assert tr["keys"] == list(KEYS)
    assert all(len(t) > 0 for t in tr["times"])
    assert max(u.max() for u in tr["units"]) < 32
    ds = load("spoken_digits", tiny_root, "test")
    assert len(ds) == 20 and ds.n_classes == 20
    x, y = ds[0]
    assert tuple(x.shape) == (100, 700) and x.sum() > 0 and y == te["labels"][0]


def test_sample_families_follow_the_speaker_ids_and_accuracy_splits_by_them(tiny_root):
    """Each test sample's voice family is the manifest's family of the voice its speaker id names in the file; the
    per-family accuracies weighted by their counts give the overall accuracy."""
    from neurosynth.datasets.spoken_digits import accuracy_by_family, file_path, sample_families

    man = json.loads((tiny_root / "SpokenDigits" / "spoken_digits.json").read_text())
    te = read_shd_h5(file_path(tiny_root, "test"))
    fams = sample_families(tiny_root, "test")
    with h5py.File(file_path(tiny_root, "test"), "r") as f:
        voices = [v.decode() for v in f["extra/meta_info/voice"][()]]
    assert len(fams) == len(te["labels"]) == 20
    assert fams == [man["families"]["test"][voices[s]] for s in te["speaker"]]
    y = np.asarray(te["labels"])
    pred = np.where(np.arange(20) % 3 == 0, (y + 1) % 20, y)  # every third one wrong
    by = accuracy_by_family(pred, y, fams)
    assert sum(d["n"] for d in by.values()) == 20 and list(by) == sorted(set(fams))
    assert sum(d["acc"] * d["n"] for d in by.values()) == pytest.approx((pred == y).sum(), abs=1e-3)
    assert accuracy_by_family(pred, y, [None] * 20) == {}
    with pytest.raises(ValueError, match="one entry per sample"):
        accuracy_by_family(pred, y, fams[:5])


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


def test_spoken_digits_made_by_an_earlier_cochlea_is_not_used(tiny_root, tmp_path):
    """A dataset encoded by the cochlea with other parameters (an earlier version's) fails the check: a reader
    names the rebuild command, an explicit generate rebuilds it."""
    from neurosynth.datasets.spoken_digits import SpokenDigitsOptions, check, generate

    shutil.copytree(tiny_root / "SpokenDigits", tmp_path / "SpokenDigits")
    mp = tmp_path / "SpokenDigits" / "spoken_digits.json"
    man = json.loads(mp.read_text())
    assert check(tmp_path, SpokenDigitsOptions(**TINY))[0]
    man["cochlea"] = {**man["cochlea"], "weight": 4.0, "release_gain": 20.0}  # the parameters before 2026-12-07
    mp.write_text(json.dumps(man))
    ok, reason = check(tmp_path, SpokenDigitsOptions(**TINY))
    assert not ok and "cochlea with other parameters" in reason
    with pytest.raises(DatasetNotFoundError, match="does not rebuild a dataset on its own.*--force"):
        load("spoken_digits", tmp_path, "train", **TINY, progress=False)
    generate(tmp_path, SpokenDigitsOptions(**TINY), progress=False)
    assert check(tmp_path, SpokenDigitsOptions(**TINY))[0]
    assert json.loads(mp.read_text())["files"] == json.loads((tiny_root / "SpokenDigits" / "spoken_digits.json")
                                                             .read_text())["files"]


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
        SpokenDigitsOptions(voices=2)
    with pytest.raises(ValueError, match="valid_fraction"):
        SpokenDigitsOptions(test_fraction=0.5, valid_fraction=0.5)
    with pytest.raises(ValueError, match="splits"):
        load("spoken_digits", "/nonexistent", "dev")


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


# ------------------------------------------------------------------ bad WAV files (header checked first)

def _wav_bytes(rate, channels=1, bits=16, data=b"\x00\x01" * 100):
    import struct

    fmt = struct.pack("<HHIIHH", 1, channels, rate, (rate * channels * bits // 8) & 0xFFFFFFFF,
                      (channels * bits // 8) & 0xFFFF, bits)
    return (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE" + b"fmt "
            + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data)


def _bad_wavs(tmp_path):
    from scipy.io import wavfile

    out = {}
    out["rate0.wav"] = "sample rate of 0 Hz"
    (tmp_path / "rate0.wav").write_bytes(_wav_bytes(0))
    out["rate_huge.wav"] = "sample rate of 4000000000 Hz"
    (tmp_path / "rate_huge.wav").write_bytes(_wav_bytes(4_000_000_000))
    out["long.wav"] = "601 s of audio"  # 601 s at 1 kHz, 8-bit: small on disk, too long
    (tmp_path / "long.wav").write_bytes(_wav_bytes(1000, bits=8, data=b"\x80" * 601_000))
    out["channels.wav"] = "40000 channels"
    (tmp_path / "channels.wav").write_bytes(_wav_bytes(16000, channels=40000))
    out["empty.wav"] = "no audio samples"
    (tmp_path / "empty.wav").write_bytes(_wav_bytes(16000, data=b""))
    x = tone(500).astype(np.float32)
    x[100] = np.nan
    wavfile.write(tmp_path / "nan.wav", FS, x)
    out["nan.wav"] = "NaN or infinite"
    x[100] = np.inf
    wavfile.write(tmp_path / "inf.wav", FS, x)
    out["inf.wav"] = "NaN or infinite"
    wavfile.write(tmp_path / "silent.wav", FS, np.zeros(8000, np.int16))
    out["silent.wav"] = "silent"
    return out


def test_bad_wav_files_raise_naming_the_file(tmp_path):
    from neurosynth.datasets.cochlea import wav_header

    for name, match in _bad_wavs(tmp_path).items():
        with pytest.raises(CorruptFileError, match=match) as e:
            read_wav(tmp_path / name)
        assert name in str(e.value)
    ok = tmp_path / "ok.wav"
    _write_wav(ok, tone(500))
    h = wav_header(ok)
    assert (h.rate, h.channels, h.bits) == (FS, 1, 16) and h.frames == len(tone(500))


def test_absurd_header_is_rejected_before_reading_samples(tmp_path, monkeypatch):
    """The header decides: scipy's reader (which allocates the samples) is never called for a bad header."""
    from scipy.io import wavfile

    def boom(*a, **k):
        raise AssertionError("samples read before the header was checked")

    monkeypatch.setattr(wavfile, "read", boom)
    (tmp_path / "r.wav").write_bytes(_wav_bytes(4_000_000_000))
    with pytest.raises(CorruptFileError, match="sample rate"):
        read_wav(tmp_path / "r.wav")
    # a good file first and a bad one second: the bad header stops encode_wav_files before any encoding
    _write_wav(tmp_path / "ok.wav", tone(500))
    with pytest.raises(CorruptFileError, match="r.wav"):
        encode_wav_files([tmp_path / "ok.wav", tmp_path / "r.wav"], tmp_path / "o.h5", progress=False)
    assert not (tmp_path / "o.h5").exists()


@pytest.mark.parametrize("fs", [0, -1, 10, 1e9, float("nan")])
def test_array_with_absurd_rate_raises(fs):
    with pytest.raises(ValueError, match="sample rate"):
        Cochlea(n_channels=8)(np.ones(100), fs)


def test_cli_encode_audio_bad_wavs_one_error_line_exit_2(tmp_path, capsys):
    for name, match in _bad_wavs(tmp_path).items():
        out = tmp_path / f"{name}.h5"
        assert _cli("data", "encode-audio", str(tmp_path / name), "--out", str(out), "--no-progress") == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and name in err[0] and match in err[0], err
        assert not out.exists() and not list(tmp_path.glob(f"{name}.h5*"))


# ------------------------------------------------------------------ fair splits

def _fake_variants():
    fam = {}
    for i in range(2):
        fam[f"whisper{i}"] = "whispered"
    for i in range(8):
        fam[f"klatt{i}"] = "klatt"
    for i in range(20):
        fam[f"f{i}"] = "female"
    for i in range(40):
        fam[f"m{i}"] = "male"
    for i in range(27):
        fam[f"u{i}"] = "unspecified"
    return fam


@pytest.mark.parametrize("seed", range(12))
def test_split_is_stratified_by_voice_family(seed):
    """Every family has voices in training (the whispered pair never lands wholly in test), each split holds
    its share of every large family, and the default sizes give >= 1,000 test utterances for 97 variants."""
    from neurosynth.datasets.spoken_digits import SpokenDigitsOptions, split_voices

    fam = _fake_variants()
    opts = SpokenDigitsOptions(seed=seed)
    sp = split_voices(sorted(fam), opts, fam)
    assert sorted(sp["train"] + sp["valid"] + sp["test"]) == sorted(fam)
    assert len(sp["test"]) == 25 and len(sp["valid"]) == 10 and len(sp["train"]) == 62
    assert len(sp["test"]) * 20 * opts.per_voice >= 1000
    for f in set(fam.values()):
        members = [v for v in fam if fam[v] == f]
        n_train = sum(fam[v] == f for v in sp["train"])
        assert n_train >= 1, (f, sp)
        for split, frac in (("train", 62 / 97), ("valid", 10 / 97), ("test", 25 / 97)):
            n = sum(fam[v] == f for v in sp[split])
            assert abs(n - frac * len(members)) <= 1.5, (f, split, n, frac * len(members))


def test_variant_family_from_espeak_variant_files():
    from neurosynth.datasets.spoken_digits import variant_family

    assert variant_family("name whisper\ngender male\nvoicing 17\nbreath 75 75") == "whispered"
    assert variant_family("name Annie\ngender female\nvoicing 30\n") == "breathy"
    assert variant_family("name klatt2\nklatt 2\n") == "klatt"
    assert variant_family("name female1\ngender female 70\npitch 140 200") == "female"
    assert variant_family("name m1\ngender male 70 // a comment\n") == "male"
    assert variant_family("name Alex\nvoicing 70\n") == "unspecified"


def test_spoken_digits_real_variant_families():
    need_espeak()
    from neurosynth.datasets.spoken_digits import espeak_variants, variant_families

    fam = variant_families(espeak_variants())
    assert fam.get("whisper") == "whispered" and fam.get("whisperf") == "whispered"
    assert sorted(v for v, f in fam.items() if f == "whispered") == ["caleb", "whisper", "whisperf"]
    assert fam.get("klatt2") == "klatt" and fam.get("f1") == "female" and fam.get("m1") == "male"


def test_run_manifest_records_the_dataset_hash(tiny_root, tmp_path):
    """A run directory written after loading spoken_digits names the exact files (their SHA-256)."""
    import json

    from neurosynth.rundir import RunDir

    load("spoken_digits", tiny_root, "test")
    man = json.loads((tiny_root / "SpokenDigits" / "spoken_digits.json").read_text())
    with RunDir.create(tmp_path / "run", kind="test") as rd:
        rd.write_manifest(["x"], {}, 0)
    rec = json.loads((tmp_path / "run" / "manifest.json").read_text())["datasets"]
    assert rec["spoken_digits/test"]["sha256"] == man["files"]["test"]["sha256"]
    # read through the SHD path (examples/train_shd.py --data-root .../SpokenDigits): the file's SHA-256 too
    load("shd", tiny_root / "SpokenDigits", "train", cache=False)
    from neurosynth.rundir import manifest

    assert manifest(["x"], {}, 0)["datasets"]["shd/train"]["sha256"] == man["files"]["train"]["sha256"]


# ------------------------------------------------------------------ the lauscher cochlea (SHD's own model)

@pytest.mark.slow
def test_cli_encode_audio_with_lauscher(tmp_path, capsys):
    pytest.importorskip("lauscher", reason="pip install 'neurosynth[lauscher]'")
    p = tmp_path / "t.wav"
    _write_wav(p, tone(500, dur=0.1, onset=0.02), fs=48000)
    out = tmp_path / "l.h5"
    assert _cli("data", "encode-audio", str(p), "--out", str(out), "--cochlea", "lauscher", "--channels", "8",
                "--no-progress") == 0
    data = read_shd_h5(out)
    assert len(data["times"][0]) > 0 and data["units"][0].max() < 8
    # the same seed gives the same spikes (Lauscher's global-RNG draws are seeded per utterance and isolated)
    from neurosynth.datasets.cochlea import LauscherCochlea

    state = np.random.get_state()
    a = LauscherCochlea(n_channels=8)(tone(500, dur=0.1, onset=0.02), 16000, seed=4)
    b = LauscherCochlea(n_channels=8)(tone(500, dur=0.1, onset=0.02), 16000, seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    assert np.array_equal(np.random.get_state()[1], state[1])  # the global generator is left as it was


def test_lauscher_missing_is_one_error_line(tmp_path, capsys, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_lauscher(name, *a, **k):
        if name == "lauscher" or name.startswith("lauscher."):
            raise ImportError("No module named 'lauscher'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_lauscher)
    p = tmp_path / "t.wav"
    _write_wav(p, tone(500, dur=0.1))
    assert _cli("data", "encode-audio", str(p), "--out", str(tmp_path / "o.h5"), "--cochlea", "lauscher",
                "--no-progress") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "neurosynth[lauscher]" in err[0]
    assert not (tmp_path / "o.h5").exists()
    assert _cli("data", "generate", "spoken_digits", "--root", str(tmp_path / "d"), "--cochlea", "lauscher") == 2
    assert "neurosynth[lauscher]" in capsys.readouterr().err


def test_baselines_script_writes_the_protocol(tiny_root, tmp_path):
    """benchmarks/baselines_spoken_digits.py: fractions for logreg / mlp / gru, chosen on the validation split,
    and the protocol naming the files it read (their SHA-256)."""
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "baselines_sd", Path(__file__).resolve().parents[2] / "benchmarks" / "baselines_spoken_digits.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "b.json"
    assert mod.main(["--data-root", str(tiny_root), "--out", str(out), "--gru-epochs", "2", "--seeds", "0", "1"]) == 0
    res = json.loads(out.read_text())
    assert set(res) == {"logreg", "mlp", "gru", "gru_chan_shift", "protocol"}
    assert all(0.0 <= res[k] <= 1.0 for k in ("logreg", "mlp", "gru", "gru_chan_shift"))
    for name in ("gru", "gru_chan_shift"):  # the value is the mean over the seeds, each seed recorded
        runs = res["protocol"]["models"][name]["per_seed"]
        assert [r["seed"] for r in runs] == [0, 1]
        assert res[name] == round(sum(r["test_acc"] for r in runs) / 2, 4)
    assert res["protocol"]["models"]["gru_chan_shift"]["chan_shift"] == 2
    assert res["protocol"]["models"]["gru"]["chan_shift"] == 0
    out3 = tmp_path / "s.json"  # --gru-time-stretch adds the GRU trained with the SNN's speed changes too
    assert mod.main(["--data-root", str(tiny_root), "--out", str(out3), "--gru-epochs", "1", "--gru-time-stretch",
                     "0.25"]) == 0
    res3 = json.loads(out3.read_text())
    assert res3["protocol"]["models"]["gru_chan_shift_stretch"]["time_stretch"] == 0.25
    assert set(res3) == {"logreg", "mlp", "gru", "gru_chan_shift", "gru_chan_shift_stretch", "protocol"}
    assert 0.0 <= res3["gru_chan_shift_stretch"] <= 1.0
    man = json.loads((tiny_root / "SpokenDigits" / "spoken_digits.json").read_text())
    assert res["protocol"]["dataset"]["sha256"] == {s: f["sha256"] for s, f in man["files"].items()}
    assert res["protocol"]["splits"]["test"]["samples"] == 20
    assert res["protocol"]["models"]["gru"]["selected_epoch"] in (1, 2)
    # the channel shift moves each sample by its own amount and fills with zeros
    import torch

    x = torch.arange(2 * 1 * 5, dtype=torch.float32).reshape(2, 1, 5) + 1
    got = mod.shift_channels(x, [2, -1])
    assert got[0, 0].tolist() == [0, 0, 1, 2, 3] and got[1, 0].tolist() == [7, 8, 9, 10, 0]
    from neurosynth.errors import run_script

    assert run_script(mod.main, ["--data-root", str(tiny_root), "--out", str(tmp_path / "c.json"),
                                 "--gru-chan-shift", "-1"]) == 2
    assert not (tmp_path / "c.json").exists()
    # features: onset-aligned, so a sample shifted in time gives the same summary
    t, u = np.array([0.1, 0.23, 0.5]), np.array([3, 40, 600])
    np.testing.assert_array_equal(mod.summary_features([t], [u]), mod.summary_features([t + 0.3], [u]))
