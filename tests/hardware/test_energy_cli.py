"""``neurosynth energy``: table + JSON (+ PNG) from a run directory; counts match the library call."""

from __future__ import annotations

import json

import pytest
import torch

from neurosynth.apps.cli import main
from neurosynth.arch import build, mlp_spec
from neurosynth.hardware.energy import count_ops
from neurosynth.rundir import RunDir


def _run_dir(path):
    torch.manual_seed(0)
    spec = mlp_spec(64, [32], 10, neuron="lif", reset="zero")
    model = build(spec)
    run = RunDir(path)
    run.save_model(model, spec)
    return model, run


def test_energy_cli_on_an_input_file(tmp_path, capsys):
    model, _ = _run_dir(tmp_path / "run")
    x = (torch.rand(8, 6, 64, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    torch.save(x, tmp_path / "x.pt")
    out = tmp_path / "e" / "energy.json"
    rc = main(["energy", "--model", str(tmp_path / "run"), "--inputs", str(tmp_path / "x.pt"), "--samples", "4",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "loihi2" in text and "no published per-op energy" in text and "ANN (dense, 1 pass)" in text
    doc = json.loads(out.read_text())
    expected = count_ops(model, x[:, :4])
    assert doc["counts"]["syn_ops"] == expected.syn_ops and doc["counts"]["samples"] == 4
    assert doc["snn"]["cost_model"] == "loihi" and doc["ann"]["cost_model"] == "cmos45_fp32"
    assert doc["snn"]["total_j"] == pytest.approx(expected.syn_ops * 23.6e-12 + expected.neuron_updates * 81e-12)
    assert doc["ann"]["total_j"] == pytest.approx(expected.ann_macs * 4.6e-12)
    assert "Horowitz" in doc["cost_models"]["cmos45_fp32"]["source"]
    assert doc["manifest"]["config"]["samples"] == 4
    assert (tmp_path / "e" / "plots" / "energy.png").stat().st_size > 1000


def test_energy_cli_uses_the_digits_test_set_named_in_the_manifest(tmp_path, capsys):
    _, run = _run_dir(tmp_path / "run")
    run.write_manifest("neurosynth train", {"dataset": "digits", "T": 5, "encoder": "rate"}, 0)
    assert main(["energy", "--model", str(tmp_path / "run"), "--samples", "3", "--no-progress"]) == 0
    assert "digits test split" in capsys.readouterr().out
    doc = json.loads((tmp_path / "run" / "energy.json").read_text())
    assert doc["counts"]["samples"] == 3 and doc["counts"]["timesteps"] == 5


def test_energy_cli_errors_name_the_fix(tmp_path, capsys):
    _run_dir(tmp_path / "run")
    assert main(["energy", "--model", str(tmp_path / "run")]) == 2
    assert "pass --inputs FILE" in capsys.readouterr().err
    assert main(["energy", "--model", str(tmp_path / "run"), "--snn-cost", "tpu"]) == 2
    assert "unknown cost model 'tpu'" in capsys.readouterr().err
    torch.save(torch.zeros(3, 4), tmp_path / "bad.pt")
    assert main(["energy", "--model", str(tmp_path / "run"), "--inputs", str(tmp_path / "bad.pt")]) == 2
    assert "time-first tensor" in capsys.readouterr().err


def test_energy_cli_refuses_a_run_directory_another_command_is_writing(tmp_path, capsys):
    from neurosynth.rundir import locked

    _, run = _run_dir(tmp_path / "run")
    run.write_manifest("neurosynth train", {"dataset": "digits", "T": 5, "encoder": "rate"}, 0)
    args = ["energy", "--model", str(tmp_path / "run"), "--samples", "2", "--no-progress"]
    with locked(tmp_path / "run"):  # e.g. `neurosynth train --out run` rewriting it
        assert main(args) == 2
    assert "being written by another neurosynth process" in capsys.readouterr().err
    assert not (tmp_path / "run" / "energy.json").exists()
    assert main(args) == 0  # the lock is released afterwards
    assert (tmp_path / "run" / "energy.json").exists() and not list(tmp_path.glob(".run.lock"))
