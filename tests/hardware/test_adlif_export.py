"""adLIF does not deploy: ``export loihi`` and ``export nir`` refuse it with one ``error:`` line giving the reason
and the alternative, exit 2, and write nothing (research/delays_adlif.md 3 and 4.3)."""

from __future__ import annotations

import pytest
import torch

from neurosynth.apps.cli import main
from neurosynth.arch import build
from neurosynth.rundir import RunDir


def _run(path, neuron: str, recurrent: bool = False):
    layer = ({"type": "recurrent", "size": 6, "neuron": neuron, "reset": "zero"} if recurrent
             else {"type": "neuron", "neuron": neuron, "reset": "zero"})
    spec = {"format": "neurosynth.arch/2", "kind": "sequential", "input_shape": [8], "layers": [
        {"type": "linear", "in_features": 8, "out_features": 6, "bias": False},
        {"type": "delay", "steps": 1}, layer,
        {"type": "linear", "in_features": 6, "out_features": 3, "bias": False},
        {"type": "delay", "steps": 1},
        {"type": "neuron", "neuron": "cubalif", "reset": "zero"}]}
    torch.manual_seed(0)
    RunDir(path).save_model(build(spec), spec)
    return path


def _one_error_line(capsys) -> str:
    cap = capsys.readouterr()
    lines = [ln for ln in cap.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), cap.err
    return lines[0]


@pytest.mark.parametrize("neuron,cls,recurrent", [("adlif", "AdLIF", False), ("se_adlif", "SEAdLIF", False),
                                                  ("adlif", "AdLIF", True)])
def test_export_loihi_refuses_adlif(tmp_path, capsys, neuron, cls, recurrent):
    run = _run(tmp_path / "run", neuron, recurrent)
    out = tmp_path / "out" / "net.h5"
    assert main(["export", "loihi", "--model", str(run), "--out", str(out)]) == 2
    err = _one_error_line(capsys)
    assert f"({cls})" in err and "cannot run on Loihi" in err
    assert "adaptation current w" in err and "lava-loihi" in err  # the reason
    assert "--neuron cubalif --reset zero" in err  # the alternative
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("neuron,cls", [("adlif", "AdLIF"), ("se_adlif", "SEAdLIF")])
def test_export_nir_refuses_adlif(tmp_path, capsys, neuron, cls):
    pytest.importorskip("nir")
    run = _run(tmp_path / "run", neuron)
    out = tmp_path / "out" / "net.nir"
    assert main(["export", "nir", "--model", str(run), "--out", str(out)]) == 2
    err = _one_error_line(capsys)
    assert cls in err and "has no NIR primitive" in err and "no adaptation" in err
    assert "--neuron cubalif" in err
    assert not (tmp_path / "out").exists()
