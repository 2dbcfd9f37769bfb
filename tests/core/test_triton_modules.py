"""Whole neuron modules through the dispatcher pinned to the Triton kernels (``_ops.forced("triton")``: the
custom ops and autograd of ``neurosynth/_ops/<op>/autograd.py`` around ``triton.py``) against the python
backend (``timeloop.scan`` over the pure step, autograd): every neuron and reset mode, learnable parameters on and
off, attached and detached reset, T=1 and odd sizes. Interpreter on CPU without a CUDA device.

float32: spikes, membrane trace and final state bit-identical, every gradient (input, initial state, learnable
parameters) within 1e-5 of max(1, |python|). bf16/fp16 input: spikes identical to the float32 python run on the
rounded input (both accumulate in float32), gradients within 1e-2 (they reach the input rounded to the half
dtype)."""

from __future__ import annotations

import pytest
import torch

tri = pytest.importorskip("neurosynth._ops.lif.triton")
if tri.triton is None:  # pragma: no cover
    pytest.skip("triton is not installed", allow_module_level=True)

from neurosynth import _ops  # noqa: E402
from neurosynth.neurons import ALIF, IF, LIF, CubaLIF  # noqa: E402

DEV = "cpu" if tri.INTERPRET else "cuda"
CASES = [
    ("lif", dict(reset="subtract")), ("lif", dict(reset="zero")), ("lif", dict(reset="none")),
    ("lif", dict(reset="subtract", reset_delay=True)), ("if", dict(reset="subtract")),
    ("cubalif", dict(reset="zero")), ("cubalif", dict(reset="subtract")), ("cubalif", dict(reset="none")),
    ("alif", dict(reset="subtract")), ("alif", dict(reset="zero")), ("alif", dict(reset="none")),
]
CLS = {"lif": LIF, "if": IF, "cubalif": CubaLIF, "alif": ALIF}
IDS = ["-".join([n] + [f"{k}={v}" for k, v in kw.items()]) for n, kw in CASES]


def _make(name, kw, n, backend, learn, detach):
    g = torch.Generator().manual_seed(1)
    params = {"lif": dict(beta=torch.rand(n, generator=g) * 0.4 + 0.55, threshold=0.8),
              "if": dict(threshold=0.9),
              "cubalif": dict(alpha=torch.rand(n, generator=g) * 0.5 + 0.3, beta=0.85, threshold=0.7),
              "alif": dict(beta=0.9, threshold=0.6, adapt_decay=0.9, adapt_scale=torch.rand(n, generator=g) * 0.3)}[name]
    cls = CLS[name]
    if kw.get("reset_delay"):
        detach = True
    return cls(**params, **kw, shape=n, backend=backend, learn=list(cls.defaults) if learn else [],
               detach_reset=detach).to(DEV)


def _run(neuron, x, grad_state, seed=3):
    g = torch.Generator().manual_seed(5)
    st0 = neuron.State(*((torch.rand(x.shape[1:], generator=g) * 0.5).to(DEV).requires_grad_(grad_state)
                         for _ in neuron.state_vars))
    s, state, h = neuron.run(x, st0)
    g = torch.Generator().manual_seed(seed)
    loss = (s.float() * torch.randn(s.shape, generator=g).to(DEV)).sum()
    loss = loss + 0.1 * (h.float() * torch.randn(h.shape, generator=g).to(DEV)).sum()
    for v in state:
        loss = loss + (v.float() * torch.randn(v.shape, generator=g).to(DEV)).sum()
    loss.backward()
    grads = {f"state0.{k}": v.grad for k, v in zip(neuron.state_vars, st0)}
    grads.update({k: p.grad for k, p in neuron.named_parameters()})
    return s, h, state, grads


def _close(got, ref, tol, what):
    err = float((got.double() - ref.double()).abs().max()) / max(1.0, float(ref.abs().max()))
    assert err <= tol, f"{what}: max |triton - python| / max(1, |python|) = {err:.3g} > {tol}"


@pytest.mark.parametrize("shape", [(1, 2, 3), (9, 3, 7)], ids=["T1", "T9"])
@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
@pytest.mark.parametrize("learn,detach", [(True, False), (False, True)], ids=["learn-attach", "fixed-detach"])
def test_module_through_triton_equals_python(name, kw, shape, learn, detach):
    T, B, N = shape
    x0 = (torch.randn(T, B, N, generator=torch.Generator().manual_seed(T * 100 + N)) * 0.8 + 0.3).to(DEV)
    out = {}
    for backend in ("python", "fused"):
        neuron = _make(name, kw, N, backend, learn, detach)
        x = x0.clone().requires_grad_()
        with _ops.forced("triton" if backend == "fused" else None):
            s, h, state, grads = _run(neuron, x, grad_state=True)
        out[backend] = (s, h, state, {"x": x.grad, **grads})
    (s_r, h_r, st_r, g_r), (s_f, h_f, st_f, g_f) = out["python"], out["fused"]
    if T > 5:
        assert 0 < float(s_r.detach().mean()) < 0.9, "the input should make some neurons fire"
    assert torch.equal(s_f, s_r), f"{int((s_f != s_r).sum())} spikes differ"
    assert torch.equal(h_f, h_r), "membrane trace differs"
    for a, b in zip(st_f, st_r):
        assert torch.equal(a, b), "final state differs"
    assert set(g_f) == set(g_r)
    for k in g_r:
        assert (g_f[k] is None) == (g_r[k] is None), k
        if g_r[k] is not None:
            _close(g_f[k], g_r[k], 1e-5, k)


@pytest.mark.parametrize("name,kw", [CASES[0], CASES[5], CASES[8]], ids=[IDS[0], IDS[5], IDS[8]])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_module_half_precision_through_triton(name, kw, dtype):
    T, B, N = 12, 3, 11
    x0 = (torch.randn(T, B, N, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.3).to(dtype).to(DEV)
    ref_n = _make(name, kw, N, "python", True, True)
    xr = x0.float().requires_grad_()
    s_r, _, _, g_r = _run(ref_n, xr, grad_state=False)
    fn = _make(name, kw, N, "fused", True, True)
    xf = x0.clone().requires_grad_()
    with _ops.forced("triton"):
        s_f, h_f, _, g_f = _run(fn, xf, grad_state=False)
    assert s_f.dtype == dtype and h_f.dtype == torch.float32
    assert torch.equal(s_f.float(), s_r)
    _close(xf.grad.float(), xr.grad, 1e-2, "input gradient")
    for k in g_r:
        if g_r[k] is not None:
            _close(g_f[k], g_r[k], 1e-2, k)


def test_triton_really_runs_under_forced(monkeypatch):
    """Guard against a vacuous pass: under forced("triton") the LIF forward goes through triton.py."""
    calls = []
    real = tri.forward
    monkeypatch.setattr(tri, "forward", lambda *a: calls.append(1) or real(*a))
    n = LIF(beta=0.9, backend="fused").to(DEV)
    with _ops.forced("triton"):
        n(torch.randn(3, 2, 4, device=DEV))
    assert calls, "the Triton LIF forward was not called"
    from neurosynth._ops.recurrent import triton as tri_rec
    from neurosynth.layers import Recurrent

    real_rec = tri_rec.forward
    monkeypatch.setattr(tri_rec, "forward", lambda *a: calls.append(2) or real_rec(*a))
    with _ops.forced("triton"):
        Recurrent(4, "lif").to(DEV)(torch.randn(3, 2, 4, device=DEV))
    assert 2 in calls, "the Triton recurrent forward was not called"


@pytest.mark.parametrize("name,kw", [CASES[1], CASES[6], CASES[8]], ids=[IDS[1], IDS[6], IDS[8]])
@pytest.mark.parametrize("learn", [True, False], ids=["learn", "fixed"])
def test_recurrent_layer_through_triton_equals_python(name, kw, learn):
    """``Recurrent`` (fast path: custom op + recurrent/triton.py) against its python loop: spikes, membrane,
    and the gradients of the input, the recurrent weight and bias and the learnable neuron parameters."""
    from neurosynth.layers import Recurrent

    T, B, N = 7, 3, 9
    x0 = (torch.randn(T, B, N, generator=torch.Generator().manual_seed(2)) * 0.8 + 0.4).to(DEV)
    out = {}
    for backend in ("python", "fused"):
        torch.manual_seed(0)
        layer = Recurrent(N, _make(name, kw, N, backend, learn, detach=False), bias=True).to(DEV)
        x = x0.clone().requires_grad_()
        with _ops.forced("triton" if backend == "fused" else None):
            s, _, h = layer.run(x)
            g = torch.Generator().manual_seed(4)
            loss = (s * torch.randn(s.shape, generator=g).to(DEV)).sum() + 0.1 * (h * torch.randn(
                h.shape, generator=g).to(DEV)).sum()
            loss.backward()
        out[backend] = (s, h, {"x": x.grad, **{k: p.grad for k, p in layer.named_parameters()}})
    (s_r, h_r, g_r), (s_f, h_f, g_f) = out["python"], out["fused"]
    assert 0 < float(s_r.detach().mean()) < 0.9
    assert torch.equal(s_f, s_r) and torch.equal(h_f, h_r)
    for k in g_r:
        assert (g_f[k] is None) == (g_r[k] is None), k
        if g_r[k] is not None:
            _close(g_f[k], g_r[k], 1e-5, k)
