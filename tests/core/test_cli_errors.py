"""Every fixable mistake on the command line: one ``error:`` line, exit 2, nothing left behind (issue 13)."""

import json
import os

import pytest
import torch

from neurosynth.apps.cli import main
from neurosynth.arch import build, mlp_spec
from neurosynth.rundir import RunDir


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    return rc, err


@pytest.mark.parametrize("args, needle", [
    (["--epochs", "0"], "--epochs must be a positive integer"),
    (["--T", "0"], "--T must be a positive integer"),
    (["--batch-size", "0"], "--batch-size must be a positive integer"),
    (["--beta", "1.5"], "--beta must lie in [0, 1]"),
    (["--beta", "nan"], "--beta must lie in [0, 1]"),
    (["--threshold", "0"], "--threshold must be a positive finite number"),
    (["--threshold", "inf"], "--threshold must be a positive finite number"),
    (["--reset", "bogus"], "--reset 'bogus' is not a reset"),
    (["--surrogate", "bogus"], "--surrogate 'bogus' is not a surrogate"),
    (["--neuron", "bogus"], "--neuron 'bogus' is not a registered neuron"),
    (["--lr", "-1"], "--lr must be a positive number"),
    (["--lr", "nan"], "--lr must be a positive number"),
    (["--hidden", "-4"], "--hidden sizes must be integers >= 1"),
    (["--hidden", "0"], "--hidden sizes must be integers >= 1"),
    (["--hidden", "x"], "--hidden must be comma-separated integers"),
    (["--device", "bogus"], "--device 'bogus' is not a torch device"),
    (["--threads", "0"], "--threads must be a positive integer"),
])
def test_train_mistakes_are_one_error_line_exit_2_and_leave_nothing(tmp_path, capsys, args, needle):
    out = tmp_path / "sub" / "run"
    rc, err = _run(capsys, "train", "--out", out, "--epochs", "1", "--no-progress", *args)
    assert rc == 2
    assert err.startswith("error: ") and "\n" not in err and needle in err, err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("argv", [
    ["train", "--epochs", "1", "--hidden", "4", "--T", "2", "--no-progress", "--out", "/proc/x"],
    ["search", "mse", "--fidelity", "none", "--out", "/proc/x", "--population", "2", "--generations", "1", "--no-progress"],
    ["export", "nir", "--model", "nowhere", "--out", "/proc/x"],
    ["export", "loihi", "--model", "nowhere", "--out", "/proc/x"],
])
def test_unwritable_out_is_one_error_line(capsys, argv):
    rc, err = _run(capsys, *argv)
    if rc is None or (rc != 2 and "invalid choice" in err):  # a command not installed here
        pytest.skip(f"{argv[:2]} is not available")
    assert rc == 2 and err.startswith("error: cannot write --out /proc/x") and "\n" not in err, err


def _model_run(path):
    spec = mlp_spec(64, [4], 10)
    with RunDir.create(path, kind="train") as run:
        run.save_model(build(spec), spec)
        run.write_manifest(["neurosynth", "train"], {"T": 4, "dataset": "digits"}, 0)
    return path


def test_search_into_a_train_run_is_refused_and_energy_refuses_a_search_dir(tmp_path, capsys):
    run = _model_run(tmp_path / "trained")
    before = (run / "manifest.json").read_bytes()
    rc, err = _run(capsys, "search", "mse", "--fidelity", "none", "--out", run, "--population", "2", "--generations", "1", "--no-progress")
    assert rc == 2 and "holds a `train` run; `search mse` will not overwrite it" in err
    assert (run / "manifest.json").read_bytes() == before
    with RunDir.create(tmp_path / "search", kind="search mse") as s:
        s.write_json("best.json", {})
    rc, err = _run(capsys, "energy", "--model", tmp_path / "search", "--samples", "1", "--no-progress")
    assert rc == 2 and "holds a `search mse` run, which has no model" in err


def test_corrupt_archive_on_resume_is_one_error_line(tmp_path, capsys):
    out = tmp_path / "search"
    with RunDir.create(out, kind="search mse") as s:
        (s.path / "archive.sqlite").write_bytes(b"this is not an sqlite database" * 100)
    rc, err = _run(capsys, "search", "mse", "--fidelity", "none", "--out", out, "--resume", "--population", "2", "--generations", "1",
                   "--batch", "20", "--no-progress")
    assert rc == 2 and "is not a usable search archive" in err and "\n" not in err, err
    assert sorted(os.listdir(tmp_path)) == ["search"]


def test_export_refuses_to_overwrite_unless_forced(tmp_path, capsys):
    target = tmp_path / "net.nir"
    target.write_text("keep me")
    for kind in ("nir", "loihi"):
        rc, err = _run(capsys, "export", kind, "--model", tmp_path / "nowhere", "--out", target)
        if rc != 2 and "invalid choice" in err:
            continue
        assert rc == 2 and "already exists; pass --force" in err, err
        assert target.read_text() == "keep me"
        rc, err = _run(capsys, "export", kind, "--model", tmp_path / "nowhere", "--out", target, "--force")
        assert rc == 2 and "does not exist" in err, err  # got past the overwrite check to the missing model
    assert sorted(os.listdir(tmp_path)) == ["net.nir"]


def test_learnable_beta_run_saves_and_loads(tmp_path):
    from neurosynth.rundir import load_run
    from neurosynth.training import fit

    torch.manual_seed(0)
    spec = mlp_spec(8, [6], 2, learn=["beta", "threshold"], per_neuron=True, neuron_params={"beta": 0.99})
    model = build(spec)
    g = torch.Generator().manual_seed(0)
    data = [(torch.rand(4, 16, 8, generator=g) * 3, torch.randint(0, 2, (16,), generator=g)) for _ in range(4)]
    fit(model, data, epochs=3, lr=0.2, progress=False)  # a large lr pushes beta past 1 without the projection
    betas = torch.cat([m.beta.detach().flatten() for m in model.modules() if hasattr(m, "beta")])
    thr = torch.cat([m.threshold.detach().flatten() for m in model.modules() if hasattr(m, "threshold")])
    assert bool(((betas >= 0) & (betas <= 1)).all()) and bool((thr > 0).all())
    assert bool((betas == 1).any()) or bool((betas < 0.99).any())  # the optimiser did move beta
    from neurosynth.arch import to_spec

    with RunDir.create(tmp_path / "run", kind="train") as run:
        run.save_model(model, to_spec(model, [8]))
    loaded, _, _ = load_run(tmp_path / "run")
    x = data[0][0]
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert json.loads((tmp_path / "run" / "run.json").read_text())["complete"]


@pytest.mark.parametrize("script", ["train_shd.py", "train_dvs_gesture.py"])
def test_event_examples_without_data_are_one_error_line(tmp_path, capsys, script):
    import importlib.util
    from pathlib import Path

    from neurosynth.errors import run_script

    path = Path(__file__).resolve().parents[2] / "examples" / script
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rc = run_script(mod.main, ["--data-root", str(tmp_path / "nodata"), "--out", str(tmp_path / "run"),
                               "--epochs", "1", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: dataset") and "\n" not in err, err
    assert os.listdir(tmp_path) == []
