"""ALIF autograd: ``torch.library`` custom ops over ``reference.py``'s contract; parameter and initial-state
gradients in torch. :func:`alif` is the entry point."""

from __future__ import annotations

import torch
from torch import Tensor

from ... import _ops
from ..common import MODES, acc_dtype, reduce_to, shift_prev, surrogate_code


def param_grads(needs, h, a_seq, g_h, g_th, g_as, v0, a0, beta, thr, rho, b):
    """``(g_v0, g_a0, g_beta, g_thr, g_rho, g_b)`` (``None`` where not needed), for ``mode`` via ``v_prev``."""
    need_v0, need_a0, need_beta, need_thr, need_rho, need_b = needs
    acc = h.dtype
    g_v0 = reduce_to(beta.to(acc) * g_h[0], v0) if need_v0 else None
    g_a0 = reduce_to(rho.to(acc) * g_as[0] + b.to(acc) * g_th[0], a0) if need_a0 else None
    a_prev = shift_prev(a_seq, a0.to(acc)) if (need_rho or need_b) else None
    g_thr = reduce_to(g_th.sum(0), thr) if need_thr else None
    g_b = reduce_to((g_th * a_prev).sum(0), b) if need_b else None
    g_rho = reduce_to((g_as * a_prev).sum(0), rho) if need_rho else None
    return g_v0, g_a0, g_thr, g_b, g_rho


def _beta_grad(h, a_seq, g_h, v0, a0, beta, thr, b, mode):
    acc = h.dtype
    theta = thr.to(acc) + b.to(acc) * shift_prev(a_seq, a0.to(acc))
    s = (h > theta).to(acc)
    v = h - theta * s if mode == 0 else h * (1 - s) if mode == 1 else h
    return reduce_to((g_h * shift_prev(v, v0.to(acc))).sum(0), beta)


@torch.library.custom_op("neurosynth::alif_fwd", mutates_args=())
def alif_fwd(x: Tensor, v0: Tensor, a0: Tensor, beta: Tensor, thr: Tensor, rho: Tensor, b: Tensor, mode: int,
             detach: bool, sur_id: int, sur_p: float, sur_c: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    s, h, a_seq, v, a = _ops.forward("alif", x, v0, a0, beta, thr, rho, b, mode)
    return s, h, a_seq, v, a


@alif_fwd.register_fake
def _(x, v0, a0, beta, thr, rho, b, mode, detach, sur_id, sur_p, sur_c):
    acc = acc_dtype(x.dtype)
    step = x.shape[1:]
    return (torch.empty_like(x), x.new_empty(x.shape, dtype=acc), x.new_empty(x.shape, dtype=acc),
            x.new_empty(step, dtype=acc), x.new_empty(step, dtype=acc))


@torch.library.custom_op("neurosynth::alif_bwd", mutates_args=())
def alif_bwd(h: Tensor, a_seq: Tensor, a0: Tensor, g_s: Tensor | None, g_h_out: Tensor | None, g_v: Tensor | None,
             g_a: Tensor | None, beta: Tensor, thr: Tensor, rho: Tensor, b: Tensor, mode: int, detach: bool,
             sur_id: int, sur_p: float, sur_c: float, need_param: bool) -> tuple[Tensor, Tensor, Tensor]:
    g_h, g_th, g_as = _ops.backward("alif", h, a_seq, a0, g_s, g_h_out, g_v, g_a, beta, thr, rho, b, mode, detach,
                                    (sur_id, sur_p, sur_c), need_param)
    return g_h, g_th, g_as


@alif_bwd.register_fake
def _(h, a_seq, a0, g_s, g_h_out, g_v, g_a, beta, thr, rho, b, mode, detach, sur_id, sur_p, sur_c, need_param):
    shape = h.shape if need_param else (0,)
    return torch.empty_like(h), h.new_empty(shape), h.new_empty(shape)


def _setup(ctx, inputs, output):
    x, v0, a0, beta, thr, rho, b, mode, detach, sid, sp, sc = inputs
    _, h, a_seq, _, _ = output
    ctx.save_for_backward(h, a_seq, v0, a0, beta, thr, rho, b)
    ctx.mode, ctx.detach, ctx.sur, ctx.x_dtype = mode, detach, (sid, sp, sc), x.dtype


def _grads(ctx, bwd, g_s, g_h_out, g_v, g_a):
    h, a_seq, v0, a0, beta, thr, rho, b = ctx.saved_tensors
    n = ctx.needs_input_grad
    need_v0, need_a0, need_beta, need_thr, need_rho, need_b = n[1], n[2], n[3], n[4], n[5], n[6]
    need_param = bool(need_a0 or need_thr or need_rho or need_b)
    g_h, g_th, g_as = bwd(h, a_seq, a0, g_s, g_h_out, g_v, g_a, beta, thr, rho, b, ctx.mode, ctx.detach, ctx.sur,
                          need_param)
    g_v0, g_a0, g_thr, g_b, g_rho = param_grads((need_v0, need_a0, False, need_thr, need_rho, need_b), h, a_seq,
                                                g_h, g_th, g_as, v0, a0, beta, thr, rho, b)
    g_beta = _beta_grad(h, a_seq, g_h, v0, a0, beta, thr, b, ctx.mode) if need_beta else None
    return g_h.to(ctx.x_dtype), g_v0, g_a0, g_beta, g_thr, g_rho, g_b


def _backward(ctx, g_s, g_h_out, g_aseq, g_v, g_a):
    def bwd(h, a_seq, a0, g_s, g_h_out, g_v, g_a, beta, thr, rho, b, mode, detach, sur, need_param):
        return alif_bwd(h, a_seq, a0, g_s, g_h_out, g_v, g_a, beta, thr, rho, b, mode, detach, *sur, need_param)

    return (*_grads(ctx, bwd, g_s, g_h_out, g_v, g_a), None, None, None, None, None)


alif_fwd.register_autograd(_backward, setup_context=_setup)


class ALIFFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, v0, a0, beta, thr, rho, b, mode: int, detach: bool, sur):
        s, h, a_seq, v, a = _ops.forward("alif", x, v0, a0, beta, thr, rho, b, mode)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(h, a_seq, v0, a0, beta, thr, rho, b)
        ctx.mode, ctx.detach, ctx.sur, ctx.x_dtype = mode, detach, sur, x.dtype
        return s, h, a_seq, v, a

    @staticmethod
    def backward(ctx, g_s, g_h_out, g_aseq, g_v, g_a):
        def bwd(*args):
            return _ops.backward("alif", *args)

        return (*_grads(ctx, bwd, g_s, g_h_out, g_v, g_a), None, None, None)


def alif(x, v0, a0, beta, thr, rho, b, mode: str | int, detach_reset: bool, surrogate):
    """Whole-sequence ALIF: ``(spikes, h, a_seq, v_final, a_final)``."""
    mode = MODES[mode] if isinstance(mode, str) else int(mode)
    if mode not in (0, 1, 2):
        raise ValueError(f"ALIF reset mode must be subtract, zero or none; got {mode}")
    code = surrogate_code(surrogate)
    if code is None:
        return ALIFFunction.apply(x, v0, a0, beta, thr, rho, b, mode, bool(detach_reset), surrogate)
    return alif_fwd(x, v0, a0, beta, thr, rho, b, mode, bool(detach_reset), int(code[0]), float(code[1]),
                    float(code[2]))
