"""The generated Triton kernels for custom neurons (neurosynth/_ops/custom/triton.py) against the reference loop.

Without a CUDA device they run in the Triton interpreter on CPU tensors (``custom.force_triton()`` sends CPU tensors
to them); there spikes, membranes and final states must be bit-identical to the reference loop (numpy float32,
one rounding per operation) and gradients within 1e-5. On a CUDA machine the same tests run the compiled kernels:
spikes may flip only where the membrane is within 1e-5 of the threshold (transcendental functions and the
compiler), and gradients are compared when no spike flipped.
"""

from __future__ import annotations

import warnings

import pytest
import torch

tri = pytest.importorskip("neurosynth._ops.custom.triton")
if tri.triton is None:  # pragma: no cover - triton not installed
    pytest.skip("triton is not installed", allow_module_level=True)

from test_custom_kernels import AdaptiveLIF, QuadraticLIF, RefractoryLIF, reference  # noqa: E402

from neurosynth._ops import custom  # noqa: E402

DEV = "cpu" if tri.interpreting() else "cuda"
if DEV == "cuda" and not torch.cuda.is_available():  # pragma: no cover
    pytest.skip("compiled Triton needs a CUDA device", allow_module_level=True)
EXACT = DEV == "cpu"


def _input(T=25, B=3, n=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(T, B, n, generator=g) * 0.9).to(DEV)


@pytest.mark.parametrize("cls,kw", [
    (QuadraticLIF, {"learn": ("a", "beta")}),
    (QuadraticLIF, {"reset": "subtract", "detach_reset": False, "a": 0.02}),
    (AdaptiveLIF, {"learn": ("rho", "b", "threshold")}),
    (RefractoryLIF, {"learn": ("beta",)}),
])
def test_triton_generated_equals_reference(cls, kw):
    neuron = cls(shape=10, **kw).to(DEV)
    x = _input()
    st = [t.clone().requires_grad_(True) for t in neuron.initial_state(x[0])]
    xk = x.clone().requires_grad_(True)
    with custom.force_triton(), warnings.catch_warnings():
        warnings.filterwarnings("error", message="neurosynth")  # no fallback
        s, fin, h = neuron.run(xk, neuron.State(*st))
    assert custom.paths()[cls.__name__] == "generated-triton"
    st_r = [t.detach().clone().requires_grad_(True) for t in st]
    xr = x.clone().requires_grad_(True)
    s2, fin2, h2 = reference(neuron, xr, neuron.State(*st_r))
    assert s2.sum() > 0
    flips = s != s2
    if EXACT:
        assert not bool(flips.any())
        assert torch.equal(h, h2)
        for a, b in zip(fin, fin2):
            assert torch.equal(a, b)
    else:  # pragma: no cover - CUDA only
        thr = neuron.threshold.detach().expand_as(h2)
        assert bool(((h2 - thr).abs()[flips] < 1e-5).all())
        if bool(flips.any()):
            return
        torch.testing.assert_close(h, h2, atol=1e-5, rtol=1e-5)
    g = torch.randn(s.shape, generator=torch.Generator().manual_seed(1)).to(DEV)
    learn = [getattr(neuron, n) for n in neuron.learn]
    gk = torch.autograd.grad((s * g).sum() + sum(t.sum() for t in fin), [xk, *st, *learn], allow_unused=True)
    gr = torch.autograd.grad((s2 * g).sum() + sum(t.sum() for t in fin2), [xr, *st_r, *learn], allow_unused=True)
    for a, b in zip(gk, gr):
        a = torch.zeros_like(b) if a is None else a
        b = torch.zeros_like(a) if b is None else b
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_triton_source_is_independent_of_T():
    neuron = QuadraticLIF(shape=10).to(DEV)
    with custom.force_triton():
        k20 = custom.kernel_for(neuron, _input(T=20), neuron.params())
        k500 = custom.kernel_for(neuron, _input(T=500), neuron.params())
    assert isinstance(k20, tri.TritonKernel) and k20 is k500
    assert "500" not in k20.src and "range(0, T)" in k20.src


def test_triton_declines_other_dtypes_with_reason():
    neuron = QuadraticLIF(shape=10).to(DEV).double()
    x = _input().double()
    with custom.force_triton():
        why = custom.kernel_for(neuron, x, neuron.params())
    assert isinstance(why, str) and "float32" in why


def test_triton_template_lowers_constants_booleans_and_sqrt():
    """Izhikevich (Python constants, two states, a non-zero rest) and a gated neuron (boolean algebra, where,
    maximum, division, sqrt) through the Triton template: the same spikes as the reference loop."""
    from test_custom_kernels import GatedLIF, Izhikevich

    g = torch.Generator().manual_seed(0)
    for neuron, x in [(Izhikevich(shape=8), torch.randn(60, 2, 8, generator=g) * 4 + 10),
                      (GatedLIF(shape=8, learn=("g",)), torch.randn(25, 3, 8, generator=g) * 1.5 + 0.3)]:
        neuron, x = neuron.to(DEV), x.to(DEV)
        with custom.force_triton(), warnings.catch_warnings():
            warnings.filterwarnings("error", message="neurosynth")
            s, _, h = neuron.run(x)
        assert custom.paths()[type(neuron).__name__] == "generated-triton"
        s2, _, h2 = reference(neuron, x)
        assert 0 < float(s2.detach().mean()) < 0.9
        if EXACT:
            assert torch.equal(s, s2)
        torch.testing.assert_close(h, h2, atol=1e-4, rtol=1e-5)
