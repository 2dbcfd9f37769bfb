r"""Recurrent spiking layer: the operator contract and its reference implementation.

The layer computes, for a fused neuron ``neuron`` in ``("lif", "cubalif", "alif")``:

.. math::
    c_t = x_t + (s_{t-1} W^\top + b),\qquad (s_t, \text{state}_t) = \text{neuron}(c_t, \text{state}_{t-1}),

with :math:`s_{-1}` = ``s0`` (zeros for a fresh sequence; the bias is added at every step, also at t = 0).
Arithmetic: ``c = x[t] + torch.nn.functional.linear(s_prev, weight, bias)`` (so the python loop of
:class:`neurosynth.layers.Recurrent`, which calls its ``rec`` Linear, gives bit-identical currents).

This file orchestrates: one GEMM per step plus the neuron operator's own forward/backward on
the one-step slice ``[1, B, N]``, so whichever neuron kernel the dispatcher picks (C++ on CPU, Triton on CUDA,
torch elsewhere) runs the elementwise update. A device-specific ``recurrent/<impl>.py`` may replace the whole
loop (e.g. a persistent kernel) with the same contract.

``forward(neuron, x, weight, bias, s0, states0, params, mode) -> (s, h, aux, states)``
    - ``x [T, B, N]`` (any float dtype), ``weight [N, N]``, ``bias [N]`` or ``None``, ``s0 [B, N]``;
    - ``states0``: ``[v0]`` (lif), ``[i0, v0]`` (cubalif), ``[v0, a0]`` (alif), each broadcastable to ``[B, N]``;
    - ``params``: ``[beta, thr]`` (lif), ``[alpha, beta, thr]`` (cubalif), ``[beta, thr, rho, b]`` (alif);
    - ``mode``: 0 subtract, 1 zero, 2 none (the delayed snnTorch reset is not supported here);
    - returns ``s [T, B, N]`` (``x.dtype``), ``h [T, B, N]`` (``acc``), ``aux [T, B, N]`` (``acc``: ``i_seq`` for
      cubalif, ``a_seq`` for alif, empty for lif) and the final states (``acc``, same order as ``states0``).
      Saved for backward: ``s``, ``h``, ``aux`` and the inputs.

``backward(neuron, s, h, aux, weight, s0, states0, params, g_s, g_h_out, g_states, g_s_last, mode, detach_reset,
sur) -> (g_c, g_s_tot, g_h, g_theta, g_a_seq)``
    - ``g_s``, ``g_h_out`` ``[T, B, N]`` or ``None``; ``g_states`` gradients w.r.t. the final states (list, entries
      may be ``None``); ``g_s_last`` an extra gradient w.r.t. ``s[T-1]`` as the carried spike state, or ``None``.
    - Reverse scan: :math:`\hat g_{s_t} = g_{s_t} + g_{c_{t+1}} W` (:math:`g_{c_T} W` := ``g_s_last``), then the
      neuron's one-step backward with the carried state gradients gives :math:`g_{c_t}` (= gradient w.r.t.
      :math:`x_t`).
    - Returns ``g_c`` (``acc``), the total spike gradients ``g_s_tot``, the membrane gradients ``g_h`` and, for
      alif, ``g_theta``/``g_a_seq`` (empty otherwise): from these :mod:`.autograd` forms the weight, bias,
      ``s0``, initial-state and parameter gradients in torch with the neurons' ``param_grads``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ... import _ops
from ..common import acc_dtype

NEURONS = ("lif", "cubalif", "alif")


def _expand(t, like):
    return t.to(like.dtype).expand_as(like)


def forward(neuron, x, weight, bias, s0, states0, params, mode: int):
    if neuron not in NEURONS:
        raise ValueError(f"recurrent neuron must be one of {NEURONS}; got {neuron!r}")
    T = x.shape[0]
    acc = acc_dtype(x.dtype)
    w = weight.to(x.dtype)
    b = None if bias is None else bias.to(x.dtype)
    c = torch.empty(x.shape[1:], dtype=x.dtype, device=x.device)
    s_all = torch.empty_like(x)
    h_all = torch.empty(x.shape, dtype=acc, device=x.device)
    aux = torch.empty(x.shape if neuron != "lif" else (0,), dtype=acc, device=x.device)
    states = [_expand(st, h_all[0]) for st in states0]
    s_prev = s0.to(x.dtype).expand_as(c).contiguous()
    for t in range(T):
        torch.add(x[t], F.linear(s_prev, w, b), out=c)
        c1 = c.unsqueeze(0)
        if neuron == "lif":
            s, h, v = _ops.forward("lif", c1, states[0], params[0], params[1], mode)
            states = [v]
        elif neuron == "cubalif":
            s, h, i_seq, i, v = _ops.forward("cubalif", c1, states[0], states[1], *params, mode, True)
            aux[t] = i_seq[0]
            states = [i, v]
        else:
            s, h, a_seq, v, a = _ops.forward("alif", c1, states[0], states[1], *params, mode)
            aux[t] = a_seq[0]
            states = [v, a]
        s_all[t] = s[0]
        h_all[t] = h[0]
        # the kernel's fresh (64-byte aligned) output, not a view into s_all: CPU GEMMs round differently
        # for differently aligned operands, and the python loop multiplies fresh tensors
        s_prev = s[0]
    return s_all, h_all, aux, [st.contiguous() for st in states]


def backward(neuron, s, h, aux, weight, s0, states0, params, g_s, g_h_out, g_states, g_s_last, mode: int,
             detach_reset: bool, sur):
    T = h.shape[0]
    acc = h.dtype
    w = weight.to(acc)
    g_c = torch.empty_like(h)
    g_s_tot = torch.empty_like(h)
    g_h = torch.empty_like(h)
    alif = neuron == "alif"
    g_th = torch.empty_like(h) if alif else torch.empty(0, dtype=acc, device=h.device)
    g_as = torch.empty_like(h) if alif else torch.empty(0, dtype=acc, device=h.device)
    zero = torch.zeros(h.shape[1:], dtype=acc, device=h.device)
    carry = [zero if g is None else g.to(acc).expand_as(zero) for g in g_states]
    g_rec = zero if g_s_last is None else g_s_last.to(acc).expand_as(zero)
    p = [q.to(acc) for q in params]
    for t in range(T - 1, -1, -1):
        gs = g_rec if g_s is None else g_rec + g_s[t].to(acc)
        g_s_tot[t] = gs
        gs1 = g_s_tot[t:t + 1]
        gho = None if g_h_out is None else g_h_out[t:t + 1]
        if neuron == "lif":
            gh = _ops.backward("lif", h[t:t + 1], gs1, gho, carry[0], p[0], p[1], mode, detach_reset, sur)
            g_h[t] = gh[0]
            g_c[t] = gh[0]
            carry = [p[0] * g_h[t]]
        elif neuron == "cubalif":
            gx, gh = _ops.backward("cubalif", h[t:t + 1], gs1, gho, carry[1], carry[0], p[0], p[1], p[2], mode,
                                   detach_reset, sur, True)
            g_h[t], g_c[t] = gh[0], gx[0]
            carry = [p[0] * g_c[t], p[1] * g_h[t]]
        else:
            a_prev = states0[1].to(acc).expand_as(zero) if t == 0 else aux[t - 1]
            gh, gth, gas = _ops.backward("alif", h[t:t + 1], aux[t:t + 1], a_prev, gs1, gho, carry[0], carry[1],
                                         p[0], p[1], p[2], p[3], mode, detach_reset, sur, True)
            g_h[t], g_c[t], g_th[t], g_as[t] = gh[0], gh[0], gth[0], gas[0]
            carry = [p[0] * g_h[t], p[2] * g_as[t] + p[3] * g_th[t]]
        g_rec = g_c[t] @ w
    return g_c, g_s_tot, g_h, g_th, g_as
