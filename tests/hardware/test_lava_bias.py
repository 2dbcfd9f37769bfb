"""Loihi's neuron bias: ``qat.QBias`` after a dense synapse's ``Delay(1)`` (plain LIF), exported as netx ``bias``
(Lava ``bias_mant`` with ``bias_exp = 6``), reproduced by the integer reference and verified in Lava."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from lava_helpers import spikes
from torch import nn

from neurosynth.arch import build, to_spec
from neurosynth.hardware.lava import compat, qat
from neurosynth.hardware.lava.ir import LoihiExportError, check_fixed, extract
from neurosynth.hardware.lava.netx import read_netx, validate_netx, write_netx
from neurosynth.hardware.lava.reference import simulate, torch_layer_spikes
from neurosynth.layers import SNN, Delay, Recurrent
from neurosynth.neurons import LIF, CubaLIF

needs_lava = pytest.mark.skipif(not compat.lava_available(), reason="lava-nc is not installed")


def biased_rsnn(*, layers=2, readout="spikes", seed=0):
    torch.manual_seed(seed)
    m = build(qat.loihi_rsnn_spec(20, 16, 5, beta=0.9, layers=layers, readout=readout, bias=True))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            else:
                p.mul_(6.0)
    return m.eval()


def test_qbias_sits_on_the_64th_grid_clamped_to_13_bits_with_a_straight_through_gradient():
    b = qat.QBias(4)
    with torch.no_grad():
        b.bias.copy_(torch.tensor([0.01, -0.3, 100.0, -100.0]))
    np.testing.assert_array_equal(b.effective_bias().detach().numpy(), [1 / 64, -19 / 64, 4095 / 64, -4096 / 64])
    x = torch.zeros(3, 2, 4)
    b(x).sum().backward()
    np.testing.assert_array_equal(b.bias.grad.numpy(), [6.0] * 4)  # T * B per feature
    again = build(to_spec(SNN(b)))
    assert isinstance(again[0], qat.QBias) and to_spec(SNN(b))["layers"][0] == {"type": "qbias", "features": 4}


def test_spec_puts_a_bias_after_each_hidden_delay_and_needs_a_plain_lif():
    layers = qat.loihi_rsnn_spec(20, 16, 5, layers=2, bias=True)["layers"]
    assert [entry["type"] for entry in layers] == ["qlinear", "delay", "qbias", "qrecurrent"] * 2 + \
        ["qlinear", "delay", "neuron"]
    with pytest.raises(ValueError, match="bias=True needs alpha=0"):
        qat.loihi_rsnn_spec(20, 16, 5, alpha=0.3, bias=True)


def test_extracted_bias_is_the_quantised_one():
    m = biased_rsnn()
    net = extract(m, (20,))
    assert [s.bias is not None for s in net.stages] == [True, True, False]
    np.testing.assert_array_equal(net.stages[0].int_bias(), torch.round(m[2].bias.detach() * 64).long().numpy())


@pytest.mark.parametrize("model, match", [
    (SNN(qat.QLinear(4, 3), qat.QBias(3), Delay(1), LIF(reset="zero")), "must follow the delay"),
    (SNN(qat.QBias(4), qat.QLinear(4, 3), Delay(1), LIF(reset="zero")), "follows no synapse"),
    (SNN(qat.QLinear(4, 3), Delay(1), qat.QBias(3), CubaLIF(alpha=0.5, reset="zero")), "CubaLIF"),
    (SNN(qat.QLinear(4, 3), Delay(1), qat.QBias(3), Recurrent(3, CubaLIF(alpha=0.5, reset="zero"), bias=False)),
     "CubaLIF"),
    (SNN(qat.QLinear(4, 3), Delay(1), qat.QBias(3), qat.QBias(3), LIF(reset="zero")), "already has a bias"),
])
def test_misplaced_biases_are_refused(model, match):
    with pytest.raises(LoihiExportError, match=match):
        extract(model, (4,))


def test_out_of_range_bias_is_refused_before_writing(tmp_path):
    from dataclasses import replace

    net = extract(biased_rsnn(), (20,))
    layer = net.stages[0]
    bad = replace(net, layers=tuple(replace(s, bias=s.bias + 70.0) if s is layer else s for s in net.layers))
    with pytest.raises(LoihiExportError, match="13-bit bias mantissa"):
        check_fixed(bad)
    with pytest.raises(LoihiExportError):
        write_netx(bad, tmp_path / "bad.h5")
    assert not (tmp_path / "bad.h5").exists()


def test_a_bias_alone_drives_the_neurons_from_the_first_step_as_on_loihi():
    torch.manual_seed(0)
    m = SNN(qat.QLinear(4, 3), Delay(1), qat.QBias(3), LIF(beta=0.5, threshold=1.0, reset="zero")).eval()
    with torch.no_grad():
        m[2].bias.copy_(torch.tensor([1.5, 0.75, -1.0]))
    x = torch.zeros(6, 1, 4)
    ts = torch_layer_spikes(m, x)[0][:, 0]
    # 1.5 fires every step; 0.75 charges to 0.75, 1.125 (fires), 0.75, 1.125, ...; -1 never
    np.testing.assert_array_equal(ts, [[1, 0, 0], [1, 1, 0], [1, 0, 0], [1, 1, 0], [1, 0, 0], [1, 1, 0]])
    net = extract(m, (4,))
    for mode in ("float", "fixed"):
        np.testing.assert_array_equal(simulate(net, x.numpy(), mode).output[:, 0], ts)


@pytest.mark.parametrize("readout", ["spikes", "voltage"])
def test_reference_with_biases_equals_torch(readout):
    m = biased_rsnn(readout=readout)
    x = spikes(15, 6, 20)
    ref = simulate(extract(m, (20,)), x, "float")
    ts = torch_layer_spikes(m, x)
    for a, b in zip(ref.spikes[:2], ts[:2]):
        np.testing.assert_array_equal(a, b)
    assert all(s.any() for s in ref.spikes[:2])


def test_netx_bias_dataset_round_trips(tmp_path):
    net = extract(biased_rsnn(), (20,))
    path = write_netx(net, tmp_path / "b.h5")
    assert validate_netx(path) == []
    with h5py.File(path) as f:
        np.testing.assert_array_equal(f["layer/1/bias"][()], net.stages[0].int_bias())
        assert "bias" not in f["layer/3"]
    back = read_netx(path)
    np.testing.assert_array_equal(back.stages[1].int_bias(), net.stages[1].int_bias())
    x = spikes(12, 3, 20)
    for a, b in zip(simulate(back, x, "fixed").spikes, simulate(net, x, "fixed").spikes):
        np.testing.assert_array_equal(a, b)


@pytest.mark.lava
@needs_lava
@pytest.mark.parametrize("readout", ["spikes", "voltage"])
def test_biased_network_verifies_in_lava_float_and_fixed(tmp_path, readout):
    from neurosynth.hardware.lava.verify import verify

    m = biased_rsnn(readout=readout)
    net = read_netx(write_netx(extract(m, (20,)), tmp_path / "b.h5"))
    x = spikes(12, 5, 20)
    rep = verify(m, x, torch.tensor([0, 1, 2, 3, 4]), net=net, copies=2)
    assert rep["passed"] and rep["float_exact"] and rep["fixed_exact"], rep
    assert rep["accuracy_lava_float"] == rep["accuracy_torch"]


@pytest.mark.lava
@needs_lava
def test_feed_forward_biased_mlp_runs_one_sample_per_copy_in_lava():
    """Without recurrence run_lava would play samples one after another; a bias keeps charging the neurons between
    them, so a biased network gets one sample per copy and run (each from the zero state, as torch)."""
    from neurosynth.hardware.lava.builder import run_lava

    torch.manual_seed(1)
    m = SNN(qat.QLinear(20, 8), Delay(1), qat.QBias(8), LIF(beta=0.9, threshold=1.0, reset="zero"),
            nn.Identity()).eval()
    with torch.no_grad():
        m[0].weight.mul_(6.0)
        m[2].bias.fill_(0.25)
    net = extract(m, (20,))
    x = spikes(10, 5, 20).numpy()
    lava = run_lava(net, x, "fixed", copies=2, slots=4)
    np.testing.assert_array_equal(lava.output, simulate(net, x, "fixed").output)
