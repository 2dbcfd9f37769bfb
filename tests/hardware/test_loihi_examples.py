"""The SHD and DVS-Gesture examples' ``--loihi`` modes, end to end on fixture files (tiny sizes)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from neurosynth.datasets.testing import write_fake_dvs_gesture, write_fake_shd
from neurosynth.errors import UserError
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
    assert spec["target"] == qat.TARGET
    return model, spec


@pytest.mark.slow
@pytest.mark.lava
@needs_lava
def test_train_shd_loihi_exports_dense_rec_and_verifies(tmp_path):
    torch.set_num_threads(1)
    write_fake_shd(tmp_path / "data", n_train=8, n_test=6, seed=0, max_events=200, informative=True)
    out = tmp_path / "run"
    argv = ["--data-root", str(tmp_path / "data"), "--loihi", "--alpha", "0.25", "--epochs", "1", "--T", "12",
            "--hidden", "12", "--layers", "2", "--batch-size", "4", "--verify", "6", "--out", str(out), "--no-progress"]
    assert _module("train_shd").main(argv) == 0
    res = json.loads((out / "metrics.json").read_text())["loihi"]
    assert res["passed"] and res["float_exact"] and res["fixed_exact"] and res["samples"] == 6
    assert res["accuracy_lava_float"] == res["accuracy_torch"]
    assert res["energy"]["T"] == 12 and res["energy"]["loihi_nj"] > 0
    assert (out / "loihi.h5").is_file()
    model, spec = _loaded(out)
    net = extract(model, tuple(spec["input_shape"]))
    assert [s.recurrent for s in net.stages] == [True, True, False] and net.stages[0].neuron.alpha > 0


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
    with pytest.raises(UserError, match="--verify needs --loihi"):
        _module("train_shd").main(["--data-root", str(tmp_path), "--verify", "3", "--out", str(tmp_path / "r")])


def test_nfashion_sensor_crop_and_size_refusal(tmp_path):
    mod = _module("train_dvs_gesture")
    x = torch.zeros(3, 2, 34, 34)
    x[0, 0, 0, 5] = 1  # border pixel: cropped by 32 and 16
    x[1, 1, 1, 1] = 2
    x[1, 1, 2, 2] = 1  # 16: pixels (1,1) and (2,2) of the 34 grid are (0,0) and (1,1) of the crop: one 2x2 cell
    x[2, 0, 33, 20] = 1
    ds = [(x, 7)]
    full, c32, c16 = (mod.SensorCrop(ds, s) for s in (34, 32, 16))
    assert full[0][0].shape == (3, 2, 34, 34) and full[0][0].sum() == 4 and full[0][1] == 7
    y32 = c32[0][0]
    assert y32.shape == (3, 2, 32, 32) and y32.sum() == 2 and y32[1, 1, 0, 0] == 1 and y32[1, 1, 1, 1] == 1
    y16 = c16[0][0]
    assert y16.shape == (3, 2, 16, 16) and y16.sum() == 1 and y16[1, 1, 0, 0] == 1  # summed, then clipped to 0/1
    with pytest.raises(ValueError, match="must be one of"):
        mod.SensorCrop(ds, 20)
    with pytest.raises(UserError, match="nfashion_mnist --loihi takes --size"):
        mod.main(["--dataset", "nfashion_mnist", "--data-root", str(tmp_path), "--loihi", "--size", "64",
                  "--out", str(tmp_path / "r")])
    with pytest.raises(UserError, match="dvs_gesture takes --size"):
        mod.main(["--data-root", str(tmp_path), "--loihi", "--size", "34", "--out", str(tmp_path / "r")])


def test_pooled_spec_refuses_only_inputs_too_small_to_pool():
    spec = qat.loihi_pooled_conv_spec((2, 34, 34), [2, 4], 8, 10)  # 34 -> 17 -> 8: odd maps are fine
    assert [l["shape"] for l in spec["layers"] if "shape" in l][:4] == [[2, 34, 34], [2, 17, 17], [4, 17, 17],
                                                                        [4, 8, 8]]
    with pytest.raises(ValueError, match=r"qsumpool layer of block 2 \(layer 9.*1x1 map.*at least 4"):
        qat.loihi_pooled_conv_spec((2, 3, 3), [2, 4], 8, 10)


@pytest.mark.slow
@pytest.mark.lava
@needs_lava
def test_train_dvs_loihi_on_nfashion_crops_trains_and_verifies(tmp_path, monkeypatch):
    from neurosynth.datasets import fashion
    from neurosynth.datasets.testing import write_fake_fashion_mnist

    torch.set_num_threads(1)
    write_fake_fashion_mnist(tmp_path / "fashion", 6, 4, seed=0)
    monkeypatch.setattr(fashion, "SYSTEM_DIR", tmp_path / "fashion")
    out = tmp_path / "run"
    argv = ["--dataset", "nfashion_mnist", "--data-root", str(tmp_path / "data"), "--n-samples", "6,4", "--loihi",
            "--size", "16", "--epochs", "1", "--T", "4", "--channels", "2", "--hidden", "8", "--batch-size", "3",
            "--out", str(out), "--no-progress"]
    mod = _module("train_dvs_gesture")
    assert mod.main(argv) == 0
    assert 0 < json.loads((out / "metrics.json").read_text())["cropped_border_event_fraction"] < 0.2
    with pytest.raises(UserError, match="trained on inputs"):  # the run's input shape must match --size
        mod.main([*argv[:argv.index("--size") + 1], "32", "--verify", "4", "--verify-run", str(out)])
    assert mod.main([*argv, "--verify", "4", "--verify-run", str(out)]) == 0  # verify the trained run
    res = json.loads((out / "loihi_verify.json").read_text())["loihi"]
    assert res["passed"] and res["float_exact"] and res["fixed_exact"] and res["samples"] == 4
    assert set(res["lava_seconds"]) == {"float", "fixed"} and (out / "loihi.h5").is_file()
    assert 0 < res["cropped_border_event_fraction"] < 0.2
    model, spec = _loaded(out)
    assert spec["input_shape"] == [2, 16, 16]
    net = extract(model, (2, 16, 16))
    assert net.stages[-1].out_shape == (10,)


def test_silent_tail_appends_zero_steps():
    mod = _module("train_dvs_gesture")
    x = torch.ones(4, 2, 3, 3)
    padded = mod.SilentTail([(x, 3)], 6)
    y, label = padded[0]
    assert y.shape == (10, 2, 3, 3) and label == 3 and len(padded) == 1
    assert torch.equal(y[:4], x) and not y[4:].any()
