"""LIF / IF autograd: ``torch.library`` custom ops (so ``torch.compile(fullgraph=True)`` sees no graph break)
with the backward of ``reference.py``'s contract, plus the parameter gradients formed here in torch.

:func:`lif` is the entry point. Built-in surrogates travel as their ``(id, p, c)`` code through the custom ops;
a custom ``Surrogate`` (e.g. a subclass overriding ``grad``) runs through :class:`LIFFunction`, an
``autograd.Function`` that hands the object to the reference backward (works everywhere, not graph-capturable).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ... import _ops
from ..common import MODES, acc_dtype, reduce_to, shift_prev, surrogate_code, surrogate_grad


def param_grads(needs, h, g_h, g_s, g_v, v0, beta, thr, mode, detach, sur):
    """``(g_v0, g_beta, g_thr)`` (``None`` where not needed) from the saved ``h`` and the kernel's ``g_h``."""
    need_v0, need_beta, need_thr = needs
    g_v0 = g_beta = g_thr = None
    acc = h.dtype
    b, th = beta.to(acc), thr.to(acc)
    s_all = (h > th).to(acc) if (need_beta or need_thr) else None
    if need_v0:
        g_v0 = reduce_to(b * g_h[0], v0)
    if need_beta:
        if mode == 0:
            v = h - th * s_all
        elif mode == 1:
            v = h * (1 - s_all)
        else:
            v = h
        g_beta = reduce_to((g_h * shift_prev(v, v0.to(acc))).sum(0), beta)
    if need_thr:
        sig = surrogate_grad(sur, h - th)
        gt = -(g_s.to(acc) * sig) if g_s is not None else torch.zeros_like(h)
        # the threshold's uses in the reset, through g_v_t = beta * g_h_{t+1} (and g_v after the last step)
        g_last = (g_v.to(acc) if g_v is not None else torch.zeros_like(h[0])).expand_as(h[0]).unsqueeze(0)
        g_vnext = torch.cat([b * g_h[1:], g_last], 0)
        if mode == 0:
            gt = gt + g_vnext * (-s_all if detach else -s_all + th * sig)
        elif mode == 1 and not detach:
            gt = gt + g_vnext * h * sig
        elif mode == 3:
            gt = gt - g_h * shift_prev(s_all, torch.zeros_like(h[0]))
        g_thr = reduce_to(gt.sum(0), thr)
    return g_v0, g_beta, g_thr


# ------------------------------------------------------------------------------------------- custom ops
@torch.library.custom_op("neurosynth::lif_fwd", mutates_args=())
def lif_fwd(x: Tensor, v0: Tensor, beta: Tensor, thr: Tensor, mode: int, detach: bool, sur_id: int,
            sur_p: float, sur_c: float) -> tuple[Tensor, Tensor, Tensor]:
    s, h, v = _ops.forward("lif", x, v0, beta, thr, mode)
    return s, h, v


@lif_fwd.register_fake
def _(x, v0, beta, thr, mode, detach, sur_id, sur_p, sur_c):
    acc = acc_dtype(x.dtype)
    return torch.empty_like(x), x.new_empty(x.shape, dtype=acc), x.new_empty(x.shape[1:], dtype=acc)


@torch.library.custom_op("neurosynth::lif_bwd", mutates_args=())
def lif_bwd(h: Tensor, g_s: Tensor | None, g_h_out: Tensor | None, g_v: Tensor | None, beta: Tensor, thr: Tensor,
            mode: int, detach: bool, sur_id: int, sur_p: float, sur_c: float) -> Tensor:
    return _ops.backward("lif", h, g_s, g_h_out, g_v, beta, thr, mode, detach, (sur_id, sur_p, sur_c))


@lif_bwd.register_fake
def _(h, g_s, g_h_out, g_v, beta, thr, mode, detach, sur_id, sur_p, sur_c):
    return torch.empty_like(h)


def _setup(ctx, inputs, output):
    x, v0, beta, thr, mode, detach, sid, sp, sc = inputs
    _, h, _ = output
    ctx.save_for_backward(h, v0, beta, thr)
    ctx.mode, ctx.detach, ctx.sur, ctx.x_dtype = mode, detach, (sid, sp, sc), x.dtype


def _backward(ctx, g_s, g_h_out, g_v):
    h, v0, beta, thr = ctx.saved_tensors
    mode, detach, sur = ctx.mode, ctx.detach, ctx.sur
    g_h = lif_bwd(h, g_s, g_h_out, g_v, beta, thr, mode, detach, *sur)
    needs = ctx.needs_input_grad
    g_v0, g_beta, g_thr = param_grads((needs[1], needs[2], needs[3]), h, g_h, g_s, g_v, v0, beta, thr, mode,
                                      detach, sur)
    return g_h.to(ctx.x_dtype), g_v0, g_beta, g_thr, None, None, None, None, None


lif_fwd.register_autograd(_backward, setup_context=_setup)


class LIFFunction(torch.autograd.Function):
    """The same op for a surrogate without a code (its ``grad`` runs in torch in the reference backward)."""

    @staticmethod
    def forward(ctx, x, v0, beta, thr, mode: int, detach: bool, sur):
        s, h, v = _ops.forward("lif", x, v0, beta, thr, mode)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(h, v0, beta, thr)
        ctx.mode, ctx.detach, ctx.sur, ctx.x_dtype = mode, detach, sur, x.dtype
        return s, h, v

    @staticmethod
    def backward(ctx, g_s, g_h_out, g_v):
        h, v0, beta, thr = ctx.saved_tensors
        g_h = _ops.backward("lif", h, g_s, g_h_out, g_v, beta, thr, ctx.mode, ctx.detach, ctx.sur)
        needs = ctx.needs_input_grad
        g_v0, g_beta, g_thr = param_grads((needs[1], needs[2], needs[3]), h, g_h, g_s, g_v, v0, beta, thr,
                                          ctx.mode, ctx.detach, ctx.sur)
        return g_h.to(ctx.x_dtype), g_v0, g_beta, g_thr, None, None, None


def lif(x: Tensor, v0: Tensor, beta: Tensor, thr: Tensor, mode: str | int, detach_reset: bool, surrogate):
    """Whole-sequence LIF: ``(spikes [T, ...] x.dtype, h [T, ...] acc, v_final [...] acc)``.

    ``mode``: ``"subtract"``, ``"zero"``, ``"none"``, ``"subtract_delayed"`` (or 0..3)."""
    mode = MODES[mode] if isinstance(mode, str) else int(mode)
    if mode == 3 and not detach_reset:
        raise ValueError("reset_delay=True (snnTorch convention) always detaches the reset")
    code = surrogate_code(surrogate)
    if code is None:
        return LIFFunction.apply(x, v0, beta, thr, mode, bool(detach_reset), surrogate)
    return lif_fwd(x, v0, beta, thr, mode, bool(detach_reset), int(code[0]), float(code[1]), float(code[2]))
