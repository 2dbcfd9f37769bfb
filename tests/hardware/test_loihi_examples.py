"""The SHD and DVS-Gesture examples' ``--loihi`` modes, end to end on fixture files (tiny sizes)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from neurosynth.datasets.testing import write_fake_dvs_gesture, write_fake_shd
from neurosynth.hardware.lava import compat, qat
from neurosynth.hardware.lava.ir import extract

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
needs_lava = pytest.mark.skipif(not compat.lava_available(), reason="lava-nc is not installed")


def _module(name):
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _loaded(out: Path):
    from neurosynth.rundir import load_run

    model, spec, _ = load_run(out)
    assert spec["plugin"] == qat.PLUGIN
    return model, spec


@pytest.mark.slow
@pytest.mark.lava
@needs_lava
def test_train_shd_loihi_exports_dense_rec_and_verifies(tmp_path):
    torch.set_num_threads(1)
    write_fake_shd(tmp_path / "data", n_train=8, n_test=6, seed=0, max_events=200, informative=True)
    out = tmp_path / "run"
    argv = ["--data-root", str(tmp_path / "data"), "--loihi", "--alpha", "0.25", "--epochs", "1", "--T", "12",
            "--hidden", "12", "--batch-size", "4", "--verify", "6", "--out", str(out), "--no-progress"]
    assert _module("train_shd").main(argv) == 0
    res = json.loads((out / "metrics.json").read_text())["loihi"]
    assert res["passed"] and res["float_exact"] and res["fixed_exact"] and res["samples"] == 6
    assert res["accuracy_lava_float"] == res["accuracy_torch"]
    assert res["energy"]["T"] == 12 and res["energy"]["loihi_nj"] > 0
    assert (out / "loihi.h5").is_file()
    model, spec = _loaded(out)
    net = extract(model, tuple(spec["input_shape"]))
    assert [s.recurrent for s in net.stages] == [True, False] and net.stages[0].neuron.alpha > 0


def test_train_dvs_loihi_trains_the_pooled_loihi_model(tmp_path):
    torch.set_num_threads(1)
    write_fake_dvs_gesture(tmp_path / "data", n_train=3, n_test=2, seed=0, max_events=200)
    out = tmp_path / "run"
    argv = ["--data-root", str(tmp_path / "data"), "--loihi", "--epochs", "1", "--T", "4", "--size", "16",
            "--channels", "2", "--hidden", "8", "--batch-size", "3", "--out", str(out), "--no-progress"]
    assert _module("train_dvs_gesture").main(argv) == 0
    model, spec = _loaded(out)
    net = extract(model, tuple(spec["input_shape"]))
    pools = [s for s in net.stages if s.kind == "conv" and s.groups == s.in_shape[0] > 1]
    assert len(pools) == 2 and all((p.int_weight() == 64).all() for p in pools)
    assert [s.kind for s in net.stages] == ["conv"] * 4 + ["dense"] * 2


def test_verify_needs_loihi(tmp_path):
    with pytest.raises(SystemExit, match="--verify needs --loihi"):
        _module("train_shd").main(["--data-root", str(tmp_path), "--verify", "3", "--out", str(tmp_path / "r")])
