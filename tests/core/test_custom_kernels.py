"""Generated kernels for custom neurons (neurosynth/_ops/custom): equal to the reference loop, fall back safely.

On the CPU the generated C++ kernel must give spikes, membranes and final states bit-identical to the reference
loop (the neuron's ``backend="python"`` run: the package's time loop over its pure step) in float32, and
gradients (input, initial state, learnable
parameters) within 1e-5, for the README's quadratic LIF, a two-state adaptive neuron and the tutorial's
refractory neuron; every hook the generator cannot capture falls back to the reference loop with one warning.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from neurosynth._ops import custom
from neurosynth._ops.custom import tracing
from neurosynth.neurons import LIF, NeuronModel
from neurosynth.surrogate import ATan


class QuadraticLIF(NeuronModel):  # README
    defaults = {"beta": 0.9, "threshold": 1.0, "a": 0.1}
    default_reset = "zero"

    def charge(self, x, state, p):
        return state._replace(v=p.beta * state.v + p.a * state.v.clamp(min=0) ** 2 + x)


class AdaptiveLIF(NeuronModel):  # two states: an adaptive threshold through all three hooks
    defaults = {"beta": 0.9, "threshold": 1.0, "rho": 0.95, "b": 0.2}
    state_vars = ("v", "a")

    def charge(self, x, state, p):
        return state._replace(v=p.beta * state.v + x)

    def threshold_of(self, state, p):
        return p.threshold + p.b * state.a

    def after_fire(self, s, state, p):
        return state._replace(a=p.rho * state.a + s)


class RefractoryLIF(NeuronModel):  # docs/tutorials/02_custom_neurons.py
    defaults = {"beta": 0.9, "threshold": 1.0, "t_ref": 2.0}
    state_vars = ("v", "ref")
    default_reset = "zero"

    def charge(self, x, state, p):
        open_ = (state.ref <= 0).to(x.dtype)
        return state._replace(v=p.beta * state.v + open_ * x, ref=(state.ref - 1).clamp_min(0))

    def after_fire(self, s, state, p):
        return state._replace(ref=state.ref + s.detach() * (p.t_ref - state.ref))


class CurrentAdaptiveLIF(NeuronModel):  # three states: a synaptic current, the membrane and an adaptation
    defaults = {"alpha": 0.8, "beta": 0.9, "threshold": 1.0, "rho": 0.9, "b": 0.3}
    state_vars = ("i", "v", "a")
    default_reset = "zero"

    def charge(self, x, state, p):
        i = p.alpha * state.i + x
        return state._replace(i=i, v=p.beta * state.v + i)

    def threshold_of(self, state, p):
        return p.threshold + p.b * state.a

    def after_fire(self, s, state, p):
        return state._replace(a=p.rho * state.a + s)


class Izhikevich(NeuronModel):  # three parameters in one hook, constants, a non-zero rest (the tutorial's)
    defaults = {"a": 0.02, "b": 0.2, "c": -65.0, "d": 8.0, "threshold": 30.0, "dt": 0.5}
    state_vars = ("v", "u")
    default_reset = "none"

    def initial_state(self, x0):
        v = torch.full_like(x0, float(self.c.mean()))
        return self.State(v=v, u=self.b.mean() * v)

    def charge(self, x, state, p):
        v, u = state.v, state.u
        v = v + p.dt * (0.04 * v * v + 5 * v + 140 - u + x)
        u = u + p.dt * p.a * (p.b * v - u)
        return state._replace(v=v, u=u)

    def after_fire(self, s, state, p):
        return state._replace(v=state.v + s * (p.c - state.v), u=state.u + s * p.d)


def reference(neuron, x, state=None):
    """The reference loop: the same neuron's run with ``backend="python"`` (the package's time loop)."""
    prev = neuron.backend
    neuron.backend = "python"
    try:
        return neuron.run(x, state)
    finally:
        neuron.backend = prev


def _input(T=30, B=3, n=8, scale=0.9, offset=0.0, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(T, B, n, generator=g, dtype=torch.float64) * scale + offset).to(dtype)


def _compare(neuron, x, state=None, exact=True, atol=1e-5):
    """Run the generated kernel and the reference loop on the same data; assert equal outputs and gradients."""
    names = list(neuron.defaults)
    st0 = state if state is not None else neuron.initial_state(x[0])
    st_leaves = [t.detach().clone().requires_grad_(True) for t in st0]
    xk = x.clone().requires_grad_(True)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="neurosynth")  # the generated path must run: no fallback
        s, fin, h = neuron.run(xk, neuron.State(*st_leaves))
    assert custom.paths()[type(neuron).__name__] == "generated-cpu"
    xr = x.clone().requires_grad_(True)
    st_ref = [t.detach().clone().requires_grad_(True) for t in st0]
    s2, fin2, h2 = reference(neuron, xr, neuron.State(*st_ref))
    if exact:
        assert torch.equal(s, s2)
        assert torch.equal(h, h2)
        for a, b in zip(fin, fin2):
            assert torch.equal(a, b.expand_as(a))
    assert s.sum() > 0 and s.mean() < 0.9  # the comparison is not vacuous
    g = torch.randn(s.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(x.dtype)
    learn = [getattr(neuron, n) for n in names if n in neuron.learn]
    ins_k = [xk, *st_leaves, *learn]
    ins_r = [xr, *st_ref, *learn]
    loss_k = (s * g).sum() + (h * g).mean() + sum(t.sum() for t in fin)
    loss_r = (s2 * g).sum() + (h2 * g).mean() + sum(t.sum() for t in fin2)
    gk = torch.autograd.grad(loss_k, ins_k, allow_unused=True)
    gr = torch.autograd.grad(loss_r, ins_r, allow_unused=True)
    for a, b, what in zip(gk, gr, ["x", *neuron.state_vars, *neuron.learn]):
        a = torch.zeros_like(b) if a is None else a
        b = torch.zeros_like(a) if b is None else b
        torch.testing.assert_close(a, b, atol=atol, rtol=1e-5, msg=f"gradient of {what}")
    return s


@pytest.mark.parametrize("cls,kw", [
    (QuadraticLIF, {}),
    (QuadraticLIF, {"learn": ("a", "beta", "threshold")}),
    (QuadraticLIF, {"reset": "subtract", "detach_reset": False, "learn": ("a",)}),
    (AdaptiveLIF, {"learn": ("beta", "rho", "b", "threshold")}),
    (AdaptiveLIF, {"reset": "zero", "detach_reset": False}),
    (RefractoryLIF, {"learn": ("beta", "t_ref")}),
    (CurrentAdaptiveLIF, {"learn": ("alpha", "beta", "rho", "b", "threshold")}),
])
def test_generated_equals_reference(cls, kw):
    neuron = cls(shape=8, **kw)
    with torch.no_grad():  # per-neuron parameter values (not one shared value)
        for name in neuron.learn:
            getattr(neuron, name).mul_(torch.linspace(0.9, 1.0, 8))
    _compare(neuron, _input())


def test_scalar_parameters_and_a_continued_state():
    neuron = AdaptiveLIF()  # shape None: 0-d parameters broadcast over every neuron
    x = _input(T=12, B=2, n=5)
    state = neuron.State(v=torch.rand(2, 5), a=torch.rand(2, 5))
    _compare(neuron, x, state)


def test_izhikevich_three_parameter_hooks():
    neuron = Izhikevich(shape=4, learn=("a", "d"))
    x = _input(T=60, B=2, n=4, scale=4.0, offset=10.0)
    _compare(neuron, x, atol=1e-4)  # large membranes (mV): gradients agree in relative terms


def test_float64():
    neuron = QuadraticLIF(shape=8, learn=("a",)).double()
    _compare(neuron, _input(dtype=torch.float64))


def test_custom_surrogate_is_traced():
    class Soft(ATan):  # a user surrogate: its grad is captured like the hooks
        def grad(self, x):
            return 1 / (1 + 4 * x * x)

    _compare(QuadraticLIF(shape=8, surrogate=Soft(), learn=("a",)), _input())


def test_kernel_is_independent_of_T():
    neuron = QuadraticLIF(shape=8)
    k1 = custom.kernel_for(neuron, _input(T=20), neuron.params())
    k2 = custom.kernel_for(neuron, _input(T=500), neuron.params())
    assert k1 is k2 and not isinstance(k1, str)
    s = _compare(neuron, _input(T=500, seed=3))
    assert s.shape[0] == 500


def test_one_state_neuron_saves_one_tensor_per_step():
    """The backward keeps the state entering each step (one [T, M] tensor for a one-state neuron) and x."""
    neuron = AdaptiveLIF(shape=8)
    cap = tracing.capture(neuron, torch.float32, ())
    reads_x, reads_st = cap.bwd_reads()
    assert reads_st == (True, True)
    refr = tracing.capture(RefractoryLIF(shape=8), torch.float32, ())
    assert refr.bwd_reads()[1] == (True, True)


class ReducingNeuron(NeuronModel):  # a hook that is not elementwise: mixes neurons
    defaults = {"beta": 0.9, "threshold": 1.0}

    def charge(self, x, state, p):
        return state._replace(v=p.beta * state.v + x - x.mean(-1, keepdim=True))


class BranchingNeuron(NeuronModel):  # a Python branch on tensor values cannot be captured
    defaults = {"beta": 0.9, "threshold": 1.0}

    def charge(self, x, state, p):
        if bool((state.v > 0.5).any()):
            return state._replace(v=0.5 * state.v + x)
        return state._replace(v=p.beta * state.v + x)


@pytest.mark.parametrize("cls,reason", [(ReducingNeuron, "aten.mean is not an elementwise op"), (BranchingNeuron, "tracing the hooks failed")])
def test_uncapturable_hook_falls_back_with_one_warning(cls, reason):
    neuron = cls()
    x = _input(T=10, B=2, n=4)
    with pytest.warns(RuntimeWarning, match=reason):
        s = neuron(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per class and reason
        s_again = neuron(x)
    ref, _, _ = reference(neuron, x)
    assert torch.equal(s, ref) and torch.equal(s_again, ref)
    assert custom.paths()[cls.__name__].startswith("reference:")


def test_failed_self_check_falls_back(monkeypatch):
    from neurosynth._ops.custom import cpu

    class Flipped(QuadraticLIF):
        pass

    real = cpu.CpuKernel.forward

    def wrong(self, x, states, params, save):
        s, h, saved = real(self, x, states, params, save)
        return 1 - s, h, saved

    monkeypatch.setattr(cpu.CpuKernel, "forward", wrong)
    neuron = Flipped(shape=4)
    x = _input(T=10, B=2, n=4)
    with pytest.warns(RuntimeWarning, match="spikes differ from the reference loop"):
        s = neuron(x)
    ref, _, _ = reference(neuron, x)
    assert torch.equal(s, ref)


def test_python_backend_and_builtins_never_generate(monkeypatch):
    calls = []
    monkeypatch.setattr(custom, "kernel_for", lambda *a, **k: calls.append(a) or "no")
    x = _input(T=5, B=2, n=4)
    QuadraticLIF(backend="python")(x)
    LIF(reset_delay=True)(x + 2.0)  # a built-in whose fused op declines: its own dynamics, no generated kernel
    assert calls == []


def test_no_cext_env_keeps_reference_silently(monkeypatch):
    monkeypatch.setenv("NEUROSYNTH_NO_CEXT", "1")

    class Quiet(QuadraticLIF):
        pass

    x = _input(T=5, B=2, n=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = Quiet()(x)
    assert "Quiet" not in custom.paths()
    ref, _, _ = reference(Quiet(), x)
    assert torch.equal(s, ref)


def test_training_step_through_a_network_matches_reference():
    import copy

    from neurosynth.layers import SNN

    torch.manual_seed(0)
    net = SNN(torch.nn.Linear(6, 8), RefractoryLIF(shape=8, learn=("beta",)), torch.nn.Linear(8, 3),
              QuadraticLIF(shape=3, learn=("a",)))
    ref = copy.deepcopy(net)  # the neurons hold no kernel state: deepcopy works
    for m in ref.modules():
        if isinstance(m, NeuronModel):
            m.backend = "python"
    x = (torch.rand(15, 4, 6, generator=torch.Generator().manual_seed(0)) < 0.5).float() * 2
    out, out_r = net(x), ref(x)
    assert torch.equal(out, out_r)
    out.sum().backward()
    out_r.sum().backward()
    for (n, a), b in zip(net.named_parameters(), ref.parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-5, msg=n)


def test_no_grad_run_reuses_the_training_kernel():
    neuron = QuadraticLIF(shape=8, learn=("a",))
    x = _input(T=6)
    k_train = custom.kernel_for(neuron, x, neuron.params())
    with torch.no_grad():
        k_eval = custom.kernel_for(neuron, x, neuron.params())
        s = neuron(x)
    assert k_train is k_eval and k_train.cap.grad_params == ("a",)
    assert torch.equal(s, reference(neuron, x)[0])


def test_a_kernel_that_raises_fails_the_check(monkeypatch):
    from neurosynth._ops.custom import cpu

    class Raising(QuadraticLIF):
        pass

    def boom(self, *args):
        raise RuntimeError("launch failed")

    monkeypatch.setattr(cpu.CpuKernel, "forward", boom)
    x = _input(T=6, B=2, n=4)
    with pytest.warns(RuntimeWarning, match="kernel failed .*launch failed"):
        s = Raising()(x)
    assert torch.equal(s, reference(Raising(), x)[0])


class GatedLIF(NeuronModel):  # boolean algebra, where, maximum, division and sqrt in one hook
    defaults = {"beta": 0.9, "threshold": 1.0, "g": 0.5}
    state_vars = ("v", "w")

    def charge(self, x, state, p):
        gate = (x > 0) * (state.w < 2)  # bool * bool stays bool in torch
        drive = torch.where(gate, x / (1 + p.g), torch.maximum(x, -state.v) * 0.25)
        return state._replace(v=p.beta * state.v + drive, w=torch.sqrt(state.w * state.w + 0.5 * x.abs()))

    def after_fire(self, s, state, p):
        return state._replace(w=state.w * (1 - 0.5 * s))


def test_boolean_and_math_ops_are_lowered():
    """torch's vectorised float32 sqrt is not correctly rounded (the C library's is): states agree to 1 ulp,
    the first-use check compares with a tolerance, and the generated kernel runs."""
    neuron = GatedLIF(shape=8, learn=("g", "beta"))
    cap = tracing.capture(neuron, torch.float32, ())
    assert cap.inexact_ops == ("sqrt",)
    assert tracing.capture(QuadraticLIF(), torch.float32, ()).inexact_ops == ()  # pow(x, 2) is x*x: exact
    x = _input(scale=1.5, offset=0.3)
    s = _compare(neuron, x, exact=False)
    s2, fin2, h2 = reference(neuron, x)
    assert torch.equal(s, s2)
    torch.testing.assert_close(neuron.run(x)[2], h2, atol=1e-5, rtol=1e-6)
