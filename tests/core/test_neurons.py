import math

import pytest
import torch
from torch import nn

import neurosynth as ns
from neurosynth.neurons import NEURONS, NeuronModel, build_neuron, register_neuron


def _x(T=12, B=3, N=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(T, B, N, generator=g) * 0.8


def test_lif_golden_trajectory_subtract():
    lif = ns.LIF(beta=0.5, threshold=1.0, reset="subtract", backend="python")
    x = torch.tensor([0.6, 0.6, 0.6, 0.0, 1.5]).view(5, 1, 1)
    s, _, h = lif.run(x)
    # h: 0.6, 0.9, 1.05 -> spike, v=0.05; then 0.025; then 0.0125+1.5 -> spike
    torch.testing.assert_close(h.flatten(), torch.tensor([0.6, 0.9, 1.05, 0.025, 1.5125]))
    assert s.flatten().tolist() == [0, 0, 1, 0, 1]


def test_lif_golden_zero_and_none():
    x = torch.tensor([1.2, 0.5, 0.0]).view(3, 1, 1)
    s, _, h = ns.LIF(beta=0.5, reset="zero").run(x)
    torch.testing.assert_close(h.flatten(), torch.tensor([1.2, 0.5, 0.25]))
    s, _, h = ns.LIF(beta=0.5, reset="none").run(x)
    torch.testing.assert_close(h.flatten(), torch.tensor([1.2, 1.1, 0.55]))
    assert s.flatten().tolist() == [1, 1, 0]


def test_cubalif_and_alif_and_if_and_li_dynamics():
    x = torch.tensor([1.0, 0.0, 0.0, 0.0]).view(4, 1, 1)
    s, st, h = ns.CubaLIF(alpha=0.5, beta=0.5, threshold=10).run(x)
    # i: 1, .5, .25, .125 ; v: 1, 1, .75, .5
    torch.testing.assert_close(h.flatten(), torch.tensor([1.0, 1.0, 0.75, 0.5]))
    torch.testing.assert_close(st.i.flatten(), torch.tensor([0.125]))
    alif = ns.ALIF(beta=1.0, threshold=1.0, adapt_decay=1.0, adapt_scale=1.0, reset="zero")
    s, st, _ = alif.run(torch.full((4, 1, 1), 1.1))
    # fires at t0 (thr 1), then threshold 2: needs 2 steps of charge -> 1.1, 2.2 fires at t2
    assert s.flatten().tolist() == [1, 0, 1, 0]
    assert float(st.a) == 2.0
    s, _, _ = ns.IF(threshold=1.0).run(torch.full((4, 1, 1), 0.6))
    assert s.flatten().tolist() == [0, 1, 0, 1]
    out = ns.LI(beta=0.5)(torch.ones(3, 1, 1))
    torch.testing.assert_close(out.flatten(), torch.tensor([1.0, 1.5, 1.75]))


def test_learnable_parameters_and_buffers():
    lif = ns.LIF(beta=0.8, threshold=1.0, learn_beta=True, shape=4)
    names = dict(lif.named_parameters())
    assert set(names) == {"beta"} and names["beta"].shape == (4,)
    assert "threshold" in dict(lif.named_buffers())
    sd = lif.state_dict()
    assert set(sd) == {"beta", "threshold"}
    lif2 = ns.LIF(learn=("threshold",))
    assert set(dict(lif2.named_parameters())) == {"threshold"}
    p = lif.params()
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        p.beta = 1.0  # frozen dataclass


@pytest.mark.parametrize("neuron", ["lif", "cubalif", "alif", "if"])
def test_gradients_flow_to_learnable_params(neuron):
    cls = NEURONS.get(neuron)
    learn = [k for k in cls.defaults]
    n = build_neuron(neuron, learn=learn, shape=5)
    out = n(_x() * 3)
    out.sum().backward()
    for k in learn:
        assert getattr(n, k).grad is not None, k


def test_from_tau():
    lif = ns.LIF.from_tau(10.0, dt=1.0)
    assert float(lif.beta) == pytest.approx(math.exp(-0.1))
    with pytest.raises(ValueError, match="positive"):
        ns.LIF.from_tau(-1.0)


def test_bad_input_shapes_and_values():
    lif = ns.LIF(shape=5)
    with pytest.raises(ValueError, match=r"time-first \[T, B, \.\.\.\].*got shape \(3, 5\)"):
        lif(torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"feature shape \(5,\).*got input of shape \(2, 3, 4\)"):
        lif(torch.zeros(2, 3, 4))
    bad = torch.zeros(2, 3, 5)
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="1 NaN"):
        lif(bad)
    with pytest.raises(ValueError, match="registered neurons: .*lif"):
        build_neuron("hodgkin")
    with pytest.raises(ValueError, match="no parameter"):
        ns.LIF(gamma=3)
    with pytest.raises(ValueError, match="registered resets"):
        ns.LIF(reset="sideways")
    with pytest.raises(ValueError, match="beta must lie in"):
        ns.LIF(beta=1.5)


def test_custom_neuron_is_registered_trainable_and_buildable_by_name():
    @register_neuron("test_quadratic_lif")
    class QuadraticLIF(NeuronModel):
        defaults = {"beta": 0.9, "threshold": 1.0, "a": 0.05}

        def charge(self, x, state, p):
            return state._replace(v=p.beta * state.v + p.a * state.v ** 2 + x)

    assert "test_quadratic_lif" in NEURONS.names()
    n = build_neuron("test_quadratic_lif", params={"a": 0.1}, learn=["a"])
    assert float(n.a.detach()) == pytest.approx(0.1)
    # spec round trip through the ArchSpec
    spec = ns.mlp_spec(5, [7], 2, neuron="test_quadratic_lif")
    net = ns.build(spec)
    assert isinstance(net[1], QuadraticLIF)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    x = _x(N=5) * 2
    y = torch.tensor([0, 1, 0])
    w0 = net[0].weight.detach().clone()
    loss = nn.functional.cross_entropy(net(x).sum(0), y)
    loss.backward()
    opt.step()
    assert not torch.equal(w0, net[0].weight)
    # custom neuron dynamics are its charge + the inherited fire/reset
    s, _, h = build_neuron("test_quadratic_lif", params={"a": 0.5, "beta": 1.0}).run(torch.full((2, 1, 1), 0.8))
    torch.testing.assert_close(h.flatten(), torch.tensor([0.8, 0.8 + 0.5 * 0.64 + 0.8]))
    assert s.flatten().tolist() == [0.0, 1.0]


def test_python_and_fused_backends_agree_in_training_setting():
    torch.manual_seed(0)
    x = _x(T=25, N=6) * 2
    a = ns.LIF(beta=0.85, learn_beta=True, shape=6, backend="python")
    b = ns.LIF(beta=0.85, learn_beta=True, shape=6, backend="fused")
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    sa, sb = a(xa), b(xb)
    assert torch.equal(sa, sb)
    w = torch.randn_like(sa)
    (sa * w).sum().backward()
    (sb * w).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.beta.grad, b.beta.grad, atol=1e-5, rtol=1e-5)


def test_to_device_and_dtype_move_parameters():
    lif = ns.LIF(beta=0.9, shape=3).double()
    assert lif.beta.dtype == torch.float64
    out = lif(torch.rand(4, 2, 3, dtype=torch.float64))
    assert out.dtype == torch.float64


def test_snntorch_convention_continues_a_sequence_exactly_across_calls():
    x = _x(T=40, N=6) * 2.5
    whole = ns.LIF(beta=0.8, reset="subtract", reset_delay=True)
    s_all, _, _ = whole.run(x)
    for backend in ("fused", "python"):
        lif = ns.LIF(beta=0.8, reset="subtract", reset_delay=True, backend=backend)
        s1, st, _ = lif.run(x[:17])
        s2, _, _ = lif.run(x[17:], st)
        assert torch.equal(torch.cat([s1, s2]), s_all), backend
