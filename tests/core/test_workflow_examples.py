"""The example scripts run the shared training workflow: validation split in the manifest, test read once,
``--resume`` to the same result, and their workflow options' errors (one ``error:`` line, exit 2)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from neurosynth import workflow
from neurosynth.datasets.testing import write_fake_dvs_gesture, write_fake_shd
from neurosynth.errors import run_script

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _module(name):
    spec = importlib.util.spec_from_file_location(f"_wf_example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def shd(tmp_path):
    torch.set_num_threads(1)
    write_fake_shd(tmp_path / "data", n_train=24, n_test=6, seed=0, max_events=80, n_classes=4, informative=True)
    return ["--data-root", str(tmp_path / "data"), "--T", "8", "--hidden", "8", "--batch-size", "6", "--no-progress"]


def test_train_shd_carves_validation_and_reads_test_once(tmp_path, shd, monkeypatch):
    from neurosynth import training

    reads = {"test": 0}
    real = training.evaluate

    def counted(model, loader, *a, **k):
        if k.get("record_rates"):  # the final test evaluation is the only one with firing rates
            reads["test"] += 1
        return real(model, loader, *a, **k)

    monkeypatch.setattr(training, "evaluate", counted)
    out = tmp_path / "run"
    assert _module("train_shd").main([*shd, "--epochs", "3", "--val-fraction", "0.25", "--out", str(out)]) == 0
    assert reads["test"] == 1
    man = json.loads((out / "manifest.json").read_text())
    m = json.loads((out / "metrics.json").read_text())
    # 6 samples of each of 4 classes: round(0.25 * 6) = 2 of each held out
    assert man["split"]["how"] == "carved" and (man["split"]["n_fit"], man["split"]["n_val"]) == (16, 8)
    assert man["split"]["val_per_class"] == {"0": 2, "1": 2, "2": 2, "3": 2}
    assert man["selection"]["rule"] == "best_val" and man["results"]["n_val"] == 8
    assert "shd/train" in man["datasets"] and len(man["datasets"]["shd/test"]["sha256"]) == 64
    acc = m["history"]["val_accuracy"]
    assert m["chosen_epoch"] == acc.index(max(acc)) + 1 and m["test"]["samples"] == 6


def test_train_dvs_gesture_resumes_to_the_same_weights(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    write_fake_dvs_gesture(tmp_path / "data", n_train=22, n_test=3, seed=0, max_events=150)
    argv = ["--data-root", str(tmp_path / "data"), "--epochs", "3", "--T", "4", "--size", "16", "--channels", "2",
            "--hidden", "8", "--batch-size", "4", "--no-progress"]
    mod = _module("train_dvs_gesture")
    assert mod.main([*argv, "--out", str(tmp_path / "full")]) == 0

    def stop(epoch):
        if epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(workflow, "_after_epoch", stop)
    assert run_script(mod.main, [*argv, "--out", str(tmp_path / "cut")]) == 130
    monkeypatch.undo()
    assert (tmp_path / ".cut.partial" / workflow.CHECKPOINT).is_file()
    assert mod.main([*argv, "--resume", str(tmp_path / "cut")]) == 0
    a, b = (torch.load(tmp_path / d / "model.pt", weights_only=True) for d in ("full", "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    ma, mb = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("full", "cut"))
    assert ma["test_accuracy"] == mb["test_accuracy"] and ma["chosen_epoch"] == mb["chosen_epoch"]
    assert ma["split"]["n_val"] == 11 and mb["resumed_after_epoch"] == 2  # 2 of each of the 11 gestures: 1 held out


@pytest.mark.parametrize("script", ["train_shd", "train_dvs_gesture"])
@pytest.mark.parametrize("extra,needle", [
    (["--val-fraction", "1.5"], "--val-fraction must be in [0, 1)"),
    (["--val-fraction", "0"], "--select last"),
    (["--resume", "{tmp}/none"], "no interrupted run there"),
    (["--resume", "{tmp}/none", "--out", "{tmp}/elsewhere"], "names another directory"),
])
def test_example_workflow_options_one_error_line(tmp_path, capsys, script, extra, needle):
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    argv = ["--data-root", str(tmp_path / "nodata"), *extra]
    if "--out" not in extra and "--resume" not in extra:
        argv += ["--out", str(tmp_path / "x")]
    assert run_script(_module(script).main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], err
    assert not (tmp_path / "x").exists()


def test_example_resume_with_other_options_names_the_option(tmp_path, shd, monkeypatch, capsys):
    mod = _module("train_shd")

    def stop(epoch):
        raise KeyboardInterrupt

    monkeypatch.setattr(workflow, "_after_epoch", stop)
    assert run_script(mod.main, [*shd, "--epochs", "2", "--out", str(tmp_path / "cut")]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert run_script(mod.main, [*shd, "--epochs", "3", "--resume", str(tmp_path / "cut")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--epochs is 3 here but was 2" in err[0]
