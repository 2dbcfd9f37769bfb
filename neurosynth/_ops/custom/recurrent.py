r"""A recurrently connected layer of a custom neuron (adLIF -> RadLIF, any hook-defined neuron) through its generated
kernel: one GEMM plus one generated step per time step, and a hand-written reverse scan backward.

Contract (the python loop of :class:`neurosynth.layers.Recurrent`, bit for bit in float32 on the CPU):

.. math::
    c_t = x_t + (s_{t-1} W^\top + b),\qquad (s_t, h_t, \text{state}_t) = \text{step}(c_t, \text{state}_{t-1})

with :math:`s_{-1}` = ``s0`` and ``step`` the neuron's generated kernel on one time step (``T = 1``). Backward, in
reverse time: the spike gradient :math:`\hat g_{s_t} = g_{s_t} + g_{c_{t+1}} W` enters the kernel's one-step
backward with the carried state gradients, which gives :math:`g_{c_t}` (= :math:`g_{x_t}`) and the per-neuron
parameter gradients; then :math:`g_W = \sum_t g_{c_t}^\top s_{t-1}` (one GEMM over all steps),
:math:`g_b = \sum_t g_{c_t}`, :math:`g_{s0} = g_{c_0} W`. What is kept for backward: the spikes, the states the
kernel's backward reads (per step) and the currents ``c`` only if it reads its input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..common import reduce_to


def _flat(t: torch.Tensor, step_shape, dtype) -> torch.Tensor:
    return t.detach().to(dtype).expand(step_shape).reshape(-1).contiguous()


class _RecurrentSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kernel, n_state: int, x, weight, bias, s0, *rest):
        states0, params = rest[:n_state], rest[n_state:]
        T, step_shape, dtype = x.shape[0], x.shape[1:], kernel.cap.dtype
        M = int(torch.Size(step_shape).numel())
        save = any(ctx.needs_input_grad[2:])
        w = weight.detach().to(x.dtype)
        b = None if bias is None else bias.detach().to(x.dtype)
        st = [_flat(s, step_shape, dtype).clone() for s in states0]
        ps = [_flat(p, step_shape, dtype) for p in params]
        s_all = torch.empty_like(x)
        h_all = torch.empty(x.shape, dtype=dtype, device=x.device)
        keep = [r and save for r in kernel.reads_st]
        saved_all = [torch.empty((T, M), dtype=dtype, device=x.device) if k else None for k in keep]
        c_all = torch.empty((T, M), dtype=dtype, device=x.device) if (save and kernel.reads_x) else None
        s_prev = s0.detach().to(x.dtype).expand(step_shape)
        xd = x.detach()
        for t in range(T):
            c = xd[t] + F.linear(s_prev, w, b)  # the python loop's arithmetic: x[t] + rec(s[t-1])
            cf = c.reshape(1, M).to(dtype).contiguous()
            s, h, saved = kernel.forward(cf, st, ps, save)
            for k, sv in enumerate(saved):
                if saved_all[k] is not None:
                    saved_all[k][t] = sv[0]
            if c_all is not None:
                c_all[t] = cf[0]
            s_all[t] = s.view(step_shape).to(x.dtype)
            h_all[t] = h.view(step_shape)
            s_prev = s_all[t]
        ctx.kernel, ctx.n_state, ctx.T, ctx.M = kernel, n_state, T, M
        ctx.shapes = (x.shape, x.dtype, step_shape, bias is not None)
        ctx.likes = [torch.empty(t.shape, dtype=t.dtype, device="meta") for t in (s0, *rest)]
        ctx.keep = keep
        ctx.save_for_backward(s_all, w, s0.detach(), c_all, *[t for t in saved_all if t is not None], *ps)
        return (s_all, h_all, *[v.view(step_shape) for v in st])

    @staticmethod
    def backward(ctx, g_s, g_h, *g_final):
        kernel, k, T, M = ctx.kernel, ctx.n_state, ctx.T, ctx.M
        x_shape, x_dtype, step_shape, has_bias = ctx.shapes
        tensors = ctx.saved_tensors
        s_all, w, s0, c_all = tensors[:4]
        n_saved = sum(ctx.keep)
        it = iter(tensors[4:4 + n_saved])
        saved_all = [next(it) if kp else None for kp in ctx.keep]
        ps = list(tensors[4 + n_saved:])
        dtype, dev = kernel.cap.dtype, s_all.device
        g_states = [torch.zeros(M, dtype=dtype, device=dev) if g is None else g.reshape(-1).to(dtype).clone()
                    for g in g_final]
        g_p_sum = [torch.zeros(M, dtype=dtype, device=dev) for _ in kernel.cap.grad_params]
        g_c_all = torch.empty((T, M), dtype=dtype, device=dev)
        wd = w.to(dtype)
        g_c_next = None
        for t in range(T - 1, -1, -1):
            gs = torch.zeros(M, dtype=dtype, device=dev) if g_s is None else g_s[t].reshape(-1).to(dtype)
            if g_c_next is not None:  # s_t feeds c_{t+1} = x_{t+1} + s_t W^T + b
                gs = gs + (g_c_next.view(-1, wd.shape[0]) @ wd).reshape(-1)
            gh = None if g_h is None else g_h[t].reshape(1, M).to(dtype).contiguous()
            xt = None if c_all is None else c_all[t:t + 1]
            sv = [None if s is None else s[t:t + 1] for s in saved_all]
            g_c, g_p = kernel.backward(1, xt, sv, ps, gs.reshape(1, M).contiguous(), gh, g_states)
            for acc, g in zip(g_p_sum, g_p):
                acc += g
            g_c_all[t] = g_c[0]
            g_c_next = g_c[0]
        n = wd.shape[0]
        g_c_seq = g_c_all.view(T, -1, n)  # [T, B*, N]
        need = ctx.needs_input_grad
        grads = [None, None]
        grads.append(g_c_all.view(x_shape).to(x_dtype) if need[2] else None)
        if need[3]:
            s_prev = torch.cat([s0.to(s_all.dtype).expand(step_shape).unsqueeze(0), s_all[:-1]]).reshape(-1, n)
            grads.append((g_c_seq.reshape(-1, n).t() @ s_prev.to(dtype)).to(w.dtype))
        else:
            grads.append(None)
        grads.append(g_c_seq.reshape(-1, n).sum(0) if (has_bias and need[4]) else None)
        grads.append(reduce_to((g_c_seq[0] @ wd).view(step_shape), ctx.likes[0]) if need[5] else None)
        for q in range(k):
            grads.append(reduce_to(g_states[q].view(step_shape), ctx.likes[1 + q]) if need[6 + q] else None)
        learn = dict(zip(kernel.cap.grad_params, g_p_sum))
        for j, name in enumerate(kernel.cap.param_names):
            ok = need[6 + k + j] and name in learn
            grads.append(reduce_to(learn[name].view(step_shape), ctx.likes[1 + k + j]) if ok else None)
        return tuple(grads)


def apply(kernel, x, weight, bias, s0, states0: list[torch.Tensor], params: list[torch.Tensor]):
    """``(s [T, B, N], h [T, B, N], [final state k [B, N]])`` of a recurrent layer of the kernel's neuron."""
    out = _RecurrentSequence.apply(kernel, len(states0), x, weight, bias, s0, *states0, *params)
    return out[0], out[1], list(out[2:])
