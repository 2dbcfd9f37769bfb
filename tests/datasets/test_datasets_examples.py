"""The SHD and DVS-Gesture example scripts run end to end on fixture files (1 epoch, tiny sizes)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from neurosynth.datasets.testing import write_fake_dvs_gesture, write_fake_shd

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _module(name):
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _check_run(out: Path, n_test: int, loss: str, make_loader):
    from neurosynth.rundir import load_run
    from neurosynth.training import evaluate

    for f in ("arch.json", "model.pt", "metrics.json", "manifest.json", "plots/training.png"):
        assert (out / f).is_file(), f
    metrics = json.loads((out / "metrics.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["results"]["n_test"] == n_test
    assert len(metrics["history"]["train_loss"]) == 1
    model, _, _ = load_run(out)  # the saved model rebuilds from arch.json and reproduces the test accuracy
    assert evaluate(model, make_loader(), loss=loss)["accuracy"] == pytest.approx(metrics["test"]["accuracy"])


def test_train_shd_example(tmp_path):
    torch.set_num_threads(1)
    write_fake_shd(tmp_path / "data", n_train=8, n_test=4, seed=0, max_events=100)
    out = tmp_path / "run"
    mod = _module("train_shd")
    argv = ["--data-root", str(tmp_path / "data"), "--epochs", "1", "--T", "10", "--hidden", "8",
            "--batch-size", "4", "--out", str(out), "--no-progress"]
    assert mod.main(argv) == 0

    def loader():
        from neurosynth.datasets import collate_time_first, load

        ds = load("shd", tmp_path / "data", "test", T=10)
        return torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate_time_first)

    _check_run(out, 4, "max_membrane_ce", loader)


def test_train_dvs_gesture_example(tmp_path):
    torch.set_num_threads(1)
    write_fake_dvs_gesture(tmp_path / "data", n_train=6, n_test=3, seed=0, max_events=200)
    out = tmp_path / "run"
    mod = _module("train_dvs_gesture")
    argv = ["--data-root", str(tmp_path / "data"), "--epochs", "1", "--T", "4", "--size", "16", "--channels", "2",
            "--hidden", "8", "--batch-size", "3", "--out", str(out), "--no-progress"]
    assert mod.main(argv) == 0

    def loader():
        from neurosynth.datasets import collate_time_first, load

        ds = load("dvs_gesture", tmp_path / "data", "test", T=4, spatial_factor=16 / 128)
        return torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=collate_time_first)

    _check_run(out, 3, "mean_membrane_ce", loader)


@pytest.mark.slow
def test_train_shd_example_learns_an_informative_fixture(tmp_path):
    """Labels that set which channel band fires are learnable: well above the 5% chance level."""
    torch.set_num_threads(1)
    write_fake_shd(tmp_path / "data", n_train=200, n_test=60, seed=0, max_events=200, informative=True)
    out = tmp_path / "run"
    argv = ["--data-root", str(tmp_path / "data"), "--epochs", "4", "--T", "20", "--hidden", "32",
            "--batch-size", "16", "--lr", "5e-3", "--out", str(out), "--no-progress"]
    assert _module("train_shd").main(argv) == 0
    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] > 0.3


def test_train_dvs_gesture_example_on_nfashion(tmp_path, monkeypatch):
    """The same conv-SNN script trains on nfashion_mnist (events generated on first use)."""
    from neurosynth.datasets import fashion
    from neurosynth.datasets.testing import write_fake_fashion_mnist

    torch.set_num_threads(1)
    write_fake_fashion_mnist(tmp_path / "fashion", 10, 6, seed=0)
    monkeypatch.setattr(fashion, "SYSTEM_DIR", tmp_path / "fashion")
    out = tmp_path / "run"
    mod = _module("train_dvs_gesture")
    argv = ["--dataset", "nfashion_mnist", "--data-root", str(tmp_path / "data"), "--n-samples", "6,3",
            "--epochs", "1", "--T", "4", "--channels", "4", "--hidden", "8", "--batch-size", "3", "--out", str(out),
            "--no-progress"]
    assert mod.main(argv) == 0

    def loader():
        from neurosynth.datasets import collate_time_first, load

        ds = load("nfashion_mnist", tmp_path / "data", "test", T=4, n_samples=3)
        return torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=collate_time_first)

    _check_run(out, 3, "mean_membrane_ce", loader)
    assert json.loads((out / "manifest.json").read_text())["config"]["dataset"] == "nfashion_mnist"


# ----------------------------------------------------------------------------- the audio recipes' input pipeline
def test_onset_step_finds_the_word_not_the_first_spike():
    from neurosynth.apps.recipes.audio import onset_step

    pop = [1, 0, 1, 1, 0, 2, 30, 60, 100, 80, 1]  # spontaneous spikes from step 0, the word from step 6
    assert onset_step(pop, 0.1, 1) == 6  # first count above 10 (10% of the peak 100)
    assert onset_step(pop, 0.5, 1) == 7
    assert onset_step(pop, 0.1, 2) == 5  # a 2-step moving sum: the window [5, 6] is the first above 0.1 * 180
    assert onset_step([0, 0, 0], 0.1, 1) == 0  # silence: no shift
    assert onset_step(pop, 0.0, 1) == 0  # frac 0: the first non-silent step (the first spike)


def test_align_frames_cuts_the_window_from_before_the_onset_and_clips_after():
    from neurosynth.apps.recipes.audio import AudioInput, align_frames

    frames = np.zeros((50, 3), np.float32)
    frames[:, 0] = 1  # background
    frames[20:30, 1] = 7  # the word: steps 20..29
    inp = AudioInput(dt_ms=10.0, window_ms=100.0, channels=3, align="onset", pre_ms=20.0, onset_frac=0.5)
    x = align_frames(frames, inp)
    assert x.shape == (10, 3)
    np.testing.assert_array_equal(x, frames[18:28])  # 2 steps (20 ms) before the onset at step 20
    late = np.zeros((25, 3), np.float32)
    late[20:, 2] = 3.0
    x = align_frames(late, inp)  # the window runs past the end: zero-padded, the counts kept
    np.testing.assert_array_equal(x[:7, 2], [0, 0, 3, 3, 3, 3, 3])
    assert not x[7:].any()
    xb = align_frames(late, inp.replace(binary=True))  # binary after the alignment: the onset is found on counts
    np.testing.assert_array_equal(xb, np.minimum(x, 1))
    plain = AudioInput(dt_ms=10.0, window_ms=100.0, channels=3)  # align none: the first 10 steps
    np.testing.assert_array_equal(align_frames(frames, plain), frames[:10])


def test_thermometer_levels_keep_counts_as_binary_lines():
    from neurosynth.apps.recipes.audio import AudioInput, align_frames, thermometer

    counts = np.array([[0, 1, 2, 5]], np.float32)
    np.testing.assert_array_equal(thermometer(counts, 3), [[0, 1, 1, 1,  0, 0, 1, 1,  0, 0, 0, 1]])
    frames = np.zeros((12, 4), np.float32)
    frames[2:6] = [0, 1, 2, 5]
    inp = AudioInput(dt_ms=10.0, window_ms=80.0, channels=4, binary=True, levels=3)
    x = align_frames(frames, inp)
    assert x.shape == (8, 12) == (inp.steps, inp.width) and set(np.unique(x)) <= {0.0, 1.0}
    np.testing.assert_array_equal(x.reshape(8, 3, 4).sum(1), np.minimum(frames[:8], 3))  # the blocks sum to the count
    np.testing.assert_array_equal(align_frames(frames, inp.replace(levels=1)), np.minimum(frames[:8], 1))
    assert AudioInput.from_dict(inp.to_dict()) == inp and AudioInput.from_dict({"channels": 4}).levels == 1


def test_stretch_frames_plays_slower_or_faster_and_augment_draws_the_speed():
    from neurosynth.apps.recipes.audio import Augment, stretch_frames
    from neurosynth.errors import run_script

    x = torch.arange(1, 7, dtype=torch.float32)[:, None].repeat(1, 2)  # steps 1..6 on 2 channels
    assert stretch_frames(x, 2.0)[:, 0].tolist() == [1, 1, 2, 2, 3, 3]  # half speed: every frame twice
    assert stretch_frames(x, 0.5)[:, 0].tolist() == [1, 3, 5, 0, 0, 0]  # double speed: every other frame, then zeros
    assert torch.equal(stretch_frames(x, 1.0), x)
    # Augment: speeds log-uniform in [1/(1+s), 1+s], from the explicit generator (same seed, same samples)
    a = Augment([(x, 3)] * 200, 0, 0, torch.Generator().manual_seed(0), stretch=0.25)
    b = Augment([(x, 3)] * 200, 0, 0, torch.Generator().manual_seed(0), stretch=0.25)
    got = [a[i][0] for i in range(200)]
    assert all(torch.equal(g, b[i][0]) for i, g in enumerate(got))
    lengths = [int((g[:, 0] > 0).sum()) for g in got]  # a faster copy ends early; a slower one keeps all 6 steps
    assert min(lengths) == 5 and max(lengths) == 6
    slow = sum(int(g[1, 0] == 1) for g in got)  # step 1 repeats step 0 only when played slower
    assert 60 < slow < 140
    with pytest.raises(ValueError, match="stretch"):
        Augment([(x, 3)], 0, 0, torch.Generator(), stretch=-0.1)
    mod = _module("train_shd")
    assert run_script(mod.main, ["--data-root", "x", "--dataset", "spoken_digits", "--time-stretch", "-1"]) == 2


def test_shift_frames_moves_without_wrapping_and_round_trips_inside():
    from neurosynth.apps.recipes.audio import shift_frames

    x = torch.arange(1, 21, dtype=torch.float32).reshape(5, 4)
    y = shift_frames(x, 2, -1)
    assert torch.equal(y[2:, :3], x[:3, 1:]) and not y[:2].any() and not y[:, 3].any()
    assert torch.equal(shift_frames(y, -2, 1)[:3, 1:], x[:3, 1:])  # what stayed inside comes back
    assert not shift_frames(x, 5, 0).any() and torch.equal(shift_frames(x, 0, 0), x)


@pytest.mark.parametrize("bad", [{"dt_ms": 0}, {"window_ms": 5.0, "dt_ms": 10.0}, {"channels": 701},
                                 {"align": "peak"}, {"onset_frac": 1.0}, {"pre_ms": 2000.0}, {"levels": 0},
                                 {"levels": 3}, {"levels": 2.0, "binary": True}])
def test_audio_input_refuses_bad_values(bad):
    from neurosynth.apps.recipes.audio import AudioInput

    with pytest.raises(ValueError):
        AudioInput(**bad)


def test_train_shd_recipe_options_onset_aligned_140_channels(tmp_path):
    """The spoken-digits style pipeline on an SHD fixture: onset-aligned 140-channel input, augmentation, adLIF
    with BN and dropout; the manifest records the input and the saved model reproduces the test accuracy on the
    inputs rebuilt from it (what --verify-run and energy read)."""
    from neurosynth.apps.recipes.audio import AudioInput, load_audio

    torch.set_num_threads(1)
    write_fake_shd(tmp_path / "data", n_train=12, n_test=4, seed=0, max_events=200)
    out = tmp_path / "run"
    mod = _module("train_shd")
    argv = ["--data-root", str(tmp_path / "data"), "--epochs", "1", "--align", "onset", "--window-ms", "200",
            "--dt-ms", "20", "--channels", "140", "--arch", "adlif", "--bn", "--dropout", "0.2", "--shift", "1",
            "--chan-shift", "2", "--hidden", "8", "--batch-size", "4", "--readout", "mean", "--val-fraction", "0.25",
            "--out", str(out), "--no-progress"]
    assert mod.main(argv) == 0
    cfg = json.loads((out / "manifest.json").read_text())["config"]
    inp = AudioInput.from_dict(cfg["input"])
    assert inp == AudioInput(dt_ms=20.0, window_ms=200.0, channels=140, align="onset")
    assert cfg["T"] == 10 and cfg["arch"] == "adlif" and cfg["lr"] == mod.RECIPES["shd"]["lr"]  # unset: the recipe

    def loader():
        from neurosynth.datasets import collate_time_first

        ds = load_audio("shd", tmp_path / "data", "test", inp)
        assert tuple(ds[0][0].shape) == (10, 140)
        return torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate_time_first)

    _check_run(out, 4, "mean_membrane_ce", loader)

    # examples/audio_energy.py prices this SNN on the inputs its manifest records (onset-aligned 140 groups): its
    # accuracy there is the run's test accuracy; the GRU sees the same 140 inputs and its epoch is chosen on
    # validation, never on test
    from neurosynth.errors import run_script

    energy = _module("audio_energy")
    eout = tmp_path / "energy"
    assert energy.main(["--snn", str(out), "--epochs", "2", "--gru-hidden", "4", "--gru-T", "5", "--out",
                        str(eout)]) == 0
    doc = json.loads((eout / "energy_comparison.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert doc["snn"]["test_accuracy"] == pytest.approx(metrics["test"]["accuracy"]) and doc["snn"]["T"] == 10
    assert [g["T"] for g in doc["gru"]] == [10, 5] and all(g["inputs"] == 140 for g in doc["gru"])
    assert all(g["chosen_epoch"] in (1, 2) and len(g["val_history"]) == 2 for g in doc["gru"])
    assert doc["gru"][0]["macs_per_inference"] == 10 * 3 * 4 * (140 + 4) + 4 * 20
    assert torch.load(eout / "inputs.pt")["x"].shape[:1] == (10,)
    assert run_script(energy.main, ["--snn", str(tmp_path / "nothing"), "--out", str(tmp_path / "e2")]) == 2
    (tmp_path / "a_file").write_text("x")  # an --out that cannot be a folder: one error line, not a traceback
    assert run_script(energy.main, ["--snn", str(out), "--out", str(tmp_path / "a_file" / "e")]) == 2
    before = (eout / "energy_comparison.json").read_bytes()  # an earlier comparison is kept unless --force
    assert run_script(energy.main, ["--snn", str(out), "--epochs", "1", "--gru-hidden", "4", "--out", str(eout)]) == 2
    assert (eout / "energy_comparison.json").read_bytes() == before
    assert energy.main(["--snn", str(out), "--epochs", "1", "--gru-hidden", "4", "--out", str(eout), "--force"]) == 0
    assert json.loads((eout / "energy_comparison.json").read_text())["gru"][0]["epochs"] == 1


def test_log_input_compresses_the_counts_and_is_recorded(tmp_path):
    """--log-input: the float model sees log(1 + count) of the same frames (training, validation, test, and what the
    manifest rebuilds); refused with --loihi, whose input is binary."""
    from neurosynth.apps.recipes.audio import AudioInput, load_audio, load_run_split
    from neurosynth.errors import run_script

    torch.set_num_threads(1)
    write_fake_shd(tmp_path / "data", n_train=8, n_test=4, seed=0, max_events=2000)
    inp = AudioInput(dt_ms=20.0, window_ms=200.0, channels=140, align="onset")
    counts = load_audio("shd", tmp_path / "data", "test", inp)
    logs = load_audio("shd", tmp_path / "data", "test", inp.replace(log1p=True))
    assert max(float(counts[i][0].max()) for i in range(len(counts))) > 1  # bins holding several spikes
    for i in range(len(counts)):
        torch.testing.assert_close(logs[i][0], torch.log1p(torch.as_tensor(counts[i][0], dtype=torch.float32)))
        assert logs[i][1] == counts[i][1]
    with pytest.raises(ValueError, match="binary input has none"):
        AudioInput(binary=True, log1p=True)
    mod = _module("train_shd")
    out = tmp_path / "run"
    argv = ["--data-root", str(tmp_path / "data"), "--epochs", "1", "--align", "onset", "--window-ms", "200",
            "--dt-ms", "20", "--channels", "140", "--hidden", "8", "--batch-size", "4", "--val-fraction", "0.25",
            "--log-input", "--out", str(out), "--no-progress"]
    assert mod.main(argv) == 0
    cfg = json.loads((out / "manifest.json").read_text())["config"]
    assert cfg["input"]["log1p"] is True and cfg["log_input"] is True
    torch.testing.assert_close(load_run_split(cfg, "test")[0][0], logs[0][0])
    assert load_run_split(cfg, "test", binary=True)[0][0].max() == 1  # the Lava check's binary spikes
    assert run_script(mod.main, [*argv[:-3], "--loihi", "--out", str(tmp_path / "r2"), "--no-progress"]) == 2
    assert not (tmp_path / "r2").exists()


def test_train_shd_spoken_digits_recipe_defaults():
    """--dataset spoken_digits without options runs the documented recipe; explicit options win."""
    mod = _module("train_shd")
    args = mod.parse_args(["--data-root", "x", "--dataset", "spoken_digits"])
    inp = mod.apply_recipe(args)
    rec = mod.RECIPES["spoken_digits"]
    assert inp.align == "onset" and inp.channels == rec["channels"] and inp.dt_ms == rec["dt_ms"]
    assert args.T == round(rec["window_ms"] / rec["dt_ms"]) and args.arch == rec["arch"]
    assert inp.log1p and not inp.binary and args.time_stretch == 0.25  # log counts, speed changes: chosen on validation
    assert args.hidden == 1024 and args.dropout == 0.3  # 1024 wide: chosen on validation over 768, 512, dropout 0.5
    args = mod.parse_args(["--data-root", "x", "--dataset", "spoken_digits", "--T", "35", "--arch", "ff"])
    inp = mod.apply_recipe(args)
    assert args.T == 35 and inp.dt_ms == rec["window_ms"] / 35 and args.arch == "ff"
    shd = mod.parse_args(["--data-root", "x"])
    inp = mod.apply_recipe(shd)  # SHD keeps the classic preprocessing: 100 bins of 14 ms from t = 0, 700 channels
    assert (shd.T, inp.dt_ms, inp.channels, inp.align) == (100, 14.0, 700, "none")


def test_train_shd_loihi_recipe_names_its_own_network_not_the_float_recipes():
    """The Loihi recipe fixes every option that shapes its network and training, so a change of the float recipe
    (its hidden size went from 256 to 512) cannot silently change the documented --loihi network."""
    mod = _module("train_shd")
    loihi = mod.RECIPES["spoken_digits/loihi"]
    shaping = {"arch", "hidden", "layers", "channels", "dt_ms", "epochs", "lr", "batch_size", "dropout", "bn",
               "alpha", "init_gain", "loihi_loss", "levels", "loihi_readout", "loihi_bias", "grad_clip", "shift",
               "chan_shift", "log_input", "time_stretch", "max_delay"}
    assert shaping <= set(loihi), sorted(shaping - set(loihi))
    args = mod.parse_args(["--data-root", "x", "--dataset", "spoken_digits", "--loihi"])
    assert not mod.apply_recipe(args).log1p and args.log_input is False  # binary spikes, not the float's logs
    assert (args.hidden, args.layers, args.channels, args.dropout, args.bn) == (256, 2, 700, 0.0, False)
    assert (args.arch, args.max_delay) == ("delays", 12)  # learned delays: chosen on validation over recurrent LIF
    assert (args.loihi_bias, args.grad_clip, args.chan_shift, args.loihi_readout) == (True, 1.0, 2, "spikes")
    floats = mod.parse_args(["--data-root", "x", "--dataset", "spoken_digits"])
    mod.apply_recipe(floats)
    assert (floats.chan_shift, floats.grad_clip, floats.loihi_bias) == (2, None, False)
    assert args.time_stretch == 0.0  # the Loihi recipe was chosen without speed changes


def test_train_shd_loihi_bias_needs_a_plain_lif():
    from neurosynth.errors import UserError

    mod = _module("train_shd")
    args = mod.parse_args(["--data-root", "x", "--dataset", "spoken_digits", "--loihi", "--loihi-bias", "--alpha", "0.5"])
    with pytest.raises(UserError, match="--loihi-bias needs --alpha 0"):
        mod.apply_recipe(args)
    args = mod.parse_args(["--data-root", "x", "--dataset", "spoken_digits", "--loihi", "--no-loihi-bias"])
    mod.apply_recipe(args)
    assert args.loihi_bias is False


def test_train_shd_grad_clip_clips_and_is_refused_when_not_positive(tmp_path, capsys, monkeypatch):
    from neurosynth.errors import run_script

    torch.set_num_threads(1)
    write_fake_shd(tmp_path / "data", n_train=12, n_test=4, seed=0, max_events=200)
    mod = _module("train_shd")
    base = ["--data-root", str(tmp_path / "data"), "--epochs", "1", "--T", "8", "--hidden", "8", "--batch-size", "4",
            "--val-fraction", "0.25", "--no-progress"]
    assert run_script(mod.main, [*base, "--grad-clip", "0", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --grad-clip 0.0") and not (tmp_path / "bad").exists()
    norms = []
    real = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda p, n, *a, **k: norms.append(n) or real(p, n, *a, **k))
    assert mod.main([*base, "--grad-clip", "0.5", "--out", str(tmp_path / "run")]) == 0
    assert norms and set(norms) == {0.5}  # every step of the epoch was clipped at 0.5
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["config"]["grad_clip"] == 0.5


def test_train_shd_levels_are_loihi_input_lines_and_refuse_a_channel_shift():
    from neurosynth.errors import UserError

    mod = _module("train_shd")
    args = mod.parse_args(["--data-root", "x", "--dataset", "spoken_digits", "--loihi", "--levels", "3"])
    inp = mod.apply_recipe(args)
    assert inp.binary and inp.levels == 3 and inp.width == 3 * inp.channels
    assert args.chan_shift == 0  # the recipe's channel shifts give way to the thermometer code
    assert mod.apply_recipe(mod.parse_args(["--data-root", "x", "--dataset", "spoken_digits"])).levels == 1  # float
    args = mod.parse_args(["--data-root", "x", "--loihi", "--levels", "3", "--chan-shift", "1"])
    with pytest.raises(UserError, match="--chan-shift 1 .* --levels 3"):
        mod.apply_recipe(args)
    with pytest.raises(UserError, match="--levels 2 .* needs --loihi"):
        mod.apply_recipe(mod.parse_args(["--data-root", "x", "--levels", "2"]))


def test_train_shd_loihi_reports_the_fixed_point_accuracy_on_every_test_sample(tmp_path):
    """--loihi (no Lava needed): the integer network's accuracy on the whole test split, onset-aligned binary
    input; it agrees with the torch model's predictions (the QAT model is the fixed-point network)."""
    torch.set_num_threads(1)
    write_fake_shd(tmp_path / "data", n_train=12, n_test=6, seed=1, max_events=200, informative=True)
    out = tmp_path / "run"
    argv = ["--data-root", str(tmp_path / "data"), "--loihi", "--epochs", "1", "--align", "onset", "--window-ms",
            "300", "--dt-ms", "20", "--channels", "140", "--hidden", "8", "--batch-size", "4", "--val-fraction",
            "0.25", "--out", str(out), "--no-progress"]
    assert _module("train_shd").main(argv) == 0
    m = json.loads((out / "metrics.json").read_text())
    fixed = m["loihi_fixed"]
    assert fixed["samples"] == 6 and 0 <= fixed["accuracy"] <= 1
    assert fixed["prediction_agreement_with_torch"] >= 5 / 6
    assert json.loads((out / "manifest.json").read_text())["config"]["input"]["binary"] is True


def test_train_shd_loihi_learned_delays_train_the_deployable_feed_forward_net(tmp_path, capsys):
    """--loihi --arch delays: feed-forward LIF layers whose synapses learn per-synapse delays (netx ``delay``), each
    with the recipe's neuron bias; the integer network agrees with torch. --arch ff: the same without delays.
    adLIF (no Loihi process) and delays beyond Loihi's 6 bits are one error line each, before any data is read."""
    from neurosynth.errors import run_script
    from neurosynth.hardware.lava.ir import extract
    from neurosynth.rundir import load_run

    torch.set_num_threads(1)
    write_fake_shd(tmp_path / "data", n_train=12, n_test=6, seed=1, max_events=200, informative=True)
    mod = _module("train_shd")
    argv = ["--data-root", str(tmp_path / "data"), "--loihi", "--loihi-bias", "--epochs", "1", "--align", "onset",
            "--window-ms", "300", "--dt-ms", "20", "--channels", "140", "--hidden", "8", "--layers", "2",
            "--batch-size", "4", "--val-fraction", "0.25", "--no-progress"]
    out = tmp_path / "delays"
    assert mod.main([*argv, "--arch", "delays", "--max-delay", "4", "--out", str(out)]) == 0
    types = [entry["type"] for entry in json.loads((out / "arch.json").read_text())["layers"]]
    assert types == ["qdelayed_linear", "delay", "qbias", "neuron"] * 2 + ["qdelayed_linear", "delay", "neuron"]
    assert json.loads((out / "metrics.json").read_text())["loihi_fixed"]["prediction_agreement_with_torch"] >= 5 / 6
    net = extract(load_run(out)[0].eval(), (140,))
    assert [s.max_delay for s in net.stages] == [3, 3, 3] and [s.bias is not None for s in net.stages] == [1, 1, 0]
    config = json.loads((out / "manifest.json").read_text())["config"]
    assert config["arch"] == "delays" and config["max_delay"] == 4 and config["loihi_bias"] is True
    # the same run goes to NIR (delays expanded, each bias an identity Affine), verified identical by the CLI
    from neurosynth.apps.cli import main as cli
    assert cli(["export", "nir", "--model", str(out), "--out", str(tmp_path / "net.nir"), "--verify", "3"]) == 0
    assert json.loads((tmp_path / "net.nir.manifest.json").read_text())["results"]["verify"]["identical"] is True
    assert mod.main([*argv, "--arch", "ff", "--out", str(tmp_path / "ff")]) == 0
    types = [entry["type"] for entry in json.loads((tmp_path / "ff" / "arch.json").read_text())["layers"]]
    assert types == ["qlinear", "delay", "qbias", "neuron"] * 2 + ["qlinear", "delay", "neuron"]
    for extra, msg in ((["--arch", "adlif"], "error: --arch adlif has no Loihi 2 counterpart"),
                       (["--arch", "delays", "--max-delay", "64"], "error: --max-delay K gives learned delays of 0..K-1 "
                                                                   "steps: K must be in 1..63")):
        capsys.readouterr()
        assert run_script(mod.main, [*argv, *extra, "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(msg), err
    assert not (tmp_path / "bad").exists()


def test_train_shd_loihi_dropout_trains_with_it_and_deploys_without_it(tmp_path, capsys):
    """--loihi --dropout p: a dropout entry after each recurrent layer (it was silently ignored before), active while
    training only: the eval model equals the same weights without the dropouts, the Lava export skips them (the same
    netx stages) and the integer network agrees with torch. A probability outside [0, 1) is one error line."""
    from neurosynth.errors import run_script
    from neurosynth.hardware.lava.ir import extract
    from neurosynth.hardware.targets.loihi_qat import loihi_rsnn_spec
    from neurosynth.rundir import load_run

    torch.set_num_threads(1)
    write_fake_shd(tmp_path / "data", n_train=12, n_test=6, seed=1, max_events=200, informative=True)
    mod = _module("train_shd")
    out = tmp_path / "run"
    argv = ["--data-root", str(tmp_path / "data"), "--loihi", "--epochs", "1", "--align", "onset", "--window-ms",
            "300", "--dt-ms", "20", "--channels", "140", "--hidden", "8", "--layers", "2", "--batch-size", "4",
            "--val-fraction", "0.25", "--no-progress"]
    assert mod.main([*argv, "--dropout", "0.5", "--out", str(out)]) == 0
    types = [entry["type"] for entry in json.loads((out / "arch.json").read_text())["layers"]]
    assert [types[i + 1] for i, t in enumerate(types) if t == "qrecurrent"] == ["dropout", "dropout"]
    assert json.loads((out / "manifest.json").read_text())["config"]["dropout"] == 0.5
    assert json.loads((out / "metrics.json").read_text())["loihi_fixed"]["prediction_agreement_with_torch"] >= 5 / 6
    model, _, _ = load_run(out)
    from neurosynth.arch import build

    plain = build(loihi_rsnn_spec(140, 8, 20, layers=2))  # the same network without the dropout entries
    plain.load_state_dict(dict(zip(plain.state_dict(), model.state_dict().values())))  # same tensors, in order
    x = (torch.rand(15, 3, 140, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    model.eval(), plain.eval()
    assert torch.equal(model(x), plain(x))
    model.train()
    torch.manual_seed(0)  # dropout's draws
    assert not torch.equal(model(x), plain(x))  # dropout acts while training
    a, b = extract(model.eval(), (140,)), extract(plain, (140,))
    assert [s.kind for s in a.stages] == [s.kind for s in b.stages]
    for sa, sb in zip(a.stages, b.stages):
        np.testing.assert_array_equal(sa.int_weight(), sb.int_weight())
    for bad in ("1", "-0.1"):
        assert run_script(mod.main, [*argv, "--dropout", bad, "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: --dropout is the probability") and bad in err[0]
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="dropout must be in"):
        loihi_rsnn_spec(4, 4, 2, dropout=1.0)


def test_train_shd_delays_arch_runs_and_reloads(tmp_path):
    """--arch delays (learnable synaptic delays): the run's arch.json rebuilds the model, which reproduces the
    test accuracy (eval mode: rounded one-tap delays)."""
    torch.set_num_threads(1)
    write_fake_shd(tmp_path / "data", n_train=8, n_test=4, seed=2, max_events=100)
    out = tmp_path / "run"
    argv = ["--data-root", str(tmp_path / "data"), "--epochs", "1", "--T", "10", "--channels", "140", "--arch",
            "delays", "--max-delay", "4", "--layers", "2", "--hidden", "8", "--batch-size", "4", "--readout", "mean",
            "--val-fraction", "0.25", "--out", str(out), "--no-progress"]
    assert _module("train_shd").main(argv) == 0
    spec = json.loads((out / "arch.json").read_text())
    assert [layer["type"] for layer in spec["layers"]].count("delayed_linear") == 2

    def loader():
        from neurosynth.apps.recipes.audio import AudioInput, load_audio
        from neurosynth.datasets import collate_time_first

        ds = load_audio("shd", tmp_path / "data", "test", AudioInput(dt_ms=140.0, channels=140))
        return torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate_time_first)

    _check_run(out, 4, "mean_membrane_ce", loader)


def test_energy_cli_reads_the_recorded_input_of_an_onset_aligned_run(tmp_path, capsys):
    """`neurosynth energy --model RUN` rebuilds the run's input (onset-aligned, 140 channels, 15 steps) from the
    manifest: the model's 140 inputs receive spikes (it would not run on 700-wide frames)."""
    from neurosynth.apps.cli import main as cli

    torch.set_num_threads(1)
    write_fake_shd(tmp_path / "d", 8, 4, 3, max_events=150)
    run = tmp_path / "run"
    assert _module("train_shd").main(["--data-root", str(tmp_path / "d"), "--epochs", "1", "--align", "onset",
                                      "--window-ms", "300", "--dt-ms", "20", "--channels", "140", "--hidden", "8",
                                      "--batch-size", "4", "--val-fraction", "0.25", "--out", str(run),
                                      "--no-progress"]) == 0
    capsys.readouterr()
    assert cli(["energy", "--model", str(run), "--no-progress"]) == 0
    assert "T=15" in capsys.readouterr().out
    assert json.loads((run / "energy.json").read_text())["counts"]["syn_ops"] > 0
