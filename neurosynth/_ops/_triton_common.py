r"""What the Triton kernels of every operator share (``lif``, ``cubalif``, ``alif``, ``recurrent``): the
interpreter switch, launch helpers and the ``@triton.jit`` pieces of the step math (surrogate gradients, the
reset, the reset's derivative), written once so that each kernel inlines the same arithmetic.

Interpreter: kernels are decorated in interpreter mode when ``TRITON_INTERPRET=1`` is set or when no CUDA device
is present (compiled kernels could not run then anyway); the variable is set only while kernels are decorated,
so nothing else in the process is affected. Then :func:`usable` accepts CPU tensors only, otherwise CUDA
tensors only.
"""

from __future__ import annotations

import contextlib
import os

import torch

try:  # triton is optional (the `gpu` extra); without it every function here reports "not usable"
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised only where triton is missing
    triton = None
    tl = None


def _env_interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() not in ("", "0", "false", "no", "off")


#: kernels run in the Triton interpreter (CPU tensors) rather than compiled for CUDA
INTERPRET = triton is not None and (_env_interpret() or not torch.cuda.is_available())

_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


@contextlib.contextmanager
def interpret_env():
    """Set ``TRITON_INTERPRET=1`` while kernels are decorated when :data:`INTERPRET` (restored afterwards)."""
    if not INTERPRET or _env_interpret():
        yield
        return
    old = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = old


def usable(x: torch.Tensor) -> bool:
    """True when the kernels here can run on ``x``: triton present, a supported float dtype, and CUDA (compiled)
    or CPU (interpreter)."""
    if triton is None or x.dtype not in _DTYPES:
        return False
    return x.device.type == ("cpu" if INTERPRET else "cuda")


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The accumulation dtype of a kernel for inputs of ``dtype``: float64 stays, everything else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def block_for(m: int) -> tuple[int, int]:
    """``(BLOCK, num_warps)`` for ``m`` independent neurons.

    On a GPU: small blocks so that even ``B*N = 65536`` neurons give a few hundred programs (the time loop is
    sequential, the parallelism is across neurons). In the interpreter: one big block (each program is a
    Python-level loop, fewer programs are faster)."""
    if INTERPRET:
        return max(16, min(4096, triton.next_power_of_2(max(m, 1)))), 4
    # one neuron per thread: the time loop is latency-bound, so more resident warps (programs) is what helps
    if m >= 1 << 15:
        return 128, 4
    if m >= 1 << 12:
        return 64, 2
    return 32, 1


def on_device(x: torch.Tensor):
    """The context a launch runs in: ``x``'s CUDA device (so kernels land on the right GPU), nothing in the
    interpreter."""
    return contextlib.nullcontext() if INTERPRET else torch.cuda.device(x.device)


def launch_opts() -> dict:
    """Keyword options for every launch: no FMA contraction (bit-identical spikes)."""
    return {} if INTERPRET else {"enable_fp_fusion": False}


MODES = {"subtract": 0, "zero": 1, "none": 2, "subtract_delayed": 3}

# how d_t = dv_t/dh_t is formed, by (mode, detach_reset): 0 d = 1, 1 d = 1 - thr*sg, 2 d = 1 - s,
# 3 d = (1 - s) - h*sg (same table as neurosynth._cext._DKIND)
DKIND = {(0, True): 0, (0, False): 1, (1, True): 2, (1, False): 3, (2, True): 0, (2, False): 0,
         (3, True): 0, (3, False): 0}


def surrogate_code(surrogate):
    """``(id, p, c)`` of a built-in surrogate (see :func:`neurosynth._cext._surrogate_code`); a triple passes
    through; ``None`` when the surrogate is not a built-in one (then the caller uses another backend)."""
    if isinstance(surrogate, tuple):
        return surrogate
    from .. import _cext

    return _cext._surrogate_code(surrogate)


if triton is not None:
    with interpret_env():

        @triton.jit
        def surrogate_grad(x, p, c, SUR: tl.constexpr):
            """sigma'(x) of the built-in surrogate ``SUR`` (codes of ``neurosynth._cext._surrogate_code``)."""
            if SUR == 0:  # atan: (alpha/2) / (1 + (pi/2*alpha*x)^2); p = alpha/2, c = pi/2*alpha
                u = c * x
                g = p / (1.0 + u * u)
            elif SUR == 1:  # fast sigmoid: 1 / (1 + k|x|)^2; c = k
                u = 1.0 + c * tl.abs(x)
                g = 1.0 / (u * u)
            elif SUR == 2:  # sigmoid: alpha * sig(alpha x) * (1 - sig(alpha x)); c = alpha
                sg = 1.0 / (1.0 + tl.exp(-(c * x)))
                g = c * sg * (1.0 - sg)
            elif SUR == 3:  # triangle: max(0, 1 - |x|/w) / w; c = w
                u = 1.0 - tl.abs(x) / c
                g = tl.maximum(u, 0.0) / c
            elif SUR == 4:  # rectangular: 1[|x| < w/2] / w; p = w/2, c = w
                g = tl.where(tl.abs(x) < p, 1.0, 0.0) / c
            else:  # straight-through: constant c
                g = x * 0.0 + c
            return g

        @triton.jit
        def reset(h, th, s, MODE: tl.constexpr):
            """The membrane after the reset: subtract (0) ``h - th * s``, zero (1) ``h * (1 - s)``, else ``h``
            (none, and the delayed reset, which acts on the next step's ``h``)."""
            if MODE == 0:
                r = th * s
                v = h - r
            elif MODE == 1:
                v = h * (1.0 - s)
            else:
                v = h
            return v

        @triton.jit
        def reset_slope(h, th, sg, s, DK: tl.constexpr):
            """``d_t = dv_t/dh_t`` for :data:`DKIND` 1 (``1 - th*sg``), 2 (``1 - s``), 3 (``(1 - s) - h*sg``); the
            callers handle DK 0 (``d = 1``) themselves."""
            if DK == 1:
                d = 1.0 - th * sg
            elif DK == 2:
                d = 1.0 - s
            else:
                d = (1.0 - s) - h * sg
            return d


def _acc(dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32
