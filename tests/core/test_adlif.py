"""adLIF (Bittar & Garner 2022) and SE-adLIF (Baronig et al. 2025): the equations, the generated kernel, the
parameter ranges, the zero state, the ArchSpec round trip and the recurrent layer.

The golden values come from a direct NumPy transcription of the published discrete equations (sparch's
``adLIFLayer`` and SE-adlif's ``alif.py``, see ``docs/neurons.md``), written here independently of the package."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch

from neurosynth import functional as F
from neurosynth._ops import custom
from neurosynth.arch import build, to_spec
from neurosynth.layers import SNN, Recurrent
from neurosynth.neurons import NEURONS, AdLIF, SEAdLIF, build_neuron


# --------------------------------------------------------------------------- NumPy references (the papers' equations)
def numpy_adlif(x, alpha, beta, a, b, theta=1.0, reset="subtract"):
    """sparch adLIFLayer (L438-L442) with a zero initial state: returns (spikes, u) [T, B, N]."""
    T, B, N = x.shape
    u = np.zeros((B, N))
    w = np.zeros((B, N))
    s = np.zeros((B, N))
    S, U = np.zeros_like(x), np.zeros_like(x)
    for t in range(T):
        w = beta * w + a * u + b * s
        u_r = u - theta * s if reset == "subtract" else u * (1 - s)
        u = alpha * u_r + (1 - alpha) * (x[t] - w)
        s = (u - theta > 0).astype(np.float64)
        S[t], U[t] = s, u
    return S, U


def numpy_se_adlif(x, alpha, beta, a, b, q, theta=1.0):
    """SE-adLIF (symplectic Euler, reset to zero) with a zero initial state: (spikes, pre-reset u, w) [T, B, N]."""
    T, B, N = x.shape
    u = np.zeros((B, N))
    w = np.zeros((B, N))
    S, H, W = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    for t in range(T):
        h = alpha * u + (1 - alpha) * (x[t] - w)
        s = (h - theta > 0).astype(np.float64)
        u = h * (1 - s)
        w = beta * w + (1 - beta) * q * (a * u + b * s)
        S[t], H[t], W[t] = s, h, w
    return S, H, W


def _x(T=40, B=3, N=6, scale=3.0, offset=1.0, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(T, B, N, generator=g, dtype=torch.float64) * scale + offset).to(dtype)


def _per_neuron(neuron, n):
    """Distinct per-neuron values spread over each parameter's range."""
    with torch.no_grad():
        for name in ("alpha", "beta", "a", "b"):
            lo, hi, _ = neuron.param_ranges[name]
            getattr(neuron, name).copy_(torch.linspace(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo), n))
    return neuron


def reference(neuron, x, state=None):
    prev = neuron.backend
    neuron.backend = "python"
    try:
        return neuron.run(x, state)
    finally:
        neuron.backend = prev


# --------------------------------------------------------------------------- golden values
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("backend", ["python", "auto"])
def test_adlif_equals_the_published_equations(reset, backend):
    n = 6
    neuron = _per_neuron(AdLIF(shape=n, reset=reset, backend=backend), n).double()
    x = _x(N=n)
    s, state, h = neuron.run(x)
    p = {k: getattr(neuron, k).detach().numpy() for k in ("alpha", "beta", "a", "b")}
    S, U = numpy_adlif(x.numpy(), **p, reset=reset)
    assert 0 < S.sum() < 0.5 * S.size  # spikes and silence: the comparison is not vacuous
    np.testing.assert_array_equal(s.detach().numpy(), S)
    np.testing.assert_allclose(h.detach().numpy(), U, rtol=0, atol=1e-12)
    np.testing.assert_allclose(state.v.detach().numpy(), U[-1], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(state.s.detach().numpy(), S[-1])


def test_adlif_golden_trajectory_of_one_neuron():
    """A hand-checkable case: constant input 3, alpha=0.9, beta=0.98, a=0.5, b=1 (tau_u~9.5, tau_w~49.5)."""
    neuron = AdLIF(alpha=0.9, beta=0.98, a=0.5, b=1.0).double()
    with torch.no_grad():  # the float64 values themselves (the constructor stores float32)
        neuron.alpha.fill_(0.9)
        neuron.beta.fill_(0.98)
    x = torch.full((8, 1, 1), 3.0, dtype=torch.float64)
    s, _, h = neuron.run(x)
    # step 1: w=0, u=0.1*3=0.3; step 2: w=0.5*0.3=0.15, u=0.9*0.3+0.1*(3-0.15)=0.555; ...
    assert h[0, 0, 0].item() == pytest.approx(0.3, abs=1e-15)
    assert h[1, 0, 0].item() == pytest.approx(0.555, abs=1e-15)
    S, U = numpy_adlif(x.numpy(), 0.9, 0.98, 0.5, 1.0)
    np.testing.assert_allclose(h.detach().numpy(), U, atol=1e-14)
    np.testing.assert_array_equal(s.detach().numpy(), S)


@pytest.mark.parametrize("backend", ["python", "auto"])
def test_se_adlif_equals_the_published_equations(backend):
    n = 6
    neuron = _per_neuron(SEAdLIF(shape=n, backend=backend), n).double()
    x = _x(N=n)
    s, state, h = neuron.run(x)
    p = {k: getattr(neuron, k).detach().numpy() for k in ("alpha", "beta", "a", "b")}
    S, H, W = numpy_se_adlif(x.numpy(), **p, q=120.0)
    assert 0 < S.sum() < 0.5 * S.size
    np.testing.assert_array_equal(s.detach().numpy(), S)
    np.testing.assert_allclose(h.detach().numpy(), H, rtol=0, atol=1e-10)
    np.testing.assert_allclose(state.w.detach().numpy(), W[-1], rtol=0, atol=1e-10)


# --------------------------------------------------------------------------- generated kernel == reference loop
def _needs_kernel():
    if custom._env_disabled():
        pytest.skip("NEUROSYNTH_NO_CEXT set: no generated kernels")


@pytest.mark.parametrize("cls,kw", [
    (AdLIF, {}),
    (AdLIF, {"reset": "zero", "detach_reset": False}),
    (AdLIF, {"learn": ("alpha", "beta", "a", "b", "threshold")}),
    (SEAdLIF, {}),
    (SEAdLIF, {"reset": "subtract", "learn": ("alpha", "beta", "a", "b", "q")}),
])
def test_generated_kernel_equals_reference_values_and_gradients(cls, kw):
    _needs_kernel()
    n = 8
    neuron = _per_neuron(cls(shape=n, **kw), n)
    x = _x(T=50, B=3, N=n, dtype=torch.float32)
    st0 = neuron.initial_state(x[0])
    xk = x.clone().requires_grad_(True)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="neurosynth")  # the generated path must run: no fallback
        s, fin, h = neuron.run(xk)
    assert custom.paths()[cls.__name__] == "generated-cpu"
    xr = x.clone().requires_grad_(True)
    s2, fin2, h2 = reference(neuron, xr, neuron.State(*st0))
    assert torch.equal(s, s2) and torch.equal(h, h2)  # float32: bit-identical (no exp/sqrt in the step)
    for a_, b_ in zip(fin, fin2):
        assert torch.equal(a_, b_)
    assert 0 < s.sum() < 0.5 * s.numel()
    g = torch.randn(s.shape, generator=torch.Generator().manual_seed(1))
    learn = [getattr(neuron, k) for k in neuron.learn]
    gk = torch.autograd.grad((s * g).sum() + (h * g).mean() + fin.w.sum(), [xk, *learn])
    gr = torch.autograd.grad((s2 * g).sum() + (h2 * g).mean() + fin2.w.sum(), [xr, *learn])
    assert any(bool(t.abs().sum() > 0) for t in gk[1:])  # the parameters do get gradients
    for a_, b_, what in zip(gk, gr, ["x", *neuron.learn]):
        torch.testing.assert_close(a_, b_, atol=1e-5, rtol=1e-4, msg=f"gradient of {what}")


@pytest.mark.parametrize("cls", [AdLIF, SEAdLIF])
def test_generated_kernel_float64_gradcheck(cls):
    """Far below threshold (no spike, the surrogate slope negligible), the generated backward is the exact
    derivative: torch.autograd.gradcheck on the input and every learnable parameter, in float64."""
    _needs_kernel()
    n = 3
    neuron = _per_neuron(cls(shape=n, threshold=1e5), n).double()  # far: surrogate slope ~1e-11
    x = _x(T=6, B=2, N=n, scale=1.0).requires_grad_(True)
    names = list(neuron.learn)
    base = neuron.params()
    st0 = neuron.initial_state(x[0])

    def f(x, *ps):
        p = neuron.Params(**{k: getattr(base, k) for k in neuron.defaults} | dict(zip(names, ps)))
        out = F.custom(neuron, x, st0, p)  # the generated kernel itself (None would mean the reference loop)
        assert out is not None
        _, fin, h = out
        return h, fin.w

    ps = [getattr(base, k).detach().clone().requires_grad_(True) for k in names]
    assert torch.autograd.gradcheck(f, (x, *ps), eps=1e-6, atol=1e-7)
    assert custom.paths()[cls.__name__] == "generated-cpu"


# --------------------------------------------------------------------------- parameters: ranges, clamping, tau
def test_published_ranges_and_time_constants():
    neuron = AdLIF(tau_u=10.0, tau_w=60.0)
    assert neuron.alpha.item() == pytest.approx(math.exp(-1 / 10), rel=1e-6)
    assert neuron.beta.item() == pytest.approx(math.exp(-1 / 60), rel=1e-6)
    lo, hi, _ = neuron.param_ranges["alpha"]
    assert (lo, hi) == pytest.approx((math.exp(-1 / 5), math.exp(-1 / 25)), rel=1e-6)
    lo, hi, _ = neuron.param_ranges["beta"]
    assert (lo, hi) == pytest.approx((math.exp(-1 / 30), math.exp(-1 / 120)), rel=1e-6)
    assert neuron.param_ranges["a"][:2] == (-1.0, 1.0) and neuron.param_ranges["b"][:2] == (0.0, 2.0)
    assert AdLIF(tau_u=5, tau_w=120).alpha.item() >= AdLIF().param_ranges["alpha"][0]  # the bounds admit themselves
    assert AdLIF.from_tau(20.0, 100.0, dt=2.0).alpha.item() == pytest.approx(math.exp(-2 / 20), rel=1e-6)
    assert set(AdLIF().learn) == {"alpha", "beta", "a", "b"}  # learnable by default, like sparch
    assert AdLIF(learn=()).learn == ()
    se = SEAdLIF()
    assert se.param_ranges["beta"][:2] == pytest.approx((math.exp(-1 / 60), math.exp(-1 / 300)), rel=1e-6)
    assert se.param_ranges["a"][:2] == (0.0, 1.0)


def test_out_of_range_construction_names_the_time_constant():
    with pytest.raises(ValueError, match=r"tau_u from 5 to 25 steps"):
        AdLIF(tau_u=50.0)
    with pytest.raises(ValueError, match="tau_w"):
        AdLIF(beta=0.5)
    with pytest.raises(ValueError, match=r"a must lie in \[-1, 1\]"):
        AdLIF(a=1.5)
    with pytest.raises(ValueError, match="not both"):
        AdLIF(alpha=0.9, tau_u=10.0)
    assert AdLIF(tau_u=50.0, tau_u_range=(5, 100)).alpha.item() == pytest.approx(math.exp(-1 / 50), rel=1e-6)


def test_parameters_are_clamped_on_every_forward_and_projected_after_a_step():
    neuron = AdLIF(shape=4)
    with torch.no_grad():  # an optimiser step pushed them out of range
        neuron.alpha.copy_(torch.tensor([0.5, 0.9, 0.99, 0.93]))
        neuron.a.copy_(torch.tensor([-3.0, 0.2, 3.0, 0.0]))
        neuron.b.copy_(torch.tensor([-1.0, 1.0, 5.0, 0.5]))
    p = neuron.params()
    lo, hi, _ = neuron.param_ranges["alpha"]
    assert p.alpha.tolist() == pytest.approx([lo, 0.9, hi, 0.93], rel=1e-6)
    assert p.a.tolist() == [-1.0, pytest.approx(0.2), 1.0, 0.0]
    assert p.b.tolist() == [0.0, 1.0, 2.0, 0.5]
    # the forward uses the clamped values: equal to a neuron built with them
    x = _x(T=20, B=2, N=4, dtype=torch.float32)
    ref = AdLIF(shape=4, learn=())
    with torch.no_grad():
        for k in ("alpha", "beta", "a", "b"):
            getattr(ref, k).copy_(getattr(p, k))
    assert torch.equal(neuron(x), ref(x))
    # beyond a bound the parameter gets no gradient (sparch's clamp); inside it does
    h = neuron.run(x)[2]
    g = torch.autograd.grad(h.sum(), neuron.a)[0]
    assert g[0] == 0 and g[2] == 0 and g[1] != 0
    neuron.clamp_params_()
    assert neuron.alpha.tolist() == pytest.approx([lo, 0.9, hi, 0.93], rel=1e-6)
    assert neuron.b.tolist() == [0.0, 1.0, 2.0, 0.5]


def test_init_uniform_uses_the_generator_only():
    a = AdLIF(shape=64).init_uniform_(torch.Generator().manual_seed(3))
    b = AdLIF(shape=64).init_uniform_(torch.Generator().manual_seed(3))
    assert torch.equal(a.alpha, b.alpha) and torch.equal(a.b, b.b)
    assert a.alpha.std() > 0
    for k in ("alpha", "beta", "a", "b"):
        lo, hi, _ = a.param_ranges[k]
        t = getattr(a, k)
        assert bool(((t >= lo) & (t <= hi)).all())
    with pytest.raises(ValueError, match="shape"):
        AdLIF().init_uniform_(torch.Generator())


# --------------------------------------------------------------------------- state
@pytest.mark.parametrize("cls", [AdLIF, SEAdLIF])
def test_zero_initial_state_and_rest_stays_at_rest(cls):
    neuron = cls(shape=5)
    st = neuron.initial_state(torch.ones(2, 5))
    assert st._fields == tuple(cls.state_vars)
    assert all(bool((t == 0).all()) for t in st)  # zero, not sparch's torch.rand
    s, fin, h = neuron.run(torch.zeros(10, 2, 5))
    assert not s.any() and not h.any() and all(not t.any() for t in fin)
    # run == step by step, and a sequence split in two chunks continues exactly
    x = _x(T=30, B=2, N=5, dtype=torch.float32)
    out, fin, _ = neuron.run(x)
    state, outs = None, []
    for t in range(30):
        o, state = neuron.step(x[t], state)
        outs.append(o)
    assert torch.equal(torch.stack(outs), out)
    o1, st1, _ = neuron.run(x[:13])
    o2, st2, _ = neuron.run(x[13:], st1)
    assert torch.equal(torch.cat([o1, o2]), out)


# --------------------------------------------------------------------------- registry, ArchSpec, layers
def test_registered_and_round_trips_through_archspec(tmp_path):
    assert "adlif" in NEURONS and "se_adlif" in NEURONS
    torch.manual_seed(0)
    spec = {"format": "neurosynth.arch/2", "kind": "sequential", "input_shape": [6], "layers": [
        {"type": "linear", "in_features": 6, "out_features": 8},
        {"type": "neuron", "neuron": "adlif", "shape": [8], "reset": "zero", "tau_u_range": [4, 30],
         "params": {"alpha": 0.9, "beta": 0.98}},
        {"type": "recurrent", "size": 8, "neuron": "se_adlif", "shape": [8]},
        {"type": "linear", "in_features": 8, "out_features": 3},
        {"type": "neuron", "neuron": "li"}]}
    model = build(spec)
    _per_neuron(model[1], 8)
    x = _x(T=25, B=2, N=6, dtype=torch.float32)
    (tmp_path / "arch.json").write_text(json.dumps(to_spec(model, input_shape=[6])))
    torch.save(model.state_dict(), tmp_path / "model.pt")
    loaded = build(json.loads((tmp_path / "arch.json").read_text()))
    loaded.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    assert loaded[1].tau_u_range == (4.0, 30.0) and loaded[1].reset == "zero"
    assert set(loaded[1].learn) == {"alpha", "beta", "a", "b"}
    assert torch.equal(loaded[1].alpha, model[1].alpha)
    assert torch.equal(loaded(x), model(x))
    assert to_spec(loaded, input_shape=[6]) == to_spec(model, input_shape=[6])


@pytest.mark.parametrize("name", ["adlif", "se_adlif"])
def test_recurrent_layer_is_radlif(name):
    torch.manual_seed(1)
    layer = Recurrent(6, name, shape=6)
    x = _x(T=30, B=2, N=6, dtype=torch.float32) * 2
    s, state, h = layer.run(x)
    # the same loop written out with the functional step: x_t + W s_{t-1} into the neuron
    n = layer.neuron
    p = n.params()
    st, s_prev, outs = n.initial_state(x[0]), torch.zeros(2, 6), []
    for t in range(30):
        i = x[t] + layer.rec(s_prev)
        if name == "adlif":
            s_prev, v, w = F.adlif_step(i, st.v, st.w, st.s, p.alpha, p.beta, p.a, p.b, p.threshold,
                                        reset_mode=n.reset, surrogate=n.surrogate)
            st = n.State(v, w, s_prev)
        else:
            s_prev, v, w, _ = F.se_adlif_step(i, st.v, st.w, p.alpha, p.beta, p.a, p.b, p.q, p.threshold,
                                              reset_mode=n.reset, surrogate=n.surrogate)
            st = n.State(v, w)
        outs.append(s_prev)
    assert torch.equal(s, torch.stack(outs))
    assert 0 < s.sum() < s.numel()
    (s.sum() + h.sum()).backward()
    assert layer.rec.weight.grad.abs().sum() > 0 and n.alpha.grad is not None


def test_trains_in_a_network():
    """A few optimiser steps through SNN(Linear, AdLIF, Linear, LI) lower the loss and keep the ranges."""
    torch.manual_seed(0)
    net = SNN(torch.nn.Linear(6, 16), AdLIF(shape=16), torch.nn.Linear(16, 2), build_neuron("li"))
    with torch.no_grad():  # the (1 - alpha) input scale wants larger drive than nn.Linear's default (sparch: BatchNorm)
        net[0].weight.mul_(5.0)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(20, 32, 6, generator=g) * 4
    y = (x[:, :, 0].mean(0) > x[:, :, 1].mean(0)).long()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    losses = []
    for _ in range(20):
        loss = torch.nn.functional.cross_entropy(net(x).mean(0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        net[1].clamp_params_()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    net[1]._validate()  # still in range
