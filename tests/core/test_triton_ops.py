"""The Triton kernels (``neurosynth/_ops/<op>/triton.py``) against each op's pure-torch reference contract.

Without a CUDA device the kernels run in the Triton interpreter on CPU tensors (``neurosynth._ops.lif.triton``
decorates them with ``TRITON_INTERPRET=1`` set only while it does so; the rest of the suite is unaffected). On a
CUDA machine the same tests run the compiled kernels on CUDA tensors.

Tolerances: spikes (and the membrane trace) bit-identical in every dtype (bf16/fp16 inputs are accumulated in
float32 by both sides, with the same operation order and no FMA); gradients within 1e-5 of the reference,
relative to max(1, |reference|) (the reductions run in another order only where FMA-free products are summed).
"""

from __future__ import annotations

import pytest
import torch

triton_mod = pytest.importorskip("neurosynth._ops.lif.triton")
if triton_mod.triton is None:  # pragma: no cover - triton not installed
    pytest.skip("triton is not installed", allow_module_level=True)
ref_lif = pytest.importorskip("neurosynth._ops.lif.reference")

from neurosynth._ops.alif import reference as ref_alif  # noqa: E402
from neurosynth._ops.alif import triton as tri_alif  # noqa: E402
from neurosynth._ops.cubalif import reference as ref_cuba  # noqa: E402
from neurosynth._ops.cubalif import triton as tri_cuba  # noqa: E402
from neurosynth._ops.lif import triton as tri_lif  # noqa: E402

DEV = "cpu" if triton_mod.INTERPRET else "cuda"
if DEV == "cuda" and not torch.cuda.is_available():  # pragma: no cover
    pytest.skip("compiled Triton needs a CUDA device", allow_module_level=True)

ATAN = (0, 1.0, 3.141592653589793)  # ATan(alpha=2) as its code triple (id, alpha/2, pi/2*alpha)
SURROGATES = [ATAN, (1, 0.0, 5.0), (2, 0.0, 4.0), (3, 0.0, 1.0), (4, 0.5, 1.0), (5, 0.0, 1.0)]
SHAPES = [(1, 2, 3), (9, 3, 37), (5, 1, 2, 3, 7)]  # T=1; odd sizes; more than one feature dimension
HALF = [torch.bfloat16, torch.float16]


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _rand(shape, g, scale=1.0, shift=0.0, dtype=torch.float32):
    return (torch.rand(shape, generator=g) * scale + shift).to(dtype).to(DEV)


def _randn(shape, g, scale=1.0, dtype=torch.float32):
    return (torch.randn(shape, generator=g) * scale).to(dtype).to(DEV)


def _close(got, ref, name, tol=1e-5):
    assert got.dtype == ref.dtype, f"{name}: dtype {got.dtype} != {ref.dtype}"
    assert got.shape == ref.shape, f"{name}: shape {tuple(got.shape)} != {tuple(ref.shape)}"
    if ref.numel() == 0:
        return
    scale = max(1.0, float(ref.abs().max()))
    err = float((got.double() - ref.double()).abs().max()) / scale
    assert err <= tol, f"{name}: max |triton - reference| / max(1, |reference|) = {err:.3g} > {tol}"


def _same(got, ref, name):
    assert got.dtype == ref.dtype and got.shape == ref.shape, f"{name}: {got.dtype}{tuple(got.shape)} vs {ref.dtype}{tuple(ref.shape)}"
    assert torch.equal(got, ref), f"{name}: {int((got != ref).sum())} of {ref.numel()} elements differ"


def _params(shape, g, per_neuron, lo, hi):
    """A parameter per neuron (the step's shape minus batch, broadcast) or one shared scalar."""
    if per_neuron:
        return _rand(shape[2:], g, hi - lo, lo)
    return _rand((), g, hi - lo, lo)


# ----------------------------------------------------------------------------------------------------- LIF
def _lif_case(shape, mode, detach, dtype, per_neuron, sur, seed=0, outs=(True, True, True)):
    g = _gen(seed)
    x = _randn(shape, g, 0.8, dtype)
    v0 = _rand(shape[1:], g, 0.5)
    beta = _params(shape, g, per_neuron, 0.5, 0.95)
    thr = _params(shape, g, per_neuron, 0.6, 1.2)
    ref = ref_lif.forward(x, v0, beta, thr, mode)
    got = tri_lif.forward(x, v0, beta, thr, mode)
    assert got is not None, "the Triton LIF forward declined"
    for name, a, b in zip(("s", "h", "v"), got, ref):
        _same(a, b, f"forward {name}")
    T = shape[0]
    g_s = _randn(shape, g) if outs[0] else None
    g_h = _randn(shape, g, 0.1) if outs[1] else None
    g_v = _randn(shape[1:], g) if outs[2] else None
    h = ref[1]
    want = ref_lif.backward(h, g_s, g_h, g_v, beta, thr, mode, detach, sur)
    have = tri_lif.backward(h, g_s, g_h, g_v, beta, thr, mode, detach, sur)
    assert have is not None, "the Triton LIF backward declined"
    _close(have, want, f"g_h (T={T}, mode={mode}, detach={detach})")
    return x, v0, beta, thr, h, g_s, g_h, g_v


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", [0, 1, 2, 3])
@pytest.mark.parametrize("detach", [True, False])
def test_lif_matches_reference_fp32(shape, mode, detach):
    _lif_case(shape, mode, detach, torch.float32, per_neuron=True, sur=ATAN)


@pytest.mark.parametrize("dtype", HALF + [torch.float64])
@pytest.mark.parametrize("mode", [0, 1, 3])
def test_lif_other_dtypes(dtype, mode):
    _lif_case((7, 3, 19), mode, mode != 1, dtype, per_neuron=True, sur=ATAN, seed=3)


@pytest.mark.parametrize("sur", SURROGATES, ids=lambda c: f"sur{c[0]}")
def test_lif_every_surrogate_scalar_params(sur):
    _lif_case((6, 2, 11), 0, False, torch.float32, per_neuron=False, sur=sur, seed=5)


@pytest.mark.parametrize("outs", [(True, False, False), (False, True, False), (False, False, True)])
def test_lif_missing_output_gradients(outs):
    _lif_case((4, 2, 9), 1, False, torch.float32, per_neuron=True, sur=ATAN, seed=9, outs=outs)


@pytest.mark.parametrize("mode,detach", [(0, False), (1, True), (3, True)])
def test_lif_broadcast_output_gradients(mode, detach):
    """``out.sum()`` hands the backward ``ones.expand(...)`` (all strides 0): the kernel reads the one value
    instead of materialising the tensor, with the same result."""
    g = _gen(13)
    shape = (6, 3, 10)
    x = _randn(shape, g, 0.8)
    v0, beta, thr = _rand(shape[1:], g, 0.5), _rand(shape[2:], g, 0.4, 0.5), _rand(shape[2:], g, 0.5, 0.7)
    h = ref_lif.forward(x, v0, beta, thr, mode)[1]
    g_s = torch.full((), 0.7, device=DEV).expand(shape)
    g_h = torch.full((1, 1, 1), -0.2, device=DEV).expand(shape)
    want = ref_lif.backward(h, g_s.contiguous(), g_h.contiguous(), None, beta, thr, mode, detach, ATAN)
    _close(tri_lif.backward(h, g_s, g_h, None, beta, thr, mode, detach, ATAN), want, "g_h (broadcast g_s, g_h)")
    _close(tri_lif.backward(h, g_s, None, None, beta, thr, mode, detach, ATAN),
           ref_lif.backward(h, g_s.contiguous(), None, None, beta, thr, mode, detach, ATAN), "g_h (broadcast g_s)")


def test_lif_fires_and_declines():
    """The cases above are not vacuous (neurons fire, not all of them), and the kernels decline what they
    cannot do (a surrogate that is not built in; a tensor on the other device)."""
    g = _gen(1)
    x = _randn((20, 4, 16), g, 0.8)
    s, h, v = tri_lif.forward(x, torch.zeros(4, 16, device=DEV), torch.tensor(0.9, device=DEV),
                              torch.tensor(1.0, device=DEV), 0)
    assert 0.02 < float(s.mean()) < 0.6
    from neurosynth.surrogate import ATan

    class MyATan(ATan):
        pass

    gs = torch.ones_like(h)
    assert tri_lif.backward(h, gs, None, None, torch.tensor(0.9), torch.tensor(1.0), 0, True, MyATan()) is None
    other = torch.zeros(3, 2, device="meta")
    assert not tri_lif.available(other)
    assert tri_lif.forward(other, other[0], torch.tensor(0.9), torch.tensor(1.0), 0) is None


def test_lif_param_grads_in_kernel():
    """The optional in-kernel parameter sums equal the torch formulas (sum_t g_h v_{t-1}, threshold uses)."""
    g = _gen(11)
    shape = (8, 3, 13)
    for mode, detach in [(0, False), (0, True), (1, False), (3, True), (2, True)]:
        x = _randn(shape, g, 0.8)
        v0 = _rand(shape[1:], g, 0.5)
        beta, thr = _rand(shape[2:], g, 0.4, 0.5), _rand(shape[2:], g, 0.5, 0.7)
        s, h, v = ref_lif.forward(x, v0, beta, thr, mode)
        g_s, g_v = _randn(shape, g), _randn(shape[1:], g)
        # autograd through the python reference dynamics gives the parameter gradients to compare with
        xr, br, tr, vr = (t.clone().requires_grad_() for t in (x, beta, thr, v0))
        from neurosynth.neurons import reset_subtract, reset_zero
        from neurosynth.surrogate import ATan

        sur = ATan()
        vv, outs = vr, []
        for t in range(shape[0]):
            hh = br * vv + xr[t]
            if mode == 3 and t > 0:
                hh = hh - tr * (outs[-1].detach() if detach else outs[-1])
            sp = sur(hh - tr)
            sr = sp.detach() if detach else sp
            vv = reset_subtract(hh, sr, tr) if mode == 0 else reset_zero(hh, sr, tr) if mode == 1 else hh
            outs.append(sp)
        loss = (torch.stack(outs) * g_s).sum() + (vv * g_v).sum()
        loss.backward()
        gh, gb, gt = tri_lif.lif_backward(h, g_s, None, g_v, beta, thr, mode, detach, ATAN, v0=v0,
                                          param_grads=True)
        _close(gh, xr.grad, f"g_x mode {mode}")
        _close(gb.sum(0), br.grad, f"g_beta mode {mode}")
        _close(gt.sum(0), tr.grad, f"g_thr mode {mode}")


# ------------------------------------------------------------------------------------------------- CubaLIF
def _cuba_case(shape, mode, detach, dtype, per_neuron, save_i, seed=0):
    g = _gen(seed)
    x = _randn(shape, g, 0.6, dtype)
    i0 = _randn(shape[1:], g, 0.2)
    v0 = _rand(shape[1:], g, 0.5)
    alpha = _params(shape, g, per_neuron, 0.5, 0.9)
    beta = _params(shape, g, per_neuron, 0.5, 0.95)
    thr = _params(shape, g, per_neuron, 0.6, 1.2)
    ref = ref_cuba.forward(x, i0, v0, alpha, beta, thr, mode, save_i)
    got = tri_cuba.forward(x, i0, v0, alpha, beta, thr, mode, save_i)
    assert got is not None
    for name, a, b in zip(("s", "h", "i_seq", "i", "v"), got, ref):
        _same(a, b, f"forward {name}")
    h = ref[1]
    g_s, g_h, g_v, g_i = _randn(shape, g), _randn(shape, g, 0.1), _randn(shape[1:], g), _randn(shape[1:], g)
    for need_gh in (True, False):
        want = ref_cuba.backward(h, g_s, g_h, g_v, g_i, alpha, beta, thr, mode, detach, ATAN, need_gh)
        have = tri_cuba.backward(h, g_s, g_h, g_v, g_i, alpha, beta, thr, mode, detach, ATAN, need_gh)
        assert have is not None
        _close(have[0], want[0], "g_x")
        _close(have[1], want[1], "g_h")
    want = ref_cuba.backward(h, g_s, None, None, None, alpha, beta, thr, mode, detach, ATAN, True)
    have = tri_cuba.backward(h, g_s, None, None, None, alpha, beta, thr, mode, detach, ATAN, True)
    _close(have[0], want[0], "g_x (only g_s)")
    _close(have[1], want[1], "g_h (only g_s)")


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("detach", [True, False])
def test_cubalif_matches_reference_fp32(shape, mode, detach):
    _cuba_case(shape, mode, detach, torch.float32, per_neuron=True, save_i=shape[0] > 1)


@pytest.mark.parametrize("dtype", HALF)
def test_cubalif_half(dtype):
    _cuba_case((7, 3, 19), 1, True, dtype, per_neuron=False, save_i=True, seed=4)


# ---------------------------------------------------------------------------------------------------- ALIF
def _alif_case(shape, mode, detach, dtype, per_neuron, seed=0):
    g = _gen(seed)
    x = _randn(shape, g, 0.9, dtype)
    v0 = _rand(shape[1:], g, 0.5)
    a0 = _rand(shape[1:], g, 0.5)
    beta = _params(shape, g, per_neuron, 0.5, 0.95)
    thr = _params(shape, g, per_neuron, 0.6, 1.0)
    rho = _params(shape, g, per_neuron, 0.8, 0.99)
    b = _params(shape, g, per_neuron, 0.05, 0.3)
    ref = ref_alif.forward(x, v0, a0, beta, thr, rho, b, mode)
    got = tri_alif.forward(x, v0, a0, beta, thr, rho, b, mode)
    assert got is not None
    for name, p, q in zip(("s", "h", "a_seq", "v", "a"), got, ref):
        _same(p, q, f"forward {name}")
    h, a_seq = ref[1], ref[2]
    g_s, g_h, g_v, g_a = _randn(shape, g), _randn(shape, g, 0.1), _randn(shape[1:], g), _randn(shape[1:], g)
    for need in (True, False):
        want = ref_alif.backward(h, a_seq, a0, g_s, g_h, g_v, g_a, beta, thr, rho, b, mode, detach, ATAN, need)
        have = tri_alif.backward(h, a_seq, a0, g_s, g_h, g_v, g_a, beta, thr, rho, b, mode, detach, ATAN, need)
        assert have is not None
        for name, p, q in zip(("g_h", "g_theta", "g_a_seq"), have, want):
            _close(p, q, f"{name} (mode {mode}, detach {detach}, need_param {need})")
    want = ref_alif.backward(h, a_seq, a0, g_s, None, None, None, beta, thr, rho, b, mode, detach, ATAN, True)
    have = tri_alif.backward(h, a_seq, a0, g_s, None, None, None, beta, thr, rho, b, mode, detach, ATAN, True)
    for name, p, q in zip(("g_h", "g_theta", "g_a_seq"), have, want):
        _close(p, q, f"{name} (only g_s)")


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("detach", [True, False])
def test_alif_matches_reference_fp32(shape, mode, detach):
    _alif_case(shape, mode, detach, torch.float32, per_neuron=True)


@pytest.mark.parametrize("dtype", HALF)
def test_alif_half(dtype):
    _alif_case((7, 3, 19), 0, True, dtype, per_neuron=False, seed=6)
