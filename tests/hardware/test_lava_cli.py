"""``neurosynth export loihi`` and the demo stage, on small run directories."""

from __future__ import annotations

import json

import pytest
import torch
from lava_helpers import mlp

from neurosynth.apps.cli import main
from neurosynth.hardware.lava import compat, qat
from neurosynth.hardware.lava.netx import validate_netx
from neurosynth.rundir import RunDir

needs_lava = pytest.mark.skipif(not compat.lava_available(), reason="lava-nc is not installed")


def _digits_run(path, *, spec_kw=None):
    """A Loihi-family digits model (weights scaled so it spikes; accuracy is not the point here)."""
    torch.manual_seed(0)
    m, spec = mlp(64, (16,), 10, gain=5.0, **(spec_kw or {}))
    rd = RunDir(path)
    rd.save_model(m, spec)
    rd.write_manifest(["test"], {"dataset": "digits", "T": 8, "encoder": "rate"}, 0, {})
    return path


def test_export_without_verify_writes_valid_netx(tmp_path, capsys):
    run = _digits_run(tmp_path / "run")
    out = tmp_path / "out" / "net.h5"
    assert main(["export", "loihi", "--model", str(run), "--out", str(out)]) == 0
    assert validate_netx(out) == []
    man = json.loads((tmp_path / "out" / "net.manifest.json").read_text())
    assert man["config"]["verify"] == 0 and man["results"]["layers"][0]["vThMant"] == 64
    assert "wrote" in capsys.readouterr().out


def test_subtract_reset_run_is_refused_and_nothing_written(tmp_path, capsys):
    from neurosynth.arch import build

    spec = {"format": "neurosynth.arch/1", "kind": "sequential", "input_shape": [64], "layers": [
        {"type": "linear", "in_features": 64, "out_features": 10, "bias": False},
        {"type": "neuron", "neuron": "lif", "params": {"beta": 0.9, "threshold": 1.0}, "reset": "subtract"}]}
    rd = RunDir(tmp_path / "run")
    rd.save_model(build(spec), spec)
    out = tmp_path / "out" / "net.h5"
    assert main(["export", "loihi", "--model", str(rd.path), "--out", str(out), "--verify", "4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "layer 1 (LIF" in err and "retrain with reset='zero'" in err
    assert not (tmp_path / "out").exists()


def test_bad_modes_is_a_user_error(tmp_path, capsys):
    run = _digits_run(tmp_path / "run")
    assert main(["export", "loihi", "--model", str(run), "--out", str(tmp_path / "n.h5"), "--modes", "fast"]) == 2
    assert "--modes" in capsys.readouterr().err


@pytest.mark.lava
@needs_lava
def test_export_verify_runs_float_and_fixed_from_the_file(tmp_path, capsys):
    run = _digits_run(tmp_path / "run", spec_kw={"alpha": 0.3})
    out = tmp_path / "net.h5"
    assert main(["export", "loihi", "--model", str(run), "--out", str(out), "--verify", "12"]) == 0
    rep = json.loads((tmp_path / "net.manifest.json").read_text())["results"]["verification"]
    assert rep["samples"] == 12 and rep["steps"] == 8
    assert rep["float_exact"] and rep["fixed_exact"]
    assert sum(rep["float_spikes"].values()) > 0
    assert rep["accuracy_torch"] == rep["accuracy_lava_float"]
    assert (tmp_path / "net.png").exists() and validate_netx(out) == []
    assert "bit for bit: True" in capsys.readouterr().out


@pytest.mark.lava
@needs_lava
def test_demo_stage_reports_lava_and_torch_accuracy(tmp_path, monkeypatch):
    from neurosynth.apps.demo import loihi as demo

    monkeypatch.setattr(demo, "QUICK_SAMPLES", 10)
    ctx = {"run_dir": _digits_run(tmp_path / "run"), "report": [], "out": tmp_path / "demo", "quick": True}
    demo.stage(ctx)
    text = "\n".join(ctx["report"])
    assert "torch float" in text and "Lava fixed point" in text and "bit for bit: True" in text
    assert validate_netx(tmp_path / "demo" / "loihi" / "net.h5") == []


def test_spec_plugin_is_importable_by_build():
    spec = qat.loihi_mlp_spec(4, [], 2)
    assert spec["layers"][0]["type"] == "qlinear"
    from neurosynth.arch import build

    assert type(build(json.loads(json.dumps(spec)))[0]).__name__ == "QLinear"
