r"""What the Triton kernels of every operator share (``lif``, ``cubalif``, ``alif``, ``recurrent``): the
interpreter switch, launch helpers and the ``@triton.jit`` pieces every kernel inlines: the preamble (a
program's block of neurons, parameter and optional-input loads) and the step math (surrogate gradients, the
reset, the reset's derivative, the CubaLIF charge, the ALIF threshold, adaptation and backward step), written
once so that every kernel runs the same arithmetic in the same order.

Interpreter: kernels are decorated in interpreter mode when ``TRITON_INTERPRET=1`` is set or when no CUDA device
is present (compiled kernels could not run then anyway); the variable is set only while kernels are decorated,
so nothing else in the process is affected. Then :func:`usable` accepts CPU tensors only, otherwise CUDA
tensors only.
"""

from __future__ import annotations

import contextlib
import os

import torch

from .common import DKIND, MODES, surrogate_code  # noqa: F401 - re-exported for the ops' Triton modules

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


def numel(shape) -> int:
    """The number of neurons in one time step of shape ``shape``."""
    n = 1
    for k in shape:
        n *= k
    return n


def per_neuron(params, step: torch.Tensor) -> tuple[list, int]:
    """``(tensors, P_STRIDE)``: the parameters as contiguous per-neuron tensors shaped like ``step``
    (``P_STRIDE`` 1), or, when every one is a single value, as 1-element tensors (``P_STRIDE`` 0, read by every
    program without materialising them)."""
    if all(p.numel() == 1 for p in params):
        return [p.reshape(1).contiguous() for p in params], 0
    return [p.expand_as(step).contiguous() for p in params], 1


def contiguous_as(g, shape):
    """An optional gradient (``None`` passes through) broadcast to ``shape`` and made contiguous for a kernel."""
    return None if g is None else g.expand(shape).contiguous()




if triton is not None:
    with interpret_env():

        @triton.jit
        def block_offsets(M, P_STRIDE: tl.constexpr, BLOCK: tl.constexpr):
            """Every kernel's preamble: this program's block of neurons as ``(offs, mask, poffs)``, where ``poffs``
            indexes the per-neuron parameters (``P_STRIDE`` 0: one shared scalar, 1: one value per neuron)."""
            pid = tl.program_id(0)
            offs = pid * BLOCK + tl.arange(0, BLOCK)
            mask = offs < M
            poffs = offs * P_STRIDE
            return offs, mask, poffs

        @triton.jit
        def load_acc(ptr, offs, mask, ACC: tl.constexpr):
            """``ptr[offs]`` (0 where masked) converted to the accumulation dtype ``ACC``."""
            return tl.load(ptr + offs, mask=mask, other=0.0).to(ACC)

        @triton.jit
        def load_or_zero(ptr, offs, mask, HAS: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
            """An optional per-neuron input (e.g. the gradient w.r.t. a final state): ``load_acc`` when ``HAS``,
            else zeros (``ptr`` is then a placeholder that is never read)."""
            if HAS:
                g = tl.load(ptr + offs, mask=mask, other=0.0).to(ACC)
            else:
                g = tl.full([BLOCK], 0.0, ACC)
            return g

        @triton.jit
        def cuba_charge(cur, v, x, alpha, beta):
            """The CubaLIF charge, in the reference's order: ``i = alpha * i + x`` then ``h = beta * v + i``;
            returns ``(i, h)``."""
            ai = alpha * cur
            cur = ai + x
            bv = beta * v
            h = bv + cur
            return cur, h

        @triton.jit
        def adaptive_threshold(thr, b, a):
            """The ALIF threshold ``thr + b * a`` (``b * a`` rounded first)."""
            ba = b * a
            return thr + ba

        @triton.jit
        def adapt(a, s, rho):
            """The ALIF adaptation update ``rho * a + s`` (``rho * a`` rounded first)."""
            ra = rho * a
            return ra + s

        @triton.jit
        def membrane_grad(a, hh, thr, sg, gv, DK: tl.constexpr, ACC: tl.constexpr):
            """``g_h = a + d * g_v`` of the CubaLIF and recurrent LIF/CubaLIF reverse scans (``d`` per
            :func:`reset_slope`; DK 0: ``a + g_v``). The LIF kernel folds ``beta`` into ``d`` first
            (``(d * beta) * g``, the reference's order for that op) and does not use this."""
            if DK == 0:
                gh = a + gv
            else:
                s = tl.where(hh > thr, 1.0, 0.0).to(ACC)
                d = reset_slope(hh, thr, sg, s, DK)
                gh = a + d * gv
            return gh

        @triton.jit
        def alif_grad_step(hh, th, sg, s, gsum, gv, gho, MODE: tl.constexpr, DETACH: tl.constexpr,
                           HAS_GHO: tl.constexpr):
            """One ALIF step of the reverse scan: from the gradient reaching the spike (``gsum`` = dL/ds_t plus
            the adaptation's carried gradient), the carried membrane gradient ``gv`` and, when ``HAS_GHO``, the
            gradient ``gho`` w.r.t. the returned ``h``, return ``(g_h, g_theta)`` (``g_theta``: w.r.t. this step's
            threshold, firing and reset uses)."""
            if not DETACH:
                if MODE == 0:
                    gsum = gsum - th * gv
                elif MODE == 1:
                    gsum = gsum - hh * gv
            gss = gsum * sg
            if HAS_GHO:
                gh = gss + gho
            else:
                gh = gss
            if MODE == 1:
                gh = gh + (1.0 - s) * gv
            else:
                gh = gh + gv
            if MODE == 0:
                gth = -gss - s * gv
            else:
                gth = -gss
            return gh, gth

        @triton.jit
        def surrogate_grad(x, p, c, SUR: tl.constexpr):
            """sigma'(x) of the built-in surrogate ``SUR`` (codes of ``neurosynth._ops.common.surrogate_code``)."""
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
