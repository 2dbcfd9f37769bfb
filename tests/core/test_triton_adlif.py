"""adLIF / SE-adLIF through the generated Triton kernel (neurosynth/_ops/custom/triton.py), the path CUDA tensors take.

Without a CUDA device the kernel runs in the Triton interpreter on CPU tensors (``custom.force_triton()``): spikes,
membranes and final states bit-identical to the reference loop, gradients within 1e-5. On a CUDA machine the compiled
kernel: spikes may flip only where the membrane is within 1e-5 of the threshold, gradients compared when none flipped.
"""

from __future__ import annotations

import warnings

import pytest
import torch

tri = pytest.importorskip("neurosynth._ops.custom.triton")
if tri.triton is None:  # pragma: no cover - triton not installed
    pytest.skip("triton is not installed", allow_module_level=True)

from neurosynth._ops import custom  # noqa: E402
from neurosynth.neurons import AdLIF, SEAdLIF  # noqa: E402

DEV = "cpu" if tri.interpreting() else "cuda"
if DEV == "cuda" and not torch.cuda.is_available():  # pragma: no cover
    pytest.skip("compiled Triton needs a CUDA device", allow_module_level=True)
EXACT = DEV == "cpu"


def _reference(neuron, x):
    prev = neuron.backend
    neuron.backend = "python"
    try:
        return neuron.run(x)
    finally:
        neuron.backend = prev


@pytest.mark.parametrize("cls,kw", [(AdLIF, {}), (AdLIF, {"reset": "zero", "detach_reset": False}), (SEAdLIF, {})])
def test_triton_adlif_equals_reference(cls, kw):
    n = 10
    neuron = cls(shape=n, **kw)
    with torch.no_grad():  # per-neuron values across each range
        for name in ("alpha", "beta", "a", "b"):
            lo, hi, _ = neuron.param_ranges[name]
            getattr(neuron, name).copy_(torch.linspace(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo), n))
    neuron = neuron.to(DEV)
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(30, 3, n, generator=g) * 3 + 1).to(DEV)
    xk = x.clone().requires_grad_(True)
    with custom.force_triton(), warnings.catch_warnings():
        warnings.filterwarnings("error", message="neurosynth")  # no fallback
        s, fin, h = neuron.run(xk)
    assert custom.paths()[cls.__name__] == "generated-triton"
    xr = x.clone().requires_grad_(True)
    s2, fin2, h2 = _reference(neuron, xr)
    assert 0 < s2.sum() < 0.5 * s2.numel()
    flips = s != s2
    if EXACT:
        assert not bool(flips.any()) and torch.equal(h, h2)
        for a, b in zip(fin, fin2):
            assert torch.equal(a, b)
    else:  # pragma: no cover - CUDA only
        assert bool(((h2 - neuron.threshold.detach()).abs()[flips] < 1e-5).all())
        if bool(flips.any()):
            return
        torch.testing.assert_close(h, h2, atol=1e-5, rtol=1e-5)
    gr_out = torch.randn(s.shape, generator=torch.Generator().manual_seed(1)).to(DEV)
    learn = [getattr(neuron, k) for k in neuron.learn]
    gk = torch.autograd.grad((s * gr_out).sum() + fin.w.sum(), [xk, *learn])
    gr = torch.autograd.grad((s2 * gr_out).sum() + fin2.w.sum(), [xr, *learn])
    for a, b in zip(gk, gr):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
