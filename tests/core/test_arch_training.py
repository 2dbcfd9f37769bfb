import json
import subprocess
import sys

import pytest
import torch

import neurosynth as ns
from neurosynth.arch import LAYERS, build, mlp_spec, to_spec
from neurosynth.datasets.digits import EncodedLoader
from neurosynth.errors import UserError
from neurosynth.rundir import RunDir, load_run
from neurosynth.training import evaluate, fit


def test_spec_round_trip_conv_and_mlp():
    spec = {"format": "neurosynth.arch/1", "kind": "sequential", "input_shape": [1, 8, 8], "layers": [
        {"type": "conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "neuron", "neuron": "lif", "params": {"beta": 0.8}, "reset": "zero"},
        {"type": "sumpool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "linear", "in_features": 64, "out_features": 10},
        {"type": "delay", "steps": 1},
        {"type": "neuron", "neuron": "cubalif", "params": {"alpha": 0.5}},
    ]}
    m = build(json.loads(json.dumps(spec)))
    x = torch.rand(5, 2, 1, 8, 8)
    y = m(x)
    assert y.shape == (5, 2, 10)
    spec2 = to_spec(m, input_shape=[1, 8, 8])
    m2 = build(json.loads(json.dumps(spec2)))
    m2.load_state_dict(m.state_dict())
    assert torch.equal(m2(x), y)
    assert to_spec(m2, input_shape=[1, 8, 8]) == spec2


def test_spec_errors_are_clear():
    with pytest.raises(ValueError, match="format"):
        build({"layers": []})
    with pytest.raises(ValueError, match="registered layer types: .*linear"):
        build({"format": "neurosynth.arch/1", "layers": [{"type": "lstm"}]})
    with pytest.raises(ValueError, match="missing"):
        build({"format": "neurosynth.arch/1", "layers": [{"type": "linear", "in_features": 3}]})
    with pytest.raises(ValueError, match="not a module of this project"):
        build({"format": "neurosynth.arch/1", "kind": "x", "plugin": "os", "layers": []})  # registered packages only
    assert "neuron" in LAYERS


def _tiny_loaders(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(120, 6, generator=g)
    y = (x[:, 0] > x[:, 1]).long()
    return EncodedLoader(x[:96], y[:96], T=8, batch_size=32, seed=seed), EncodedLoader(x[96:], y[96:], T=8,
                                                                                         shuffle=False, seed=seed)


def test_fit_learns_and_is_deterministic():
    def once():
        torch.manual_seed(3)
        m = build(mlp_spec(6, [16], 2, readout="li"))
        tr, te = _tiny_loaders()
        h = fit(m, tr, epochs=4, lr=2e-2, val_loader=te, progress=False, loss="mean_membrane_ce")
        return h, m

    h1, m1 = once()
    h2, m2 = once()
    assert h1["train_loss"] == h2["train_loss"] and h1["val_accuracy"] == h2["val_accuracy"]
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(a, b)
    assert h1["train_loss"][-1] < h1["train_loss"][0]
    ev = evaluate(m1, _tiny_loaders()[1], loss="mean_membrane_ce", record_rates=True)
    assert set(ev) >= {"loss", "accuracy", "firing_rates"}


def test_rundir_save_load_and_corrupt_files(tmp_path):
    m = build(mlp_spec(6, [5], 2))
    rd = RunDir(tmp_path / "run")
    rd.save_model(m)
    rd.write_json("metrics.json", {"test_accuracy": 0.5})
    m2, spec, metrics = load_run(tmp_path / "run")
    for a, b in zip(m.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    assert metrics["test_accuracy"] == 0.5
    # the checkpoint loads with weights_only=True (no code execution)
    sd = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert set(sd) == set(m.state_dict())
    (tmp_path / "run" / "model.pt").write_bytes(b"\x80garbage")
    with pytest.raises(UserError, match="model.pt"):
        load_run(tmp_path / "run")
    (tmp_path / "run" / "arch.json").write_text("{trunc")
    with pytest.raises(UserError, match="arch.json.*not valid JSON"):
        load_run(tmp_path / "run")
    with pytest.raises(UserError, match="does not exist"):
        load_run(tmp_path / "nope")
    assert not list((tmp_path / "run").glob(".*.tmp"))


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "neurosynth", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_cli_train_writes_run_directory_and_same_seed_same_result(tmp_path):
    outs = []
    for name in ("a", "b"):
        r = _cli("train", "--dataset", "digits", "--out", str(tmp_path / name), "--epochs", "2", "--hidden", "32",
                 "--T", "8", "--no-progress", "--seed", "7")
        assert r.returncode == 0, r.stderr
        outs.append(json.loads((tmp_path / name / "metrics.json").read_text()))
    assert outs[0]["test_accuracy"] == outs[1]["test_accuracy"]
    assert outs[0]["history"]["train_loss"] == outs[1]["history"]["train_loss"]
    run = tmp_path / "a"
    for f in ("model.pt", "arch.json", "metrics.json", "manifest.json", "plots/curves.png", "plots/raster.png"):
        assert (run / f).exists(), f
    man = json.loads((run / "manifest.json").read_text())
    assert {"command", "config", "seed", "versions", "hardware", "git_commit", "timestamp", "results"} <= set(man)
    assert man["seed"] == 7 and "torch" in man["versions"]
    model, _, _ = load_run(run)
    assert isinstance(model, ns.SNN)


def test_cli_errors_exit_nonzero_with_message(tmp_path):
    r = _cli("train", "--dataset", "mnist", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "error:" in r.stderr and "digits" in r.stderr
    r = _cli("train", "--out", str(tmp_path / "y"), "--hidden", "12a")
    assert r.returncode == 2 and "comma-separated" in r.stderr


def test_cli_help_does_not_import_torch():
    code = ("import sys, neurosynth.apps.cli as c; c.build_parser(); "
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False", "`neurosynth --help` must not import torch (keep heavy imports inside run())"


def test_folders_install_under_the_neurosynth_namespace():
    import importlib.util
    from pathlib import Path

    for name, folder in (("neurosynth.datasets", "datasets"), ("neurosynth.hardware", "hardware")):
        spec = importlib.util.find_spec(name)
        assert spec is not None and Path(spec.origin).parent.name == folder
    code = "import importlib.util as u; s = u.find_spec('hardware'); print(s is None)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=60)
    assert r.stdout.strip() == "True", "the bare name 'hardware' must not be installed"


def test_demo_quick_runs_every_stage(tmp_path):
    r = _cli("demo", "--quick", "--out", str(tmp_path / "demo"))
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout
    assert "MSE-NAS search" in out and "test accuracy (torch, float)" in out
    assert "Lava fixed point == NeuroSynth integer reference bit for bit: True" in out
    man = json.loads((tmp_path / "demo" / "manifest.json").read_text())
    assert set(man["results"]["stage_seconds"]) == {"search", "train", "loihi"}
    assert (tmp_path / "demo" / "train" / "model.pt").exists()


def test_fit_shows_a_progress_bar_within_each_epoch(capsys):
    # a long epoch must show its batches (issue 22: the default Fashion-MNIST run showed nothing for a minute)
    import torch

    import neurosynth as ns
    from neurosynth.training import fit

    gen = torch.Generator().manual_seed(0)
    data = [((torch.rand(3, 4, 5, generator=gen) < 0.5).float(), torch.randint(0, 2, (4,), generator=gen))
            for _ in range(3)]
    net = ns.SNN(torch.nn.Linear(5, 2), ns.LIF())
    fit(net, data, epochs=2, lr=1e-3, progress=True, scheduler=None)
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "0/3" in err and "batch/s" in err
    fit(net, data, epochs=1, lr=1e-3, progress=False, scheduler=None)
    assert "batch" not in capsys.readouterr().err
