"""Optional compiled kernels for the fused backend (C++ via ``torch.utils.cpp_extension``, built on first use).

The kernel source is ``neurosynth/_csrc/lif.cpp``: the forward recurrences and the whole backward in one pass
(for the built-in surrogates) of the LIF, CubaLIF and ALIF operators, and the per-step kernels of the recurrent
layer, for float32/float64 CPU tensors, parallelised over neurons with ``at::parallel_for`` (the time loop runs inside each chunk). The ops
are registered with ``TORCH_LIBRARY`` (``torch.ops.neurosynth_lif``) using light headers, so the build is
about 20 s of CPU time. It happens the first time a fused LIF runs on a CPU tensor, at most once per process
(thread-safe; concurrent processes wait on torch's file lock), and is cached: later processes only load the
library (~0.1 s). The cache is ``$TORCH_EXTENSIONS_DIR`` when that is set, else
``~/.cache/neurosynth/torch_extensions``, in a sub-directory keyed by a hash of interpreter, torch, compiler,
flags and source (so a changed source, or another set-up sharing the cache, never rebuilds over a library in use).

This module only builds, loads and calls the kernels; choosing an implementation is the dispatcher's job
(:func:`neurosynth._ops.implementation`; the ``neurosynth/_ops/<op>/cpu.py`` modules call the functions here).
Nothing here ever fails an import or a forward pass: if the compiler is missing or the build fails, the
failure is logged once (debug level), :func:`available` is false and every ``*_forward`` / ``*_backward`` here
returns ``None``, so the dispatcher runs the op's pure-torch ``reference.py`` (bit-identical spikes). Set
``NEUROSYNTH_NO_CEXT=1`` to skip the kernel (no compilation is attempted), or use :func:`disabled` in tests.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import threading
from pathlib import Path

import torch

from ._ops.common import DKIND, surrogate_code

log = logging.getLogger(__name__)

_SOURCE = Path(__file__).parent / "_csrc" / "lif.cpp"
_NAME = "neurosynth_lif_v3"
_LOCK = threading.Lock()
_module = None  # the loaded extension once built
_tried = False  # a build/load was attempted in this process (at most once)
_error: str | None = None  # why the extension is unavailable, if it is
_local = threading.local()  # per-thread switch used by disabled()

_DTYPES = (torch.float32, torch.float64)


def env_disabled() -> bool:
    """True when ``NEUROSYNTH_NO_CEXT`` is set to a true-ish value (anything but '', '0', 'false', 'no')."""
    return os.environ.get("NEUROSYNTH_NO_CEXT", "").strip().lower() not in ("", "0", "false", "no")


_CFLAGS = ["-O3", "-ffp-contract=off", "-fno-trapping-math", "-fno-math-errno", "-fopenmp"]


def _config_key() -> str:
    """Hash of everything that changes the build command or its output: interpreter, torch, compiler, flags,
    source. Processes with different set-ups (another venv, ``CXX``) then use different directories instead of
    rebuilding over each other's library."""
    parts = [sys.prefix, torch.__file__, torch.__version__, os.environ.get("CXX", ""), " ".join(_CFLAGS)]
    h = hashlib.sha256("|".join(parts).encode())
    try:
        h.update(_SOURCE.read_bytes())
    except OSError:
        pass
    return h.hexdigest()[:12]


def build_dir() -> Path:
    """Where the extension is compiled and cached."""
    base = os.environ.get("TORCH_EXTENSIONS_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "neurosynth" / "torch_extensions"
    tag = f"py{sys.version_info.major}{sys.version_info.minor}_torch{torch.__version__.replace('+', '_')}"
    return root / tag / f"{_NAME}_{_config_key()}"


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
        # no FMA contraction (bit-identical spikes); no trapping math: lets the compiler if-convert and vectorise
        # the spike selects without changing any result
        extra_cflags=_CFLAGS,
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
    """Within this block (in this thread) the C++ kernel is unavailable, so the dispatcher runs the pure-torch
    reference instead."""
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
    """A parameter broadcast to one time step, contiguous (plain unit-stride loads keep the loops vectorised)."""
    return p.to(step.dtype).expand_as(step).contiguous()


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


def lif_backward(h, g_s, g_h_out, g_v, beta, thr, mode: int, detach_reset: bool, surrogate):
    """``g_h`` (the gradient w.r.t. every pre-reset membrane, i.e. w.r.t. the input) in one C++ pass, or ``None``
    when the kernel cannot run (device, dtype, disabled) or the surrogate is not a built-in one."""
    code = surrogate_code(surrogate)
    if code is None or not available(h):
        return None
    h = h.contiguous()
    step = h[0]
    gv, gs = _grad(g_v, step), _grad(g_s, h)
    g_h = torch.empty_like(h)
    _module.lif_backward(h, gs, _opt(g_h_out, h), gv, _per_neuron(beta, step), _per_neuron(thr, step),
                         DKIND[(int(mode), bool(detach_reset))], code[0], float(code[1]), float(code[2]), g_h)
    return g_h


def _opt(t, like):
    return None if t is None else t.to(like.dtype).expand_as(like).contiguous()


def _grad(t, like):
    """An incoming gradient as the kernel reads it: zeros when autograd passed none."""
    return torch.zeros_like(like) if t is None else _opt(t, like)


def _state(t0, step):
    """An initial state as a fresh contiguous tensor the kernel updates in place."""
    return t0.to(step.dtype).expand_as(step).clone(memory_format=torch.contiguous_format)


def cubalif_forward(x, i0, v0, alpha, beta, thr, mode: int, save_i: bool):
    """``(s, h, i_seq, i, v)`` per :mod:`neurosynth._ops.cubalif.reference` from the C++ kernel (float32/64), or
    ``None`` when it cannot run."""
    if not available(x):
        return None
    x = x.contiguous()
    step = x[0] if x.shape[0] > 0 else x.new_empty(x.shape[1:])
    s, h = torch.empty_like(x), torch.empty_like(x)
    i_seq = torch.empty_like(x) if save_i else x.new_empty(0)
    i = _state(i0, step)
    v = _state(v0, step)
    _module.cubalif_forward(x, _per_neuron(alpha, step), _per_neuron(beta, step), _per_neuron(thr, step), int(mode),
                            s, h, i_seq if save_i else None, i, v)
    return s, h, i_seq, i, v


def cubalif_backward(h, g_s, g_h_out, g_v, g_i, alpha, beta, thr, mode: int, detach_reset: bool, code,
                     need_gh: bool):
    """``(g_x, g_h)`` per :mod:`neurosynth._ops.cubalif.reference` from the C++ kernel, or ``None``."""
    if code is None or not available(h):
        return None
    h = h.contiguous()
    step = h[0]
    gs = _grad(g_s, h)
    gv = _grad(g_v, step)
    gi = _grad(g_i, step)
    g_x = torch.empty_like(h)
    g_h = torch.empty_like(h) if need_gh else None
    _module.cubalif_backward(h, gs, _opt(g_h_out, h), gv, gi, _per_neuron(alpha, step), _per_neuron(beta, step),
                             _per_neuron(thr, step), DKIND[(int(mode), bool(detach_reset))], int(code[0]),
                             float(code[1]), float(code[2]), g_x, g_h)
    return g_x, (g_h if need_gh else h.new_empty(0))


def alif_forward(x, v0, a0, beta, thr, rho, b, mode: int):
    """``(s, h, a_seq, v, a)`` per :mod:`neurosynth._ops.alif.reference` from the C++ kernel, or ``None``."""
    if not available(x):
        return None
    x = x.contiguous()
    step = x[0] if x.shape[0] > 0 else x.new_empty(x.shape[1:])
    s, h, a_seq = torch.empty_like(x), torch.empty_like(x), torch.empty_like(x)
    v = _state(v0, step)
    a = _state(a0, step)
    _module.alif_forward(x, _per_neuron(beta, step), _per_neuron(thr, step), _per_neuron(rho, step),
                         _per_neuron(b, step), int(mode), s, h, a_seq, v, a)
    return s, h, a_seq, v, a


def alif_backward(h, a_seq, a0, g_s, g_h_out, g_v, g_a, beta, thr, rho, b, mode: int, detach_reset: bool, code,
                  need_param: bool):
    """``(g_h, g_theta, g_a_seq)`` per :mod:`neurosynth._ops.alif.reference` from the C++ kernel, or ``None``."""
    if code is None or not available(h):
        return None
    h = h.contiguous()
    step = h[0]
    gs = _grad(g_s, h)
    gv = _grad(g_v, step)
    ga = _grad(g_a, step)
    g_h = torch.empty_like(h)
    g_th = torch.empty_like(h) if need_param else None
    g_as = torch.empty_like(h) if need_param else None
    _module.alif_backward(h, a_seq.to(h.dtype).contiguous(), _opt(a0, step), gs, _opt(g_h_out, h), gv, ga,
                          _per_neuron(beta, step), _per_neuron(thr, step), _per_neuron(rho, step),
                          _per_neuron(b, step), int(mode), not bool(detach_reset), int(code[0]), float(code[1]),
                          float(code[2]), g_h, g_th, g_as)
    return g_h, (g_th if need_param else h.new_empty(0)), (g_as if need_param else h.new_empty(0))
