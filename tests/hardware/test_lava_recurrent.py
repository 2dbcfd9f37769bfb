"""Recurrent (netx ``dense_rec``) and pooled (fixed sum-pool conv) Loihi models: QAT layers, refusal, netx file,
integer reference and Lava's simulator (float spike-exact against torch, fixed bit-exact against the reference)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from lava_helpers import pooled_convnet, rsnn, spikes
from torch import nn

from neurosynth.arch import build, to_spec
from neurosynth.hardware.lava import compat, qat
from neurosynth.hardware.lava.ir import LoihiExportError, check_fixed, extract
from neurosynth.hardware.lava.netx import read_netx, validate_netx, write_netx
from neurosynth.hardware.lava.reference import simulate, torch_layer_spikes
from neurosynth.layers import SNN, Delay, Recurrent
from neurosynth.neurons import LIF, CubaLIF

needs_lava = pytest.mark.skipif(not compat.lava_available(), reason="lava-nc is not installed")


def test_qrecurrent_is_the_recurrent_layer_with_quantised_weights():
    m, spec = rsnn()
    rec = m[2]
    assert isinstance(rec, qat.QRecurrent) and isinstance(rec, Recurrent) and rec.rec.bias is None
    assert to_spec(m, spec["input_shape"])["layers"][2]["type"] == "qrecurrent"
    again = build(to_spec(m, spec["input_shape"]) | {"target": qat.TARGET})
    again.load_state_dict(m.state_dict())
    x = spikes(10, 2, 20)
    assert torch.equal(again(x), m(x))
    # the recurrent weights it computes with sit on Loihi's grid: x_t + W_q s_{t-1}
    plain = Recurrent(16, CubaLIF(alpha=rec.neuron.alpha, beta=rec.neuron.beta, threshold=1.0, reset="zero"))
    with torch.no_grad():
        plain.rec.weight.copy_(rec.rec.effective_weight())
    h = torch.randn(10, 2, 16)
    assert torch.equal(plain(h), rec(h))


def test_sumpool_conv_is_fixed_sum_pooling():
    p = qat.SumPoolConv(3, 2)
    x = (torch.rand(4, 3, 6, 6) < 0.5).float()
    assert torch.equal(p(x), torch.nn.functional.avg_pool2d(x, 2) * 4)
    assert not p.weight.requires_grad
    assert to_spec(SNN(p))["layers"][0] == {"type": "qsumpool", "channels": 3, "kernel_size": 2, "stride": 2,
                                            "weight": 1.0}


def test_recurrent_stage_extracted_and_written_as_dense_rec(tmp_path):
    m, spec = rsnn()
    net = extract(m, (20,))
    rec = net.stages[0]
    assert rec.recurrent and rec.delayed and rec.weight_rec.shape == (16, 16)
    np.testing.assert_array_equal(rec.int_weight_rec(), (m[2].rec.effective_weight().double() * 64).round().long())
    path = write_netx(net, tmp_path / "rec.h5")
    assert validate_netx(path) == []
    with h5py.File(path) as f:
        g = f["layer/1"]
        assert g["type"][0] == b"dense_rec" and f["layer/2/type"][0] == b"dense"
        assert g["weight"].shape == (16, 20) and g["weight_rec"].shape == (16, 16)
        assert g["weight_rec"].dtype.kind == "i" and g["neuron/iDecay"][()] == round(0.7 * 4096)
    back = read_netx(path)
    np.testing.assert_array_equal(back.stages[0].int_weight_rec(), rec.int_weight_rec())
    x = spikes(12, 3, 20)
    for a, b in zip(simulate(back, x, "fixed").spikes, simulate(net, x, "fixed").spikes):
        np.testing.assert_array_equal(a, b)


def test_validate_flags_a_dense_rec_without_weight_rec(tmp_path):
    m, _ = rsnn()
    path = write_netx(extract(m, (20,)), tmp_path / "rec.h5")
    with h5py.File(path, "a") as f:
        del f["layer/1/weight_rec"]
    assert any("weight_rec" in p for p in validate_netx(path))


@pytest.mark.parametrize("alpha, layers", [(0.0, 1), (0.3, 1), (0.3, 2)])
def test_recurrent_reference_equals_torch(alpha, layers):
    m, _ = rsnn(alpha=alpha, layers=layers)
    x = spikes(20, 4, 20)
    ts = torch_layer_spikes(m, x)
    net = extract(m, (20,))
    assert [s.recurrent for s in net.stages] == [True] * layers + [False]
    for mode in ("float", "fixed"):
        for a, b in zip(simulate(net, x, mode).spikes, ts):
            assert b.any() and not b.all()
            np.testing.assert_array_equal(a, b)


def test_recurrence_matters_in_the_reference():
    """The recurrent weights change the spikes (a reference that ignored them would not pass the test above)."""
    m, _ = rsnn()
    net = extract(m, (20,))
    with torch.no_grad():
        m[2].rec.weight.zero_()
    x = spikes(20, 4, 20)
    assert not np.array_equal(simulate(net, x, "fixed").spikes[0], simulate(extract(m, (20,)), x, "fixed").spikes[0])


def _rec(neuron, bias=False):
    return Recurrent(3, neuron, bias=bias)


@pytest.mark.parametrize("model, match", [
    (lambda: SNN(nn.Linear(4, 3, bias=False), _rec(LIF(reset="subtract"))), r"layer 1.neuron .*reset='zero'"),
    (lambda: SNN(nn.Linear(4, 3, bias=False), _rec(LIF(reset="zero"), bias=True)), r"layer 1.rec .*bias=False"),
    (lambda: SNN(_rec(LIF(reset="zero"))), r"layer 0 \(Recurrent\) follows no synapse"),
    (lambda: SNN(nn.Conv2d(1, 3, 1, bias=False), _rec(LIF(reset="zero"))), "follows a convolution"),
    (lambda: SNN(nn.Linear(4, 3, bias=False), Delay(2), _rec(LIF(reset="zero"))), r"Delay\(1\)"),
])
def test_unsupported_recurrent_models_are_refused(model, match):
    with pytest.raises(LoihiExportError, match=match):
        extract(model(), (1, 2, 2) if "convolution" in match else (4,))


def test_out_of_range_recurrent_weights_refused_before_writing(tmp_path):
    m, _ = rsnn()
    with torch.no_grad():
        m[2].rec.weight[0, 0] = 5.0  # the QLinear clamps it; a plain weight outside the grid is refused
    plain = SNN(nn.Linear(20, 16, bias=False), Delay(1), Recurrent(16, LIF(reset="zero")), nn.Linear(16, 5, bias=False),
                Delay(1), LIF(reset="zero"))
    with torch.no_grad():
        plain[2].rec.weight[0, 0] = 5.0
    with pytest.raises(LoihiExportError, match=r"layer 2: recurrent weights .* outside the 8-bit range"):
        write_netx(extract(plain, (20,)), tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()
    check_fixed(extract(m, (20,)))  # QAT weights are always in range


@pytest.mark.lava
@needs_lava
@pytest.mark.parametrize("layers", [1, 2])
def test_recurrent_export_verifies_in_lava_float_and_fixed(tmp_path, layers):
    from neurosynth.hardware.lava.verify import verify

    m, _ = rsnn(layers=layers)
    net = read_netx(write_netx(extract(m, (20,)), tmp_path / "rec.h5"))
    x = spikes(12, 4, 20)
    rep = verify(m, x, torch.tensor([0, 1, 2, 3]), net=net, copies=4)
    assert rep["passed"] and rep["float_exact"] and rep["fixed_exact"], rep
    assert all(v > 0 for v in rep["float_spikes"].values())
    assert rep["accuracy_lava_float"] == rep["accuracy_torch"]


@pytest.mark.lava
@needs_lava
def test_recurrent_lava_graph_has_a_binary_recurrent_dense():
    from lava.proc.dense.process import Dense

    from neurosynth.hardware.lava.builder import to_lava

    m, _ = rsnn()
    g = to_lava(m, mode="fixed", num_steps=2)
    assert len(g.recurrent) == 1 and isinstance(g.recurrent[0], Dense)
    rec = g.recurrent[0]
    assert int(rec.proc_params["num_message_bits"]) == 0
    np.testing.assert_array_equal(rec.weights.init, extract(m).stages[0].int_weight_rec())


@pytest.mark.lava
@needs_lava
def test_pooled_conv_export_verifies_in_lava(tmp_path):
    from neurosynth.hardware.lava.verify import verify

    m, spec = pooled_convnet()
    shape = tuple(spec["input_shape"])
    net = extract(m, shape)
    pool = net.stages[1]
    assert pool.kind == "conv" and pool.groups == 4 and pool.stride == (2, 2)
    assert (pool.int_weight() == 64).all()
    path = write_netx(net, tmp_path / "pool.h5")
    with h5py.File(path) as f:
        assert [f[f"layer/{i}/type"][0] for i in range(len(f["layer"]))].count(b"conv") == 2
    x = spikes(10, 3, *shape)
    rep = verify(m, x, torch.tensor([0, 1, 2]), input_shape=shape, net=read_netx(path))
    assert rep["passed"], rep
    assert all(v > 0 for v in rep["float_spikes"].values()), rep["float_spikes"]


def test_recurrent_model_without_feed_forward_delay_lags_one_step_per_layer():
    """Without Delay(1) the torch model runs one step ahead of Lava per synapse; the recurrent path is the same
    in both (s_{t-1}), so Lava's spikes equal torch's shifted by the cumulative lag."""
    from neurosynth.layers import SNN

    m, _ = rsnn()
    nodelay = SNN(m[0], m[2], m[3], m[5]).eval()
    net = extract(nodelay, (20,))
    assert net.torch_shifts() == [1, 2]
    x = spikes(20, 3, 20)
    ts = torch_layer_spikes(nodelay, x)
    ref = simulate(net, np.concatenate([x.numpy(), np.zeros((2, 3, 20), np.float32)]), "float")
    for lava, torch_sp, shift in zip(ref.spikes, ts, net.torch_shifts()):
        assert torch_sp.any()
        np.testing.assert_array_equal(lava[shift:shift + 20], torch_sp)
