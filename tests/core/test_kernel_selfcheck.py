"""The first-use check of the built-in Triton kernels (neurosynth/_ops/selfcheck.py) and the manifest record.

On a CUDA device the dispatcher checks each op's Triton kernel once against its reference before using it. Here
the same check runs the kernels in the Triton interpreter on CPU tensors: it must pass for every op, fail (with
one warning, then the reference path) for a kernel that returns wrong spikes, and be recorded in run manifests.
"""

from __future__ import annotations

import warnings

import pytest
import torch

tri = pytest.importorskip("neurosynth._ops.lif.triton")
if tri.triton is None:  # pragma: no cover - triton not installed
    pytest.skip("triton is not installed", allow_module_level=True)

from neurosynth import _ops  # noqa: E402
from neurosynth._ops import custom, selfcheck  # noqa: E402

DEV = torch.device("cpu" if tri.INTERPRET else "cuda")


@pytest.fixture(autouse=True)
def _fresh():
    selfcheck.reset()
    yield
    selfcheck.reset()


@pytest.mark.parametrize("op", _ops.FUSED_OPS)
def test_every_triton_op_passes_its_check(op):
    assert selfcheck.check(op, DEV, "triton") is None


def test_a_wrong_kernel_fails_once_and_the_reference_runs(monkeypatch):
    real = tri.forward

    def flipped(*args):
        s, h, v = real(*args)
        return 1 - s, h, v

    monkeypatch.setattr(tri, "forward", flipped)
    x = torch.zeros(3, 2, 4, device=DEV)
    with pytest.warns(RuntimeWarning, match="'lif' disagrees with the reference"):
        assert selfcheck.verified("lif", x) is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per op and device
        assert selfcheck.verified("lif", x) is False
    assert selfcheck.paths()[f"lif@{DEV}"].startswith("reference: ")
    assert selfcheck.verified("cubalif", x) is True  # the other ops are checked on their own
    assert selfcheck.paths()[f"cubalif@{DEV}"] == "triton"


def test_a_raising_kernel_fails_the_check(monkeypatch):
    def boom(*args):
        raise RuntimeError("no kernel image for this device")

    monkeypatch.setattr(tri, "forward", boom)
    why = selfcheck.check("lif", DEV, "triton")
    assert why is not None and "no kernel image" in why


def test_manifest_records_the_kernels():
    from neurosynth.rundir import manifest

    x = torch.zeros(3, 2, 4, device=DEV)
    selfcheck.verified("alif", x)
    m = manifest("test", {}, 0)
    assert m["kernels"]["fused"][f"alif@{DEV}"] == "triton"
    assert isinstance(m["kernels"]["custom"], dict)


def test_rounding_flips_are_told_apart_from_wrong_spikes():
    from neurosynth.neurons import ALIF

    neuron = ALIF(beta=0.9, threshold=1.0, adapt_scale=0.2)
    x = torch.full((4, 1, 3), 0.5)
    x[0, 0, 0] = 1.0  # h = 1.0 exactly on the threshold at t=0: a flip there is rounding
    flips = torch.zeros(4, 1, 3, dtype=torch.bool)
    flips[0, 0, 0] = True
    assert custom.rounding_flips(neuron, x, flips)
    flips[0, 0, 1] = True  # h = 0.5, far below the threshold: a wrong spike
    assert not custom.rounding_flips(neuron, x, flips)
    # a spike at t=0 raises the threshold to 1 + 0.2 * 0.95 = 1.19 at t=2: the state before the flip is replayed
    at2 = torch.zeros(3, 1, 1, dtype=torch.bool)
    at2[2] = True
    on = torch.tensor([[[2.0]], [[0.2]], [[0.2]]])  # h(2) = 0.99 + 0.2 = 1.19: on the adaptive threshold
    off = torch.tensor([[[2.0]], [[0.2]], [[0.01]]])  # h(2) = 1.0: on the base threshold, not the adaptive one
    assert custom.rounding_flips(neuron, on, at2)
    assert not custom.rounding_flips(neuron, off, at2)
