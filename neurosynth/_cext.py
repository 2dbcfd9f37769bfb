"""Optional compiled kernels for the fused backend (C++ via ``torch.utils.cpp_extension``, built on first use).

The kernel source is ``neurosynth/_csrc/lif.cpp``: the LIF forward recurrence and the reverse-time scan of its
backward, for float32/float64 CPU tensors, parallelised over neurons with ``at::parallel_for`` (the time loop
runs inside each chunk). It is compiled the first time a fused LIF runs on a CPU tensor (about 30-60 s; the
build is cached, so later processes only load it) into ``$TORCH_EXTENSIONS_DIR`` when that is set, else
``~/.cache/neurosynth/torch_extensions``.

Nothing here ever fails an import or a forward pass: if the compiler is missing or the build fails, the
failure is logged once (debug level) and :mod:`neurosynth.engine` uses its pure-torch loops, which give
bit-identical spikes. Set ``NEUROSYNTH_NO_CEXT=1`` to skip the kernel (no compilation is attempted), or use
:func:`disabled` in tests.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from pathlib import Path

import torch

log = logging.getLogger(__name__)

_SOURCE = Path(__file__).parent / "_csrc" / "lif.cpp"
_NAME = "neurosynth_lif_v1"
_LOCK = threading.Lock()
_module = None  # the loaded extension once built
_tried = False  # a build/load was attempted in this process (at most once)
_error: str | None = None  # why the extension is unavailable, if it is
_local = threading.local()  # per-thread switch used by disabled()

_DTYPES = (torch.float32, torch.float64)


def env_disabled() -> bool:
    """True when ``NEUROSYNTH_NO_CEXT`` is set to a true-ish value (anything but '', '0', 'false', 'no')."""
    return os.environ.get("NEUROSYNTH_NO_CEXT", "").strip().lower() not in ("", "0", "false", "no")


def build_dir() -> Path:
    """Where the extension is compiled and cached."""
    base = os.environ.get("TORCH_EXTENSIONS_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "neurosynth" / "torch_extensions"
    tag = f"py{sys.version_info.major}{sys.version_info.minor}_torch{torch.__version__.replace('+', '_')}"
    return root / tag / _NAME


def _build():
    # importing cpp_extension logs a CUDA_HOME warning on CPU-only machines; it is noise here
    torch_log = logging.getLogger("torch.utils.cpp_extension")
    level = torch_log.level
    torch_log.setLevel(logging.ERROR)
    try:
        from torch.utils.cpp_extension import load
    finally:
        torch_log.setLevel(level)

    path = build_dir()
    path.mkdir(parents=True, exist_ok=True)
    load(
        name=_NAME,
        sources=[str(_SOURCE)],
        extra_cflags=["-O3", "-ffp-contract=off", "-fno-fast-math", "-fopenmp"],
        extra_ldflags=["-fopenmp"],
        build_directory=str(path),
        is_python_module=False,
        verbose=False,
    )
    return torch.ops.neurosynth_lif


def load_extension():
    """Build (first call in a process, thread-safe) and return the extension module, or ``None``."""
    global _module, _tried, _error
    if _tried:
        return _module
    with _LOCK:
        if _tried:
            return _module
        if env_disabled():  # do not mark as tried: unsetting the variable later enables the kernel
            return None
        try:
            _module = _build()
            log.debug("neurosynth: C++ LIF kernel loaded from %s", build_dir())
        except Exception as exc:  # noqa: BLE001 - any build/load failure means: use the pure-torch path
            _module = None
            _error = f"{type(exc).__name__}: {exc}"
            log.debug("neurosynth: C++ LIF kernel unavailable, using the pure-torch loop (%s)", _error)
        _tried = True
        return _module


def status() -> dict:
    """What the fused backend uses: ``{"available": bool, "reason": str | None, "build_dir": str}``."""
    if env_disabled():
        return {"available": False, "reason": "NEUROSYNTH_NO_CEXT is set", "build_dir": str(build_dir())}
    mod = load_extension()
    return {"available": mod is not None, "reason": _error, "build_dir": str(build_dir())}


@contextlib.contextmanager
def disabled():
    """Within this block (in this thread) the pure-torch loops run instead of the C++ kernel."""
    prev = getattr(_local, "off", False)
    _local.off = True
    try:
        yield
    finally:
        _local.off = prev


def _usable(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype in _DTYPES and not getattr(_local, "off", False) and not env_disabled()


def available(x: torch.Tensor) -> bool:
    """True when the C++ kernel can run on ``x`` (CPU, float32/float64, built, not disabled)."""
    return _usable(x) and load_extension() is not None


def _per_neuron(p: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """A parameter broadcast to one time step and made contiguous (one element stays one element)."""
    p = p.to(step.dtype)
    if p.numel() == 1:
        return p.reshape(1).contiguous()
    return p.expand_as(step).contiguous()


def lif_forward(x, v0, beta, thr, mode: int):
    """``(spikes, h, v_final)`` from the C++ kernel, or ``None`` when it cannot run on these tensors."""
    if not available(x):
        return None
    x = x.contiguous()
    step = x[0]
    v0 = v0.to(x.dtype).expand_as(step).contiguous()
    s, h = torch.empty_like(x), torch.empty_like(x)
    v = torch.empty_like(step)
    _module.lif_forward(x, v0, _per_neuron(beta, step), _per_neuron(thr, step), int(mode), s, h, v)
    return s, h, v


def reverse_scan(a, m, d, g_v, g_h) -> bool:
    """Fill ``g_h`` in place: ``g_h[T-1] = a[T-1] + d[T-1]*g_v``, ``g_h[t] = a[t] + m[t]*g_h[t+1]``.

    ``m`` and ``d`` are ``[T, ...]`` or broadcastable to one time step (time-invariant); ``d=None`` means 1 and
    ``g_v=None`` means 0. Returns ``False`` (and leaves ``g_h`` untouched) when the kernel cannot run.
    """
    if not (available(a) and g_h.is_contiguous() and g_h.dtype == a.dtype and g_h.shape == a.shape):
        return False
    a = a.contiguous()
    step = a[0]

    def prep(t):
        if t is None:
            return None
        if t.dim() == a.dim():  # one value per step
            return t.to(a.dtype).expand_as(a).contiguous()
        return _per_neuron(t, step)

    gv = None if g_v is None else g_v.to(a.dtype).expand_as(step).contiguous()
    _module.reverse_scan(a, prep(m), prep(d), gv, g_h)
    return True
