"""The Triton recurrent layer (``neurosynth/_ops/recurrent/triton.py``: cuBLAS GEMM per step + one fused Triton
launch for the neuron update, and the same for the reverse scan) against the reference orchestration
(``recurrent/reference.py``), for every neuron, reset mode, detached/attached reset, with and without bias, T=1,
odd sizes, and bf16 input. Interpreter on CPU without a CUDA device (see test_triton_ops.py).

Tolerances: spikes and membranes bit-identical (same GEMMs, same elementwise order, no FMA); gradients within
1e-5 of max(1, |reference|)."""

from __future__ import annotations

import pytest
import torch

tri = pytest.importorskip("neurosynth._ops.recurrent.triton")
if tri.triton is None:  # pragma: no cover
    pytest.skip("triton is not installed", allow_module_level=True)

from neurosynth._ops.recurrent import reference as ref  # noqa: E402

DEV = "cpu" if tri.INTERPRET else "cuda"
ATAN = (0, 1.0, 3.141592653589793)


def _close(got, want, name, tol=1e-5):
    assert got.dtype == want.dtype and got.shape == want.shape, f"{name}: {got.dtype}{tuple(got.shape)} vs {want.dtype}{tuple(want.shape)}"
    if want.numel() == 0:
        return
    err = float((got.double() - want.double()).abs().max()) / max(1.0, float(want.abs().max()))
    assert err <= tol, f"{name}: {err:.3g} > {tol}"


def _case(neuron, T, B, N, mode, detach, bias, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0, shift=0.0):
        return (torch.rand(*shape, generator=g) * scale + shift).to(DEV)

    x = (torch.randn(T, B, N, generator=g) * 0.7 + 0.2).to(dtype).to(DEV)
    w = (torch.randn(N, N, generator=g) * (0.8 / N ** 0.5)).to(DEV)
    b = (torch.randn(N, generator=g) * 0.1).to(DEV) if bias else None
    s0 = (torch.rand(B, N, generator=g) < 0.3).float().to(DEV)
    if neuron == "lif":
        states0, params = [r(B, N, scale=0.5)], [r(N, scale=0.4, shift=0.5), torch.tensor(0.8, device=DEV)]
    elif neuron == "cubalif":
        states0 = [r(B, N, scale=0.2), r(B, N, scale=0.5)]
        params = [r(N, scale=0.4, shift=0.4), torch.tensor(0.85, device=DEV), torch.tensor(0.7, device=DEV)]
    else:
        states0 = [r(B, N, scale=0.5), r(B, N, scale=0.5)]
        params = [torch.tensor(0.9, device=DEV), torch.tensor(0.6, device=DEV), r(N, scale=0.1, shift=0.85),
                  r(N, scale=0.3)]
    want = ref.forward(neuron, x, w, b, s0, states0, params, mode)
    got = tri.forward(neuron, x, w, b, s0, states0, params, mode)
    assert got is not None, "the Triton recurrent forward declined"
    for name, p, q in zip(("s", "h", "aux"), got[:3], want[:3]):
        assert p.dtype == q.dtype and torch.equal(p, q), f"forward {name} differs"
    for p, q in zip(got[3], want[3]):
        assert torch.equal(p, q), "final state differs"
    if T > 3:
        assert 0 < float(want[0].float().mean()) < 0.9, "the case should make some (not all) neurons fire"
    s, h, aux = want[:3]
    g_s = torch.randn(T, B, N, generator=g).to(DEV)
    g_h = (torch.randn(T, B, N, generator=g) * 0.1).to(DEV)
    g_states = [torch.randn(B, N, generator=g).to(DEV) for _ in states0]
    g_last = torch.randn(B, N, generator=g).to(DEV)
    for args in [(g_s, g_h, g_states, g_last), (g_s, None, [None] * len(states0), None)]:
        want_b = ref.backward(neuron, s, h, aux, w, s0, states0, params, *args, mode, detach, ATAN)
        got_b = tri.backward(neuron, s, h, aux, w, s0, states0, params, *args, mode, detach, ATAN)
        assert got_b is not None, "the Triton recurrent backward declined"
        for name, p, q in zip(("g_c", "g_s_tot", "g_h", "g_theta", "g_a_seq"), got_b, want_b):
            _close(p, q, f"{neuron} mode {mode} detach {detach}: {name}")


@pytest.mark.parametrize("neuron", ["lif", "cubalif", "alif"])
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("detach", [True, False])
def test_recurrent_matches_reference(neuron, mode, detach):
    _case(neuron, 6, 3, 21, mode, detach, bias=mode != 2)


@pytest.mark.parametrize("neuron", ["lif", "cubalif", "alif"])
def test_recurrent_single_step_and_bf16(neuron):
    _case(neuron, 1, 2, 5, 1, True, bias=True, seed=1)
    _case(neuron, 5, 2, 13, 0, True, bias=False, dtype=torch.bfloat16, seed=2)


def test_recurrent_declines_what_it_does_not_do():
    x = torch.zeros(2, 1, 3, device=DEV)
    w = torch.zeros(3, 3, device=DEV)
    st = [torch.zeros(1, 3, device=DEV)]
    p = [torch.tensor(0.9), torch.tensor(1.0)]
    assert tri.forward("lif", x, w, None, st[0], st, p, 3) is None  # the delayed reset is not a recurrent mode
    assert tri.forward("quadratic", x, w, None, st[0], st, p, 0) is None
    assert tri.forward("lif", x.to("meta"), w, None, st[0], st, p, 0) is None
