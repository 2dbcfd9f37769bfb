"""Loihi model family, quantisation, export checks and the integer reference (no Lava needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lava_helpers import convnet, mlp, spikes
from torch import nn

from neurosynth.arch import build, to_spec
from neurosynth.hardware.lava.ir import LoihiExportError, check_fixed, extract
from neurosynth.hardware.lava.reference import simulate, torch_layer_spikes
from neurosynth.hardware.targets import loihi_qat as qat
from neurosynth.layers import SNN, Delay
from neurosynth.neurons import ALIF, LI, LIF, CubaLIF

# ----------------------------------------------------------------------------- grids and STE


def test_weight_grid_is_even_ints_over_64_with_ste():
    w = torch.tensor([-5.0, -4.0, -0.015, 0.0, 0.015, 0.03, 1.2345, 3.97, 9.0], requires_grad=True)
    q = qat.quantize_weight(w)
    ints = q.detach() * 64
    assert torch.equal(ints, torch.round(ints))
    assert bool((ints.remainder(2) == 0).all())
    assert ints.tolist() == [-256, -256, 0, 0, 0, 2, 80, 254, 254]
    q.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))  # straight-through


def test_decay_and_threshold_grids():
    assert qat.i_decay(0.0) == 4096 and qat.v_decay(0.9) == 410 and qat.threshold_mant(1.0) == 64
    assert qat.snap_beta(0.9) == 1 - 410 / 4096
    assert qat.snap_alpha(0.99999) == 1 - 1 / 4096  # current decay >= 1
    assert qat.snap_threshold(1e-9) == 1 / 64
    entry = qat.loihi_neuron_entry(beta=0.9, alpha=0.3, threshold=1.01)
    assert entry["neuron"] == "cubalif" and entry["reset"] == "zero"
    assert entry["params"]["threshold"] == 65 / 64
    with pytest.raises(ValueError, match="beta"):
        qat.loihi_neuron_entry(beta=1.0)
    with pytest.raises(ValueError, match="threshold"):
        qat.loihi_neuron_entry(threshold=5000)


def test_loihi_mlp_spec_builds_round_trips_and_quantises():
    spec = qat.loihi_mlp_spec(12, [7], 3, beta=0.8, alpha=0.5, threshold=1.3)
    assert spec["target"] == "loihi" and "plugin" not in spec and spec["format"] == "neurosynth.arch/2"
    m = build(spec)
    types = [type(c).__name__ for c in m.children()]
    assert types == ["QLinear", "Delay", "CubaLIF", "QLinear", "Delay", "CubaLIF"]
    assert m[2].reset == "zero" and float(m[2].threshold[0]) == qat.snap_threshold(1.3)
    again = build(to_spec(m, input_shape=[12], target=qat.TARGET))
    again.load_state_dict(m.state_dict())
    x = spikes(6, 2, 12)
    assert torch.equal(m(x), again(x))
    w = m[0].effective_weight().detach() * 64
    assert torch.equal(w, torch.round(w)) and bool((w.remainder(2) == 0).all())


def test_qconv2d_spec_fields_are_validated():
    with pytest.raises(ValueError, match="kernel_size"):
        qat.build_qconv2d({"type": "qconv2d", "in_channels": 1, "out_channels": 2})
    with pytest.raises(ValueError, match="unknown"):
        qat.build_qlinear({"type": "qlinear", "in_features": 1, "out_features": 2, "bogus": 1})


# ----------------------------------------------------------------------------- refusals


def _snn(*mods):
    return SNN(*mods).eval()


@pytest.mark.parametrize("model, match", [
    (lambda: _snn(nn.Linear(4, 3, bias=False), LIF(reset="subtract")), "retrain with reset='zero'"),
    (lambda: _snn(nn.Linear(4, 3, bias=False), ALIF(reset="zero")), "ALIF"),
    # LI is Loihi's voltage readout: the last layer only (tests/hardware/test_lava_voltage_readout.py)
    (lambda: _snn(nn.Linear(4, 3, bias=False), LI(), nn.Linear(3, 2, bias=False), LIF(reset="zero")),
     "LI only as the network's voltage readout"),
    (lambda: _snn(nn.Linear(4, 3), LIF(reset="zero")), "bias=False"),
    (lambda: _snn(nn.Linear(4, 3, bias=False), Delay(2), LIF(reset="zero")), "Delay\\(1\\)"),
    (lambda: _snn(nn.Linear(4, 3, bias=False), LIF(reset="zero"), nn.Linear(3, 2, bias=False)), "ends with synapse"),
    (lambda: _snn(nn.Linear(4, 3, bias=False), nn.ReLU(), LIF(reset="zero")), "ReLU"),
    (lambda: _snn(nn.Linear(4, 3, bias=False), LIF(reset="zero", beta=[0.5, 0.6, 0.7], shape=3)), "shared beta"),
])
def test_unsupported_models_are_refused_naming_layer_and_fix(model, match):
    with pytest.raises(LoihiExportError, match=match):
        extract(model())


def test_maxpool_refused_with_strided_conv_hint():
    m = _snn(nn.Conv2d(1, 2, 3, bias=False), nn.MaxPool2d(2), LIF(reset="zero"))
    with pytest.raises(LoihiExportError, match=r"layer 1 \(MaxPool2d\).*strided convolution"):
        extract(m, (1, 8, 8))


def test_out_of_range_weights_and_thresholds_refused():
    m = _snn(nn.Linear(4, 3, bias=False), LIF(reset="zero"))
    with torch.no_grad():
        m[0].weight.fill_(0.5)
        m[0].weight[0, 0] = 4.5
    with pytest.raises(LoihiExportError, match=r"layer 0: weights .* outside the 8-bit range"):
        check_fixed(extract(m))
    m2 = _snn(nn.Linear(4, 3, bias=False), LIF(reset="zero", threshold=3000.0))
    with pytest.raises(LoihiExportError, match="vThMant"):
        check_fixed(extract(m2))


# ----------------------------------------------------------------------------- reference semantics


def test_extract_reads_parameters_and_delays():
    m, _ = mlp(alpha=0.5, beta=0.8, threshold=1.25)
    net = extract(m)
    assert [s.kind for s in net.layers] == ["dense", "dense"]
    p = net.stages[0].neuron
    assert (p.i_decay, p.v_decay, p.vth_mant) == (2048, round(0.2 * 4096), 80)
    assert p.lava_fixed() == {"du": 2047, "dv": round(0.2 * 4096), "vth": 80}
    assert net.torch_shifts() == [0, 0]
    m2, _ = mlp(delay=False)
    assert extract(m2).torch_shifts() == [1, 2]


@pytest.mark.parametrize("alpha", [0.0, 0.4])
def test_float_reference_equals_torch_spikes_exactly(alpha):
    m, _ = mlp(alpha=alpha)
    x = spikes(15, 5, 20)
    ts = torch_layer_spikes(m, x)
    ref = simulate(extract(m), x, "float")
    assert all(t.any() for t in ts)
    for a, b in zip(ts, ref.spikes):
        np.testing.assert_array_equal(a, b)


def test_float_reference_of_conv_net_equals_torch():
    m, _ = convnet()
    x = spikes(10, 3, 2, 6, 6)
    for a, b in zip(torch_layer_spikes(m, x), simulate(extract(m, (2, 6, 6)), x, "float").spikes):
        assert a.any()
        np.testing.assert_array_equal(a, b)


def test_model_without_delay_lags_one_step_per_layer():
    m, _ = mlp(delay=False)
    x = spikes(15, 4, 20)
    ts = torch_layer_spikes(m, x)
    ref = simulate(extract(m), np.concatenate([x.numpy(), np.zeros((2, 4, 20))]), "float")
    for t_sp, l_sp, shift in zip(ts, ref.spikes, [1, 2]):
        np.testing.assert_array_equal(l_sp[shift:shift + 15], t_sp)


def test_fixed_reference_golden_single_neuron():
    """Hand-computed Loihi trace: W=1.0 (64), iDecay 2048 (alpha .5), vDecay 1024 (beta .75), vThMant 200."""
    m = _snn(qat.QLinear(1, 1), Delay(1), CubaLIF(alpha=0.5, beta=0.75, threshold=200 / 64))
    with torch.no_grad():
        m[0].weight.fill_(1.0)
    x = torch.tensor([1, 1, 1, 0, 0, 0, 0]).float().view(7, 1, 1)
    # a_t = 64 s_{t-1};  u = (u*2048)>>12 + (a<<6);  v = (v*3072)>>12 + u;  spike if v > 200<<6 = 12800
    # t0: a=0 u=0 v=0 | t1: u=4096 v=4096 | t2: u=2048+4096=6144 v=3072+6144=9216
    # t3: u=3072+4096=7168 v=6912+7168=14080>12800 -> spike, v=0 | t4: u=3584 v=3584
    # t5: u=1792 v=2688+1792=4480 | t6: u=896 v=3360+896=4256
    ref = simulate(extract(m), x, "fixed")
    assert ref.output[:, 0, 0].astype(int).tolist() == [0, 0, 0, 1, 0, 0, 0]
    assert int(ref.v[0][0, 0]) == 4256


def test_inputs_must_be_binary_and_time_first():
    m, _ = mlp()
    net = extract(m)
    with pytest.raises(ValueError, match="binary"):
        simulate(net, torch.full((3, 1, 20), 0.5), "fixed")
    with pytest.raises(ValueError, match=r"\[T, B, 20\]"):
        simulate(net, torch.zeros(3, 20), "fixed")


def test_qat_training_keeps_accuracy_in_fixed_point():
    """A Loihi-family model trained with QAT on digits scores the same in our bit-exact integer reference
    (which Lava fixed point matches bit for bit, see test_lava_sim) as in float torch (within 1 pp)."""
    from neurosynth.datasets.digits import digits_loaders
    from neurosynth.training import fit

    torch.manual_seed(0)
    m = build(qat.loihi_mlp_spec(64, [32], 10, beta=0.9, threshold=1.0))
    train, test = digits_loaders(T=10, batch_size=64, seed=0)
    fit(m, train, epochs=3, lr=5e-3, progress=False)
    m.eval()
    net = extract(m)
    correct_t = correct_q = n = 0
    for x, y in test:
        with torch.no_grad():
            correct_t += int((m(x).sum(0).argmax(-1) == y).sum())
        correct_q += int((torch.from_numpy(simulate(net, x, "fixed").output.sum(0)).argmax(-1) == y).sum())
        n += len(y)
    acc_t, acc_q = correct_t / n, correct_q / n
    assert acc_t > 0.8, acc_t
    assert abs(acc_t - acc_q) <= 0.01, (acc_t, acc_q)


def test_loihi_conv_spec_shapes_and_float_reference():
    spec = qat.loihi_conv_spec((1, 8, 8), [4, 6], 3, alpha=0.25)
    m = build(spec).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(8)
    net = extract(m, tuple(spec["input_shape"]))
    assert [(s.kind, s.out_shape) for s in net.layers] == \
        [("conv", (4, 4, 4)), ("conv", (6, 2, 2)), ("flatten", (24,)), ("dense", (3,))]
    x = spikes(8, 2, 1, 8, 8)
    for a, b in zip(torch_layer_spikes(m, x), simulate(net, x, "float").spikes):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="too small"):
        qat.loihi_conv_spec((1, 2, 2), [4], 3, padding=0)
