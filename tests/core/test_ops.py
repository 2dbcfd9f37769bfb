"""Every fused operator (``neurosynth._ops``) against the python reference loop (``timeloop.scan`` over the pure
step), for every neuron, reset mode, several shapes (odd sizes, T=1), learnable parameters on and off, and for
each implementation the dispatcher can pick on CPU: ``reference`` (pure torch) and ``cpu`` (C++; skipped with the
reason when it is unavailable). float32 spikes must be bit-identical and gradients within 1e-5."""

from __future__ import annotations

import pytest
import torch

from neurosynth import _ops
from neurosynth.neurons import ALIF, IF, LIF, CubaLIF

SHAPES = [(1, 1, 1), (7, 3, 5), (33, 2, 13)]  # (T, B, N)

CASES = [
    ("lif", dict(reset="subtract")), ("lif", dict(reset="zero")), ("lif", dict(reset="none")),
    ("lif", dict(reset="subtract", reset_delay=True)),
    ("if", dict(reset="subtract")), ("if", dict(reset="zero")),
    ("cubalif", dict(reset="zero")), ("cubalif", dict(reset="subtract")), ("cubalif", dict(reset="none")),
    ("alif", dict(reset="subtract")), ("alif", dict(reset="zero")), ("alif", dict(reset="none")),
]
CLS = {"lif": LIF, "if": IF, "cubalif": CubaLIF, "alif": ALIF}
OP = {"lif": "lif", "if": "lif", "cubalif": "cubalif", "alif": "alif"}


@pytest.fixture(params=["reference", "cpu"])
def impl(request):
    if request.param == "cpu":
        from neurosynth import _cext

        st = _cext.status()
        if not st["available"]:
            pytest.skip(f"C++ kernel unavailable: {st['reason']}")
    return request.param


def _make(name, kw, n, backend, learn, detach, dtype=torch.float32):
    cls = CLS[name]
    g = torch.Generator().manual_seed(1)
    params = {"lif": dict(beta=torch.rand(n, generator=g) * 0.4 + 0.55, threshold=0.8),
              "if": dict(threshold=0.9),
              "cubalif": dict(alpha=torch.rand(n, generator=g) * 0.5 + 0.3, beta=0.85, threshold=0.7),
              "alif": dict(beta=0.9, threshold=0.6, adapt_decay=0.9, adapt_scale=torch.rand(n, generator=g) * 0.3)}[name]
    learn_names = [k for k in cls.defaults] if learn else []
    if kw.get("reset_delay"):
        detach = True
    return cls(**params, **kw, shape=n, backend=backend, learn=learn_names, detach_reset=detach).to(dtype)


def _run(neuron, x, state0, seed=3):
    s, state, h = neuron.run(x, state0)
    g = torch.Generator().manual_seed(seed)
    loss = (s * torch.randn(s.shape, generator=g).to(s.dtype)).sum() + 0.1 * (h * torch.randn(h.shape, generator=g)
                                                                                .to(h.dtype)).sum()
    for v in state:
        loss = loss + (v * torch.randn(v.shape, generator=g).to(v.dtype)).sum()
    return s, h, state, loss


def _state0(neuron, x, grad):
    g = torch.Generator().manual_seed(5)
    return neuron.State(*(
        (torch.rand(x.shape[1:], generator=g) * 0.5).to(x.dtype).requires_grad_(grad) for _ in neuron.state_vars))


def _close(got, ref, tol, what):
    scale = max(1.0, float(ref.abs().max()))
    err = float((got.double() - ref.double()).abs().max()) / scale
    assert err <= tol, f"{what}: max |fused - python| / max(1, |python|) = {err:.3g} > {tol}"


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name,kw", CASES, ids=lambda c: c if isinstance(c, str) else "-".join(
    f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("learn", [True, False], ids=["learn", "fixed"])
@pytest.mark.parametrize("detach", [True, False], ids=["detach", "attach"])
def test_fused_equals_python(impl, name, kw, shape, learn, detach):
    T, B, N = shape
    gen = torch.Generator().manual_seed(T * 100 + N)
    x0 = torch.randn(T, B, N, generator=gen) * 0.8 + 0.3
    out = {}
    for backend in ("python", "fused"):
        neuron = _make(name, kw, N, backend, learn, detach)
        x = x0.clone().requires_grad_()
        st0 = _state0(neuron, x, grad=True)
        with _ops.forced(impl if backend == "fused" else None):
            if backend == "fused":
                assert neuron._use_fused(st0)
            s, h, state, loss = _run(neuron, x, st0)
            loss.backward()
        grads = {"x": x.grad, **{f"state0.{k}": v.grad for k, v in zip(neuron.state_vars, st0)},
                 **{k: p.grad for k, p in neuron.named_parameters()}}
        out[backend] = (s, h, state, grads)
    (s_r, h_r, st_r, g_r), (s_f, h_f, st_f, g_f) = out["python"], out["fused"]
    if T > 5:
        assert s_r.sum() > 0, "the test input should make the neurons fire"
    assert torch.equal(s_f, s_r), f"{int((s_f != s_r).sum())} spikes differ"
    assert torch.equal(h_f, h_r), "membrane trace differs"
    for a, b in zip(st_f, st_r):
        assert torch.equal(a, b), "final state differs"
    assert set(g_f) == set(g_r)
    for k in g_r:
        assert (g_f[k] is None) == (g_r[k] is None), k
        if g_r[k] is not None:
            _close(g_f[k], g_r[k], 1e-5, k)


@pytest.mark.parametrize("name,kw", [c for c in CASES if c[0] != "if"], ids=lambda c: c if isinstance(c, str) else
                         "-".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_input_close_to_float32(impl, name, kw, dtype):
    """bf16/fp16 input: membrane accumulated in float32, so the result is the float32 run on the rounded input:
    spikes identical to the float32 python run on ``x.to(dtype).float()``; gradients (which arrive rounded to
    the half dtype through the spikes) within 1e-2 of max(1, |float32 gradient|)."""
    T, B, N = 20, 3, 11
    x0 = (torch.randn(T, B, N, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.3).to(dtype)
    ref_n = _make(name, kw, N, "python", True, True)
    xr = x0.float().requires_grad_()
    s_r, h_r, _, loss_r = _run(ref_n, xr, None)
    loss_r.backward()
    fn = _make(name, kw, N, "fused", True, True)
    xf = x0.clone().requires_grad_()
    with _ops.forced(impl):
        s_f, st_f, h_f = fn.run(xf)
        g = torch.Generator().manual_seed(3)
        w_s = torch.randn(s_f.shape, generator=g)
        w_h = torch.randn(h_f.shape, generator=g)
        loss = (s_f.float() * w_s).sum() + 0.1 * (h_f * w_h).sum()
        for v in st_f:
            loss = loss + (v * torch.randn(v.shape, generator=g)).sum()
        loss.backward()
    assert s_f.dtype == dtype and h_f.dtype == torch.float32
    assert torch.equal(s_f.float(), s_r)
    _close(xf.grad.float(), xr.grad, 1e-2, "input gradient")
    for (k, p), (_, q) in zip(fn.named_parameters(), ref_n.named_parameters()):
        _close(p.grad, q.grad, 1e-2, k)


def test_dispatcher_picks_by_device_and_dtype():
    x = torch.zeros(2, 2, 2)
    assert _ops.name_of("lif", x) in ("cpu", "reference")
    assert _ops.name_of("lif", torch.zeros(2, 2, 2, device="meta")) == "reference"
    with _ops.forced("reference"):
        assert _ops.name_of("alif", x) == "reference"
    with pytest.raises(ValueError):
        _ops.implementation("nope", x)


REC_CASES = [("lif", "subtract"), ("lif", "zero"), ("lif", "none"), ("cubalif", "zero"), ("cubalif", "subtract"),
             ("alif", "subtract"), ("alif", "zero")]


@pytest.mark.parametrize("name,reset", REC_CASES)
@pytest.mark.parametrize("shape", [(1, 2, 3), (17, 3, 9)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("learn", [True, False], ids=["learn", "fixed"])
def test_recurrent_fast_path_equals_python_loop(impl, name, reset, shape, bias, learn):
    from neurosynth.layers import Recurrent, RecurrentState

    T, B, N = shape
    gen = torch.Generator().manual_seed(N + T)
    x0 = torch.randn(T, B, N, generator=gen) * 0.8 + 0.3
    w0 = torch.randn(N, N, generator=gen) * 0.6
    out = {}
    for backend in ("python", "fused"):
        neuron = _make(name if name != "lif" else "lif", {"reset": reset}, N, backend, learn, detach=(reset != "zero"))
        layer = Recurrent(N, neuron, bias=bias)
        with torch.no_grad():
            layer.rec.weight.copy_(w0)
            if bias:
                layer.rec.bias.fill_(0.05)
        x = x0.clone().requires_grad_()
        st = RecurrentState((torch.rand(B, N, generator=torch.Generator().manual_seed(2)) < 0.5).float()
                            .requires_grad_(), _state0(neuron, x, grad=True))
        with _ops.forced(impl if backend == "fused" else None):
            assert (layer._fast_op(st.neuron) is not None) == (backend == "fused")
            s, state, h = layer.run(x, st)
            g = torch.Generator().manual_seed(3)
            loss = (s * torch.randn(s.shape, generator=g)).sum() + 0.1 * (h * torch.randn(h.shape, generator=g)).sum()
            for v in state.neuron:
                loss = loss + (v * torch.randn(v.shape, generator=g)).sum()
            loss.backward()
        grads = {"x": x.grad, "s0": st.s.grad, **{f"state0.{k}": v.grad for k, v in zip(neuron.state_vars, st.neuron)},
                 **{k: p.grad for k, p in layer.named_parameters()}}
        out[backend] = (s, h, state, grads)
    (s_r, h_r, st_r, g_r), (s_f, h_f, st_f, g_f) = out["python"], out["fused"]
    assert torch.equal(s_f, s_r), f"{int((s_f != s_r).sum())} spikes differ"
    assert torch.equal(h_f, h_r), "membrane trace differs"
    for a, b in zip(st_f.neuron, st_r.neuron):
        assert torch.equal(a, b), "final state differs"
    for k in g_r:
        assert (g_f[k] is None) == (g_r[k] is None), k
        if g_r[k] is not None:
            _close(g_f[k], g_r[k], 1e-5, k)


def test_recurrent_with_hooks_or_custom_neuron_runs_the_python_loop():
    from neurosynth.layers import Recurrent

    layer = Recurrent(4, "lif")
    x = torch.rand(3, 2, 4)
    assert layer._fast_op(layer.neuron.initial_state(x[0])) is not None
    calls = []
    handle = layer.rec.register_forward_hook(lambda *a: calls.append(1))
    assert layer._fast_op(layer.neuron.initial_state(x[0])) is None
    layer(x)
    handle.remove()
    assert len(calls) == 3
    assert Recurrent(4, "lif", reset_delay=True)._fast_op(layer.neuron.initial_state(x[0])) is None


@pytest.mark.parametrize("name", ["lif", "cubalif", "alif"])
def test_fused_without_parameter_or_state_gradients(impl, name):
    """Only the input needs a gradient: the ops skip the parameter-side outputs (distinct empty tensors)."""
    kw = {"reset": "zero" if name == "cubalif" else "subtract"}
    x0 = torch.randn(9, 2, 7, generator=torch.Generator().manual_seed(4)) + 0.3
    grads = []
    for backend in ("python", "fused"):
        neuron = _make(name, kw, 7, backend, learn=False, detach=True)
        x = x0.clone().requires_grad_()
        with _ops.forced(impl if backend == "fused" else None):
            s, _, h = neuron.run(x)
            (s.sum() + h.sum()).backward()
        grads.append(x.grad)
    _close(grads[1], grads[0], 1e-5, "x")
