"""The fused LIF backend against the python reference backend, with and without the C++ kernel.

``impl`` runs every test twice: ``torch`` (the pure-torch loops, C++ disabled) and ``cext`` (the C++ kernel,
built once per process on first use; skipped with the build error when no compiler is available).
"""

from __future__ import annotations

import pytest
import torch

from neurosynth import _cext
from neurosynth._ops.lif import reference
from neurosynth.neurons import LIF

RESETS = [("subtract", False), ("zero", False), ("none", False), ("subtract", True)]  # (reset, reset_delay)
MODE_OF = {("subtract", False): 0, ("zero", False): 1, ("none", False): 2, ("subtract", True): 3}


@pytest.fixture(params=["torch", "cext"])
def impl(request):
    if request.param == "torch":
        with _cext.disabled():
            yield "torch"
        return
    st = _cext.status()
    if not st["available"]:
        pytest.skip(f"C++ LIF kernel unavailable: {st['reason']}")
    yield "cext"


def _neuron(reset, delay, detach, backend, dtype, n, beta, learn=True):
    return LIF(beta=beta, threshold=0.8, shape=n, reset=reset, reset_delay=delay, detach_reset=detach,
               learn_beta=learn, learn_threshold=learn, backend=backend).to(dtype)


def _run_loss(neuron, x, v0, weights):
    """Loss through every output: spikes, the membrane trace and the final state."""
    s, state, h = neuron.run(x, neuron.State(v=v0))
    w_s, w_h, w_v = weights
    loss = (s * w_s).sum() + 0.1 * (h * w_h).sum() + (state.v * w_v).sum()
    return s, h, state.v, loss


def _assert_close(got, ref, tol, name):
    scale = max(1.0, float(ref.abs().max()))
    err = float((got - ref).abs().max()) / scale
    assert err <= tol, f"{name}: max |fused - python| / max(1, |python|) = {err:.3g} > {tol}"


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("reset,delay", RESETS)
@pytest.mark.parametrize("detach", [True, False])
def test_fused_matches_python(impl, dtype, tol, reset, delay, detach):
    if delay and not detach:
        pytest.skip("reset_delay=True always detaches the reset")
    g = torch.Generator().manual_seed(7)
    T, B, N = 40, 4, 24
    x0 = torch.randn(T, B, N, generator=g, dtype=dtype) * 0.7
    v00 = torch.rand(B, N, generator=g, dtype=dtype) * 0.5
    beta = torch.rand(N, generator=g) * 0.4 + 0.55
    weights = tuple(torch.randn(shape, generator=g, dtype=dtype) for shape in [(T, B, N), (T, B, N), (B, N)])
    out = {}
    for backend in ("python", "fused"):
        neuron = _neuron(reset, delay, detach, backend, dtype, N, beta)
        x = x0.clone().requires_grad_()
        v0 = v00.clone().requires_grad_()
        s, h, v, loss = _run_loss(neuron, x, v0, weights)
        loss.backward()
        out[backend] = dict(s=s, h=h, v=v, gx=x.grad, gv0=v0.grad, gbeta=neuron.beta.grad,
                            gthr=neuron.threshold.grad)
    ref, got = out["python"], out["fused"]
    assert ref["s"].sum() > 0.02 * ref["s"].numel(), "test input should make the neurons fire"
    assert torch.equal(got["s"], ref["s"]), "fused spikes differ from the python backend"
    assert torch.equal(got["h"], ref["h"]), "fused membrane trace differs from the python backend"
    assert torch.equal(got["v"], ref["v"]), "fused final state differs from the python backend"
    for name in ("gx", "gv0", "gbeta", "gthr"):
        assert got[name] is not None and ref[name] is not None, name
        _assert_close(got[name], ref[name], tol, name)


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cext_forward_bit_identical_to_torch_loop(mode, dtype):
    st = _cext.status()
    if not st["available"]:
        pytest.skip(f"C++ LIF kernel unavailable: {st['reason']}")
    g = torch.Generator().manual_seed(mode)
    T, B, N = 50, 6, 130  # N*B not a multiple of the vector width or the parallel grain
    x = torch.randn(T, B, N, generator=g, dtype=dtype)
    v0 = torch.randn(B, N, generator=g, dtype=dtype)
    for beta, thr in [(torch.tensor(0.9, dtype=dtype), torch.tensor(1.0, dtype=dtype)),
                      (torch.rand(N, generator=g, dtype=dtype), torch.rand(B, N, generator=g, dtype=dtype) + 0.5)]:
        got = _cext.lif_forward(x, v0, beta, thr, mode)
        ref = reference.forward(x, v0, beta, thr, mode)
        for a, b, name in zip(got, ref, ("spikes", "h", "v_final")):
            assert torch.equal(a, b), f"mode {mode}: C++ {name} differs from the pure-torch loop"


@pytest.mark.parametrize("m_kind", ["full", "neuron", "scalar"])
@pytest.mark.parametrize("d_kind", ["none", "full", "neuron"])
@pytest.mark.parametrize("with_gv", [True, False])
def test_reference_reverse_scan_is_the_written_out_recurrence(m_kind, d_kind, with_gv):
    """The reverse-time scan of the pure-torch LIF backward (``m``, ``d`` per step, per neuron or scalar; ``d=None``
    means 1, ``g_v=None`` means 0) against the recurrence written out step by step."""
    g = torch.Generator().manual_seed(3)
    T, B, N = 30, 3, 17
    a = torch.randn(T, B, N, generator=g, dtype=torch.float64)
    m = {"full": torch.rand(T, B, N, generator=g, dtype=torch.float64),
         "neuron": torch.rand(N, generator=g, dtype=torch.float64),
         "scalar": torch.tensor(0.9, dtype=torch.float64)}[m_kind]
    d = {"none": None, "full": torch.rand(T, B, N, generator=g, dtype=torch.float64),
         "neuron": torch.rand(N, generator=g, dtype=torch.float64)}[d_kind]
    g_v = torch.randn(B, N, generator=g, dtype=torch.float64) if with_gv else None
    got = torch.empty_like(a)
    reference.reverse_scan(a, m, d, g_v, got)

    def at(t, seq):
        return seq[t] if seq.dim() == 3 else seq

    want = torch.empty_like(a)
    want[-1] = a[-1] + (0 if g_v is None else (1 if d is None else at(-1, d)) * g_v)
    for t in range(T - 2, -1, -1):
        want[t] = a[t] + at(t, m) * want[t + 1]
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_fused_noncontiguous_input_and_scalar_params(impl):
    g = torch.Generator().manual_seed(11)
    x_big = torch.randn(8, 30, 5, generator=g)  # [B, T, N] -> transposed view [T, B, N], not contiguous
    x = x_big.transpose(0, 1)
    assert not x.is_contiguous()
    ref = LIF(beta=0.8, threshold=0.5, backend="python")(x)
    got = LIF(beta=0.8, threshold=0.5, backend="fused")(x)
    assert torch.equal(got, ref)


def test_env_var_disables_cext(monkeypatch):
    monkeypatch.setenv("NEUROSYNTH_NO_CEXT", "1")
    x = torch.zeros(3, 2, 4)
    assert not _cext.available(x)
    assert _cext.lif_forward(x, x[0], torch.tensor(0.9), torch.tensor(1.0), 0) is None
    assert _cext.status()["reason"] == "NEUROSYNTH_NO_CEXT is set"
    # the fused backend still runs (pure-torch loop)
    s = LIF(beta=0.9, threshold=0.5, backend="fused")(torch.ones(5, 2, 3))
    assert s[:, 0, 0].tolist() == [1.0, 1.0, 1.0, 1.0, 1.0]


def test_build_failure_falls_back_to_torch(monkeypatch):
    def broken_build():
        raise RuntimeError("no compiler")

    monkeypatch.delenv("NEUROSYNTH_NO_CEXT", raising=False)
    monkeypatch.setattr(_cext, "_build", broken_build)
    monkeypatch.setattr(_cext, "_module", None)
    monkeypatch.setattr(_cext, "_tried", False)
    monkeypatch.setattr(_cext, "_error", None)
    x = torch.randn(20, 3, 4)
    assert not _cext.available(x)
    assert "no compiler" in _cext.status()["reason"]
    ref = LIF(beta=0.9, threshold=0.5, backend="python")(x)
    assert torch.equal(LIF(beta=0.9, threshold=0.5, backend="fused")(x), ref)


def test_non_cpu_or_integer_tensors_are_not_sent_to_cext():
    assert not _cext.available(torch.zeros(2, 2, 2, dtype=torch.float16))
    assert not _cext.available(torch.zeros(2, 2, 2, device="meta"))


SURROGATES = [{"name": "atan", "alpha": 3.0}, {"name": "fast_sigmoid", "slope": 5.0}, {"name": "sigmoid", "alpha": 2.0},
              {"name": "triangle", "width": 0.7}, {"name": "rectangular", "width": 0.9},
              {"name": "straight_through", "scale": 0.3}]


@pytest.mark.parametrize("sur", SURROGATES, ids=[s["name"] for s in SURROGATES])
@pytest.mark.parametrize("reset,detach", [("subtract", True), ("subtract", False), ("zero", True), ("zero", False)])
def test_fused_surrogates_match_python(impl, sur, reset, detach):
    """The C++ backward computes the built-in surrogates itself; each must give the python gradients."""
    g = torch.Generator().manual_seed(5)
    x0 = torch.randn(30, 3, 10, generator=g) * 0.7
    w = torch.randn(30, 3, 10, generator=g)
    grads = {}
    for backend in ("python", "fused"):
        x = x0.clone().requires_grad_()
        neuron = LIF(beta=0.85, threshold=0.6, reset=reset, detach_reset=detach, surrogate=sur, backend=backend)
        (neuron(x) * w).sum().backward()
        grads[backend] = x.grad
    assert grads["python"].abs().sum() > 0
    _assert_close(grads["fused"], grads["python"], 1e-5, f"{sur['name']} input gradient")


def test_custom_surrogate_subclass_uses_its_own_grad(impl):
    """A subclass overriding grad must not be replaced by the C++ built-in formula."""
    from dataclasses import dataclass

    from neurosynth.surrogate import ATan

    @dataclass(frozen=True)
    class Doubled(ATan):
        def grad(self, x):
            return 2 * super().grad(x)

    x0 = torch.randn(20, 2, 6, generator=torch.Generator().manual_seed(2))
    grads = {}
    for sur in (ATan(), Doubled()):
        x = x0.clone().requires_grad_()
        LIF(beta=0.9, threshold=0.5, surrogate=sur, backend="fused")(x).sum().backward()
        grads[type(sur).__name__] = x.grad
    ref = x0.clone().requires_grad_()
    LIF(beta=0.9, threshold=0.5, surrogate=Doubled(), backend="python")(ref).sum().backward()
    _assert_close(grads["Doubled"], ref.grad, 1e-5, "custom surrogate gradient")
    assert not torch.allclose(grads["Doubled"], grads["ATan"])


def test_extension_is_built_at_most_once_across_threads(monkeypatch):
    import threading
    import time

    calls = []

    def slow_build():
        calls.append(1)
        time.sleep(0.05)
        return "module"

    monkeypatch.delenv("NEUROSYNTH_NO_CEXT", raising=False)
    monkeypatch.setattr(_cext, "_build", slow_build)
    monkeypatch.setattr(_cext, "_module", None)
    monkeypatch.setattr(_cext, "_tried", False)
    monkeypatch.setattr(_cext, "_error", None)
    got = []
    threads = [threading.Thread(target=lambda: got.append(_cext.load_extension())) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert calls == [1]
    assert got == ["module"] * 8
