"""Fused operators: one backend layout per operator and the one place that chooses an implementation.

Layout (SpikingJelly-style)::

    neurosynth/_ops/<op>/reference.py   the kernel contract (docstring) + a pure-torch implementation (any device)
    neurosynth/_ops/<op>/cpu.py         C++ kernels (neurosynth/_csrc, built on first use) for CPU tensors
    neurosynth/_ops/<op>/triton.py      Triton kernels for CUDA tensors (optional module)
    neurosynth/_ops/<op>/autograd.py    torch.library custom ops + autograd (parameter gradients in torch)

for ``op`` in ``lif`` (also IF), ``cubalif``, ``alif`` and ``recurrent`` (per-step GEMM + a neuron op's step).

:func:`implementation` is the dispatcher: CPU tensors go to ``cpu.py`` when its kernel is usable
(``available(x)``: built, dtype supported, not disabled), CUDA tensors to ``triton.py`` when it imports and
``available(x)`` says yes; everything else (and any call where the chosen implementation returns ``None``)
runs ``reference.py``. Nothing outside this package branches on backends. :func:`forced` pins one
implementation in the current thread (tests: ``with forced("reference"):``; ``"triton"`` with
``TRITON_INTERPRET=1`` runs the Triton kernels on CPU tensors).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import threading
from types import ModuleType

import torch

FUSED_OPS = ("lif", "cubalif", "alif", "recurrent")
IMPLS = ("reference", "cpu", "triton")
log = logging.getLogger(__name__)
_local = threading.local()
_cache: dict[tuple[str, str], ModuleType | None] = {}


def _module(op: str, impl: str) -> ModuleType | None:
    """``neurosynth._ops.<op>.<impl>`` or ``None`` when it does not exist or fails to import (cached)."""
    key = (op, impl)
    if key not in _cache:
        mod = None
        if impl != "triton" or importlib.util.find_spec("triton") is not None:
            try:
                mod = importlib.import_module(f"{__name__}.{op}.{impl}")
            except ImportError:
                mod = None
            except Exception as exc:  # noqa: BLE001 - e.g. a Triton install that fails at import: use the reference
                log.debug("neurosynth: %s.%s failed to import (%s); using the reference", op, impl, exc)
                mod = None
        _cache[key] = mod
    return _cache[key]


@contextlib.contextmanager
def forced(impl: str | None):
    """Within this block (this thread) use implementation ``impl`` for every op (``None``: automatic)."""
    if impl is not None and impl not in IMPLS:
        raise ValueError(f"implementation must be one of {IMPLS}; got {impl!r}")
    prev = getattr(_local, "impl", None)
    _local.impl = impl
    try:
        yield
    finally:
        _local.impl = prev


def implementation(op: str, x: torch.Tensor) -> ModuleType:
    """The module (with ``forward``/``backward`` per the op's reference contract) that runs ``op`` on ``x``."""
    if op not in FUSED_OPS:
        raise ValueError(f"unknown op {op!r}; ops are {FUSED_OPS}")
    pinned = getattr(_local, "impl", None)
    if pinned is not None:
        mod = _module(op, pinned)
        if mod is None:
            raise RuntimeError(f"implementation {pinned!r} of op {op!r} is not importable")
        return mod
    dev = x.device.type
    candidate = "cpu" if dev == "cpu" else "triton" if dev == "cuda" else None
    if candidate is not None:
        mod = _module(op, candidate)
        # the Triton kernels are checked once per op and device against the reference before they run (selfcheck)
        if mod is not None and mod.available(x) and (candidate != "triton" or _selfcheck().verified(op, x)):
            return mod
    return _module(op, "reference")


def _selfcheck() -> ModuleType:
    from . import selfcheck

    return selfcheck


def name_of(op: str, x: torch.Tensor) -> str:
    """Which implementation :func:`implementation` picks for ``x`` (``"reference"``, ``"cpu"``, ``"triton"``)."""
    return implementation(op, x).__name__.rsplit(".", 1)[-1]


def _first_tensor(args) -> torch.Tensor:
    return next(a for a in args if isinstance(a, torch.Tensor))


def forward(op: str, *args):
    """Run ``op``'s forward on the dispatched implementation (the reference when that one declines); the first
    tensor argument decides the device and dtype."""
    out = implementation(op, _first_tensor(args)).forward(*args)
    if out is None:
        out = _module(op, "reference").forward(*args)
    return out


def backward(op: str, *args):
    """Run ``op``'s backward on the dispatched implementation (the reference when that one declines)."""
    out = implementation(op, _first_tensor(args)).backward(*args)
    if out is None:
        out = _module(op, "reference").backward(*args)
    return out
