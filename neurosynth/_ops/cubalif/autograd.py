"""CubaLIF autograd: ``torch.library`` custom ops over ``reference.py``'s contract; parameter and initial-state
gradients in torch. :func:`cubalif` is the entry point (a surrogate without a code uses an
``autograd.Function`` over the reference backward)."""

from __future__ import annotations

import torch
from torch import Tensor

from ... import _ops
from ..common import MODES, acc_dtype, reduce_to, shift_prev, surrogate_code
from ..lif.autograd import param_grads as lif_param_grads


def param_grads(needs, h, i_seq, g_x, g_h, g_s, g_v, i0, v0, alpha, beta, thr, mode, detach, sur):
    """``(g_i0, g_v0, g_alpha, g_beta, g_thr)`` (``None`` where not needed)."""
    need_i0, need_v0, need_alpha, need_beta, need_thr = needs
    acc = h.dtype
    g_i0 = reduce_to(alpha.to(acc) * g_x[0], i0) if need_i0 else None
    g_alpha = None
    if need_alpha:
        g_alpha = reduce_to((g_x * shift_prev(i_seq, i0.to(acc))).sum(0), alpha)
    g_v0, g_beta, g_thr = (None, None, None)
    if need_v0 or need_beta or need_thr:
        g_v0, g_beta, g_thr = lif_param_grads((need_v0, need_beta, need_thr), h, g_h, g_s, g_v, v0, beta, thr,
                                              mode, detach, sur)
    return g_i0, g_v0, g_alpha, g_beta, g_thr


@torch.library.custom_op("neurosynth::cubalif_fwd", mutates_args=())
def cubalif_fwd(x: Tensor, i0: Tensor, v0: Tensor, alpha: Tensor, beta: Tensor, thr: Tensor, mode: int,
                save_i: bool, detach: bool, sur_id: int, sur_p: float,
                sur_c: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    s, h, i_seq, i, v = _ops.forward("cubalif", x, i0, v0, alpha, beta, thr, mode, save_i)
    return s, h, i_seq, i, v


@cubalif_fwd.register_fake
def _(x, i0, v0, alpha, beta, thr, mode, save_i, detach, sur_id, sur_p, sur_c):
    acc = acc_dtype(x.dtype)
    step = x.shape[1:]
    return (torch.empty_like(x), x.new_empty(x.shape, dtype=acc), x.new_empty(x.shape if save_i else (0,), dtype=acc),
            x.new_empty(step, dtype=acc), x.new_empty(step, dtype=acc))


@torch.library.custom_op("neurosynth::cubalif_bwd", mutates_args=())
def cubalif_bwd(h: Tensor, g_s: Tensor | None, g_h_out: Tensor | None, g_v: Tensor | None, g_i: Tensor | None,
                alpha: Tensor, beta: Tensor, thr: Tensor, mode: int, detach: bool, sur_id: int, sur_p: float,
                sur_c: float, need_gh: bool) -> tuple[Tensor, Tensor]:
    g_x, g_h = _ops.backward("cubalif", h, g_s, g_h_out, g_v, g_i, alpha, beta, thr, mode, detach,
                             (sur_id, sur_p, sur_c), need_gh)
    return g_x, g_h


@cubalif_bwd.register_fake
def _(h, g_s, g_h_out, g_v, g_i, alpha, beta, thr, mode, detach, sur_id, sur_p, sur_c, need_gh):
    return torch.empty_like(h), (torch.empty_like(h) if need_gh else h.new_empty((0,)))


def _setup(ctx, inputs, output):
    x, i0, v0, alpha, beta, thr, mode, save_i, detach, sid, sp, sc = inputs
    _, h, i_seq, _, _ = output
    ctx.save_for_backward(h, i_seq, i0, v0, alpha, beta, thr)
    ctx.mode, ctx.detach, ctx.sur, ctx.x_dtype = mode, detach, (sid, sp, sc), x.dtype


def _grads(ctx, bwd, g_s, g_h_out, g_v, g_i):
    h, i_seq, i0, v0, alpha, beta, thr = ctx.saved_tensors
    needs = ctx.needs_input_grad
    need = (needs[1], needs[2], needs[3], needs[4], needs[5])
    g_x, g_h = bwd(h, g_s, g_h_out, g_v, g_i, alpha, beta, thr, ctx.mode, ctx.detach, ctx.sur,
                   bool(need[1] or need[3] or need[4]))
    g_i0, g_v0, g_alpha, g_beta, g_thr = param_grads(need, h, i_seq, g_x, g_h, g_s, g_v, i0, v0, alpha, beta, thr,
                                                     ctx.mode, ctx.detach, ctx.sur)
    return g_x.to(ctx.x_dtype), g_i0, g_v0, g_alpha, g_beta, g_thr


def _backward(ctx, g_s, g_h_out, g_iseq, g_i, g_v):
    def bwd(h, g_s, g_h_out, g_v, g_i, alpha, beta, thr, mode, detach, sur, need_gh):
        return cubalif_bwd(h, g_s, g_h_out, g_v, g_i, alpha, beta, thr, mode, detach, *sur, need_gh)

    return (*_grads(ctx, bwd, g_s, g_h_out, g_v, g_i), None, None, None, None, None, None)


cubalif_fwd.register_autograd(_backward, setup_context=_setup)


class CubaLIFFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, i0, v0, alpha, beta, thr, mode: int, save_i: bool, detach: bool, sur):
        s, h, i_seq, i, v = _ops.forward("cubalif", x, i0, v0, alpha, beta, thr, mode, save_i)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(h, i_seq, i0, v0, alpha, beta, thr)
        ctx.mode, ctx.detach, ctx.sur, ctx.x_dtype = mode, detach, sur, x.dtype
        return s, h, i_seq, i, v

    @staticmethod
    def backward(ctx, g_s, g_h_out, g_iseq, g_i, g_v):
        def bwd(*args):
            return _ops.backward("cubalif", *args)

        return (*_grads(ctx, bwd, g_s, g_h_out, g_v, g_i), None, None, None, None)


def cubalif(x, i0, v0, alpha, beta, thr, mode: str | int, detach_reset: bool, surrogate, save_i: bool | None = None):
    """Whole-sequence CubaLIF: ``(spikes, h, i_seq, i_final, v_final)`` (``i_seq`` empty unless saved; by default
    it is saved exactly when ``alpha`` needs a gradient)."""
    mode = MODES[mode] if isinstance(mode, str) else int(mode)
    if mode not in (0, 1, 2):
        raise ValueError(f"CubaLIF reset mode must be subtract, zero or none; got {mode}")
    if save_i is None:
        save_i = bool(torch.is_grad_enabled() and isinstance(alpha, Tensor) and alpha.requires_grad)
    code = surrogate_code(surrogate)
    if code is None:
        return CubaLIFFunction.apply(x, i0, v0, alpha, beta, thr, mode, save_i, bool(detach_reset), surrogate)
    return cubalif_fwd(x, i0, v0, alpha, beta, thr, mode, save_i, bool(detach_reset), int(code[0]), float(code[1]),
                       float(code[2]))
