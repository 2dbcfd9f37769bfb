"""The Loihi voltage readout: an ``LI`` last layer, run on Loihi as LIF neurons that never fire and read by their
membrane ``v`` after the last step (spec, extraction, integer reference, netx file, Lava float and fixed point,
loss, and the ``train_shd.py --loihi --loihi-readout voltage`` command)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lava_helpers import spikes
from torch import nn

from neurosynth.arch import build
from neurosynth.hardware.lava import compat, qat
from neurosynth.hardware.lava.ir import LoihiExportError, extract
from neurosynth.hardware.lava.netx import read_netx, validate_netx, write_netx
from neurosynth.hardware.lava.reference import simulate, torch_final_membrane, torch_layer_spikes
from neurosynth.layers import SNN, Delay, Recurrent
from neurosynth.losses import get_loss
from neurosynth.neurons import LI, LIF

needs_lava = pytest.mark.skipif(not compat.lava_available(), reason="lava-nc is not installed")


def voltage_rsnn(*, layers=1, beta_out=None, gain=6.0, seed=0, n_in=20, hidden=16, n_out=5):
    torch.manual_seed(seed)
    m = build(qat.loihi_rsnn_spec(n_in, hidden, n_out, alpha=0.3, beta=0.9, layers=layers, readout="voltage",
                                  beta_out=beta_out))
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(gain)
    return m.eval()


def voltage_mlp(beta_out=0.9, seed=0):
    """A feed-forward Loihi MLP (no recurrence) ending in a leaky voltage readout."""
    torch.manual_seed(seed)
    m = SNN(qat.QLinear(20, 16, bias=False), Delay(1), LIF(beta=0.875, threshold=1.0, reset="zero"),
            qat.QLinear(16, 4, bias=False), Delay(1), LI(beta=beta_out))
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(6.0)
    return m.eval()


def test_spec_ends_in_a_non_leaky_integrator():
    spec = qat.loihi_rsnn_spec(20, 16, 5, readout="voltage")
    assert spec["layers"][-1] == {"type": "neuron", "neuron": "li", "params": {"beta": 1.0}, "shape": [5]}
    assert spec["layers"][-3]["type"] == "qlinear" and spec["layers"][-2] == {"type": "delay", "steps": 1}
    leaky = qat.loihi_rsnn_spec(20, 16, 5, readout="voltage", beta_out=0.9)["layers"][-1]["params"]["beta"]
    assert leaky == 1 - round(0.1 * 4096) / 4096  # snapped to the 12-bit decay grid
    with pytest.raises(ValueError, match="readout must be 'spikes' or 'voltage'"):
        qat.loihi_rsnn_spec(20, 16, 5, readout="membrane")


def test_extracted_readout_never_fires_and_carries_the_largest_threshold():
    net = extract(voltage_rsnn(), (20,))
    last = net.stages[-1]
    assert net.voltage_readout and last.neuron.voltage and not net.stages[0].neuron.voltage
    assert last.neuron.vth_mant == qat.VTH_MAX == 131071 and last.neuron.v_decay == 0 and last.neuron.i_decay == 4096
    assert last.neuron.lava_float()["vth"] == float("inf")


@pytest.mark.parametrize("model, match", [
    (SNN(nn.Linear(4, 3, bias=False), LI(beta=0.9), nn.Linear(3, 2, bias=False), LIF(reset="zero")),
     "follows 1, a leaky-integrator"),
    (SNN(nn.Linear(4, 3, bias=False), Delay(1), Recurrent(3, LI(beta=0.9), bias=False)), "nothing to feed back"),
    (SNN(nn.Linear(4, 3, bias=False), LI(beta=0.0)), r"beta must lie in \(0, 1\]"),
])
def test_misplaced_or_invalid_integrators_are_refused(model, match):
    with pytest.raises(LoihiExportError, match=match):
        extract(model, (4,))


@pytest.mark.parametrize("layers, beta_out", [(1, None), (2, None), (1, 0.9)])
def test_reference_readout_equals_the_torch_membrane(layers, beta_out):
    m = voltage_rsnn(layers=layers, beta_out=beta_out)
    net = extract(m, (20,))
    x = spikes(15, 6, 20)
    ref = simulate(net, x, "float")
    tv = torch_final_membrane(m, x)
    assert not ref.output.any()  # the readout never fires
    hidden = torch_layer_spikes(m, x)[:-1]
    for a, b in zip(ref.spikes[:-1], hidden):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(ref.scores(), tv, rtol=1e-12, atol=1e-12)
    assert np.abs(tv).max() > 1  # a readout that integrated something
    np.testing.assert_array_equal(ref.predictions(), tv.argmax(-1))


def test_fixed_point_readout_is_4096_times_the_float_membrane_when_the_spikes_agree():
    m = voltage_rsnn()  # non-leaky readout: v_int = sum_t (a_int << 6) with a_int = 64 w . s exactly
    net = extract(m, (20,))
    x = spikes(15, 6, 20)
    fixed, flt = simulate(net, x, "fixed"), simulate(net, x, "float")
    np.testing.assert_array_equal(fixed.spikes[0], flt.spikes[0])  # this net's hidden spikes survive quantisation
    np.testing.assert_array_equal(fixed.scores(), 4096 * flt.scores())
    assert fixed.scores().dtype.kind == "i"


def test_netx_file_marks_the_voltage_readout_and_reads_it_back(tmp_path):
    m = voltage_rsnn(layers=2)
    net = extract(m, (20,))
    path = write_netx(net, tmp_path / "v.h5")
    assert validate_netx(path) == []
    with h5py.File(path) as f:
        assert f.attrs["readout"] == "voltage" and f["layer/3/neuron/vThMant"][()] == 131071
    back = read_netx(path)
    assert back.voltage_readout and back.stages[-1].neuron.threshold == float("inf")
    x = spikes(12, 3, 20)
    np.testing.assert_array_equal(simulate(back, x, "fixed").scores(), simulate(net, x, "fixed").scores())
    with h5py.File(path, "a") as f:  # a 'voltage' file whose last layer could fire is refused
        del f["layer/3/neuron/vThMant"]
        f["layer/3/neuron"].create_dataset("vThMant", data=64)
    with pytest.raises(LoihiExportError, match="needs vThMant = 131071"):
        read_netx(path)
    spiking = write_netx(extract(build(qat.loihi_rsnn_spec(20, 16, 5)), (20,)), tmp_path / "s.h5")
    with h5py.File(spiking) as f:
        assert f.attrs["readout"] == "spikes"
    assert not read_netx(spiking).voltage_readout


def test_final_membrane_loss_scores_the_last_step():
    g = torch.Generator().manual_seed(0)
    out = torch.randn(7, 4, 3, generator=g).cumsum(0)
    y = torch.tensor([0, 2, 1, 1])
    loss = get_loss("final_membrane_ce")
    torch.testing.assert_close(loss(out, y), F.cross_entropy(out[-1] / 7, y))
    assert torch.equal(loss.predict(out), out[-1].argmax(-1))


@pytest.mark.lava
@needs_lava
@pytest.mark.parametrize("which", ["rsnn2", "mlp_leaky"])
def test_voltage_readout_verifies_in_lava_float_and_fixed(tmp_path, which):
    from neurosynth.hardware.lava.verify import verify

    m = voltage_rsnn(layers=2) if which == "rsnn2" else voltage_mlp()
    net = read_netx(write_netx(extract(m, (20,)), tmp_path / "v.h5"))
    x = spikes(12, 5, 20)
    y = torch.tensor([0, 1, 2, 3, 0])
    rep = verify(m, x, y, net=net, copies=2)  # 3 Lava runs per mode, the last one padded
    assert rep["passed"] and rep["float_exact"] and rep["fixed_exact"], rep
    assert rep["readout"] == "voltage" and rep["fixed_readout_mismatches"] == 0
    assert rep["float_readout_max_abs_diff"] <= 1e-9 * 100
    assert list(rep["float_spikes"].values())[-1] == 0 and all(v > 0 for v in list(rep["float_spikes"].values())[:-1])
    assert rep["accuracy_lava_float"] == rep["accuracy_torch"]
    assert rep["accuracy_lava_fixed"] == float((simulate(net, x, "fixed").predictions() == y.numpy()).mean())


@pytest.mark.lava
@needs_lava
def test_lava_result_returns_the_readout_membrane_per_sample():
    from neurosynth.hardware.lava.builder import run_lava

    m = voltage_mlp()
    net = extract(m, (20,))
    x = spikes(10, 3, 20).numpy()
    lava = run_lava(net, x, "fixed", copies=2)
    ref = simulate(net, x, "fixed")
    assert lava.v_out.shape == (3, 4)
    np.testing.assert_array_equal(lava.v_out, ref.v[-1])
    np.testing.assert_array_equal(lava.predictions(), ref.predictions())


@pytest.mark.slow
@pytest.mark.lava
@needs_lava
def test_train_shd_voltage_readout_trains_exports_and_verifies(tmp_path):
    from test_loihi_shd_spoken import _need_espeak, _train_shd

    _need_espeak()
    from neurosynth.datasets.spoken_digits import SpokenDigitsOptions, generate

    torch.set_num_threads(1)
    generate(tmp_path / "data", SpokenDigitsOptions(voices=3, per_voice=1, channels=32, seed=3), progress=False)
    out = tmp_path / "run"
    argv = ["--data-root", str(tmp_path / "data"), "--dataset", "spoken_digits", "--loihi", "--loihi-readout",
            "voltage", "--epochs", "1", "--T", "10", "--hidden", "8", "--batch-size", "10", "--verify", "4",
            "--out", str(out), "--no-progress"]
    assert _train_shd().main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    res = metrics["loihi"]
    assert res["passed"] and res["readout"] == "voltage" and res["fixed_readout_mismatches"] == 0
    config = json.loads((out / "manifest.json").read_text())["config"]
    assert config["loihi_readout"] == "voltage" and config["loss"] == "final_membrane_ce"
    assert json.loads((out / "arch.json").read_text())["layers"][-1]["neuron"] == "li"
    assert 0 <= metrics["loihi_fixed"]["accuracy"] <= 1 and metrics["loihi_fixed"]["samples"] == 20
    with h5py.File(out / "loihi.h5") as f:
        assert f.attrs["readout"] == "voltage"


def test_voltage_readout_needs_loihi(tmp_path, capsys):
    from test_loihi_shd_spoken import _train_shd

    from neurosynth.errors import run_script

    argv = ["--data-root", str(tmp_path), "--dataset", "spoken_digits", "--loihi-readout", "voltage"]
    assert run_script(_train_shd().main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --loihi-readout voltage") and "needs --loihi" in err[0]
    assert not any(tmp_path.iterdir())  # refused before anything was read or written
