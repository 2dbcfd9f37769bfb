"""Recurrent layer autograd: a ``torch.library`` custom op over ``reference.py``'s contract; the weight, bias,
initial-state and neuron-parameter gradients are formed here in torch (one GEMM for the weight gradient)."""

from __future__ import annotations

import torch
from torch import Tensor

from ... import _ops
from ..alif.autograd import _beta_grad
from ..alif.autograd import param_grads as alif_param_grads
from ..common import MODES, acc_dtype, reduce_to, surrogate_code
from ..cubalif.autograd import param_grads as cubalif_param_grads
from ..lif.autograd import param_grads as lif_param_grads

N_STATES = {"lif": 1, "cubalif": 2, "alif": 2}


@torch.library.custom_op("neurosynth::recurrent_fwd", mutates_args=())
def recurrent_fwd(neuron: str, x: Tensor, weight: Tensor, bias: Tensor | None, s0: Tensor, states0: list[Tensor],
                  params: list[Tensor], mode: int, detach: bool, sur_id: int, sur_p: float,
                  sur_c: float) -> list[Tensor]:
    s, h, aux, states = _ops.forward("recurrent", neuron, x, weight, bias, s0, states0, params, mode)
    return [s, h, aux, *states]


@recurrent_fwd.register_fake
def _(neuron, x, weight, bias, s0, states0, params, mode, detach, sur_id, sur_p, sur_c):
    acc = acc_dtype(x.dtype)
    step = x.shape[1:]
    aux = x.new_empty(x.shape if neuron != "lif" else (0,), dtype=acc)
    return [torch.empty_like(x), x.new_empty(x.shape, dtype=acc), aux,
            *(x.new_empty(step, dtype=acc) for _ in range(N_STATES[neuron]))]


@torch.library.custom_op("neurosynth::recurrent_bwd", mutates_args=())
def recurrent_bwd(neuron: str, s: Tensor, h: Tensor, aux: Tensor, weight: Tensor, s0: Tensor, states0: list[Tensor],
                  params: list[Tensor], g_s: Tensor | None, g_h_out: Tensor | None, g_states: list[Tensor | None],
                  mode: int, detach: bool, sur_id: int, sur_p: float, sur_c: float) -> list[Tensor]:
    out = _ops.backward("recurrent", neuron, s, h, aux, weight, s0, states0, params, g_s, g_h_out, g_states, None,
                        mode, detach, (sur_id, sur_p, sur_c))
    return list(out)


@recurrent_bwd.register_fake
def _(neuron, s, h, aux, weight, s0, states0, params, g_s, g_h_out, g_states, mode, detach, sur_id, sur_p, sur_c):
    full = [torch.empty_like(h) for _ in range(3)]
    extra = [torch.empty_like(h) if neuron == "alif" else h.new_empty((0,)) for _ in range(2)]
    return full + extra


def _grads(ctx, s, h, aux, x_dtype, weight, bias, s0, states0, params, g_s, g_h_out, g_states, bwd):
    neuron, mode, detach, sur = ctx.neuron, ctx.mode, ctx.detach, ctx.sur
    g_c, g_s_tot, g_h, g_th, g_as = bwd(neuron, s, h, aux, weight, s0, states0, params, g_s, g_h_out, g_states, None,
                                        mode, detach, sur)
    n = ctx.needs_input_grad  # (neuron, x, weight, bias, s0, ...)
    acc = h.dtype
    flat_c = g_c.reshape(-1, g_c.shape[-1])
    g_w = g_b = g_s0 = None
    if n[2]:
        # one GEMM over steps 1..T-1 (the spikes s[0..T-2] in place, no shifted copy) plus step 0's with s0
        T, N = s.shape[0], s.shape[-1]
        g_w = g_c[0].t() @ s0.to(acc).expand(g_c.shape[1:-1] + (N,)).reshape(-1, N)
        if T > 1:
            g_w = torch.addmm(g_w, g_c[1:].reshape(-1, g_c.shape[-1]).t(), s[:-1].to(acc).reshape(-1, N))
        g_w = g_w.to(weight.dtype)
    if bias is not None and n[3]:
        g_b = reduce_to(flat_c.sum(0), bias)
    if n[4]:
        g_s0 = reduce_to(g_c[0] @ weight.to(acc), s0)
    need_st, need_p = ctx.need_states, ctx.need_params  # only the gradients autograd asks for
    if neuron == "lif":
        g_v0, g_beta, g_thr = lif_param_grads((need_st[0], need_p[0], need_p[1]), h, g_h, g_s_tot, g_states[0],
                                              states0[0], params[0], params[1], mode, detach, sur)
        g_st, g_p = [g_v0], [g_beta, g_thr]
    elif neuron == "cubalif":
        g_i0, g_v0, g_alpha, g_beta, g_thr = cubalif_param_grads(
            (need_st[0], need_st[1], *need_p[:3]), h, aux, g_c, g_h, g_s_tot, g_states[1], states0[0], states0[1],
            params[0], params[1], params[2], mode, detach, sur)
        g_st, g_p = [g_i0, g_v0], [g_alpha, g_beta, g_thr]
    else:
        v0, a0 = states0
        beta, thr, rho, b = params
        g_v0, g_a0, g_thr, g_b_, g_rho = alif_param_grads((need_st[0], need_st[1], False, need_p[1], need_p[2],
                                                           need_p[3]), h, aux, g_h, g_th, g_as, v0, a0, beta, thr,
                                                          rho, b)
        g_beta = _beta_grad(h, aux, g_h, v0, a0, beta, thr, b, mode) if need_p[0] else None
        g_st, g_p = [g_v0, g_a0], [g_beta, g_thr, g_rho, g_b_]
    return g_c.to(x_dtype), g_w, g_b, g_s0, g_st, g_p


def _setup(ctx, inputs, output):
    neuron, x, weight, bias, s0, states0, params, mode, detach, sid, sp, sc = inputs
    s, h, aux = output[:3]
    ctx.save_for_backward(s, h, aux, weight, bias, s0, *states0, *params)
    ctx.neuron, ctx.mode, ctx.detach, ctx.sur, ctx.x_dtype = neuron, mode, detach, (sid, sp, sc), x.dtype
    ctx.ns = len(states0)
    ctx.need_states = [t.requires_grad for t in states0]
    ctx.need_params = [t.requires_grad for t in params]


def _backward(ctx, grads):
    saved = ctx.saved_tensors
    s, h, aux, weight, bias, s0 = saved[:6]
    states0 = list(saved[6:6 + ctx.ns])
    params = list(saved[6 + ctx.ns:])
    g_s, g_h_out = grads[0], grads[1]
    g_states = list(grads[3:])

    def bwd(neuron, s, h, aux, weight, s0, states0, params, g_s, g_h_out, g_states, g_s_last, mode, detach, sur):
        return recurrent_bwd(neuron, s, h, aux, weight, s0, states0, params, g_s, g_h_out, g_states, mode, detach,
                             *sur)

    g_x, g_w, g_b, g_s0, g_st, g_p = _grads(ctx, s, h, aux, ctx.x_dtype, weight, bias, s0, states0, params, g_s,
                                            g_h_out, g_states, bwd)
    return None, g_x, g_w, g_b, g_s0, g_st, g_p, None, None, None, None, None


recurrent_fwd.register_autograd(_backward, setup_context=_setup)


class RecurrentFunction(torch.autograd.Function):
    """Same op for a surrogate without a code."""

    @staticmethod
    def forward(ctx, neuron, x, weight, bias, s0, mode, detach, sur, ns, *flat):
        states0, params = list(flat[:ns]), list(flat[ns:])
        s, h, aux, states = _ops.forward("recurrent", neuron, x, weight, bias, s0, states0, params, mode)
        ctx.save_for_backward(s, h, aux, weight, bias, s0, *states0, *params)
        ctx.neuron, ctx.mode, ctx.detach, ctx.sur, ctx.x_dtype, ctx.ns = neuron, mode, detach, sur, x.dtype, ns
        ctx.set_materialize_grads(False)
        return (s, h, aux, *states)

    @staticmethod
    def backward(ctx, *grads):
        saved = ctx.saved_tensors
        s, h, aux, weight, bias, s0 = saved[:6]
        states0 = list(saved[6:6 + ctx.ns])
        params = list(saved[6 + ctx.ns:])

        class _C:  # needs_input_grad in the custom op's argument order
            pass

        c = _C()
        c.neuron, c.mode, c.detach, c.sur = ctx.neuron, ctx.mode, ctx.detach, ctx.sur
        n = ctx.needs_input_grad
        c.needs_input_grad = (False, n[1], n[2], n[3], n[4])
        c.need_states = list(n[9:9 + ctx.ns])
        c.need_params = list(n[9 + ctx.ns:])

        def bwd(*args):
            return _ops.backward("recurrent", *args)

        g_x, g_w, g_b, g_s0, g_st, g_p = _grads(c, s, h, aux, ctx.x_dtype, weight, bias, s0, states0, params,
                                                grads[0], grads[1], list(grads[3:]), bwd)
        return (None, g_x, g_w, g_b, g_s0, None, None, None, None, *g_st, *g_p)


def recurrent(neuron: str, x, weight, bias, s0, states0, params, mode, detach_reset: bool, surrogate):
    """Recurrent layer over ``x [T, B, N]``: ``(spikes, h, aux, *final_states)`` (see ``reference.py``)."""
    mode = MODES[mode] if isinstance(mode, str) else int(mode)
    if mode not in (0, 1, 2):
        raise ValueError("the recurrent fast path supports the subtract, zero and none resets")
    code = surrogate_code(surrogate)
    states0, params = list(states0), list(params)
    if code is None:
        return RecurrentFunction.apply(neuron, x, weight, bias, s0, mode, bool(detach_reset), surrogate,
                                       len(states0), *states0, *params)
    return recurrent_fwd(neuron, x, weight, bias, s0, states0, params, mode, bool(detach_reset), int(code[0]),
                         float(code[1]), float(code[2]))
