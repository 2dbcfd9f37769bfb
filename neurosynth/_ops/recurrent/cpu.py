"""Recurrent layer on CPU: ``reference.py``'s loop with the C++ neuron kernels called directly on preallocated
per-step buffers (no per-step dispatch, expansion or allocation), float32/float64 only (else: decline).

Per step: one GEMM (``F.linear`` of the previous spikes, same call as the python loop, so currents are
bit-identical), one add, one fused C++ step; backward per step: one fused C++ step, one GEMM, two or three
elementwise ops. Spikes go through two fresh ping-pong buffers (CPU GEMMs round differently for operands at
differently aligned addresses, so multiplying views into the output tensor could differ from the python loop).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ... import _cext
from ..common import DKIND, surrogate_code


def available(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and _cext.available(x)


def _per(t, like):
    return t.to(like.dtype).expand_as(like).contiguous()


def forward(neuron, x, weight, bias, s0, states0, params, mode: int):
    mod = _cext.load_extension()
    if mod is None or x.dtype not in (torch.float32, torch.float64):
        return None
    x = x.contiguous()
    T = x.shape[0]
    step = x[0]
    w = weight.to(x.dtype)
    b = None if bias is None else bias.to(x.dtype)
    p = [_per(q, step) for q in params]
    s_all, h_all = torch.empty_like(x), torch.empty_like(x)
    aux = torch.empty_like(x) if neuron != "lif" else x.new_empty(0)
    st = [_per(q, step).clone() for q in states0]
    spare = torch.empty_like(step) if neuron == "lif" else None
    ping = [torch.empty_like(step).unsqueeze(0), torch.empty_like(step).unsqueeze(0)]
    c = torch.empty_like(step).unsqueeze(0)
    s_prev = s0.to(x.dtype).expand_as(step).contiguous()
    for t in range(T):
        torch.add(x[t], F.linear(s_prev, w, b), out=c[0])
        s1 = ping[t % 2]
        h1 = h_all[t:t + 1]
        if neuron == "lif":
            mod.lif_forward(c, st[0], p[0], p[1], int(mode), s1, h1, spare)
            st[0], spare = spare, st[0]
        elif neuron == "cubalif":
            mod.cubalif_forward(c, p[0], p[1], p[2], int(mode), s1, h1, aux[t:t + 1], st[0], st[1])
        else:
            mod.alif_forward(c, p[0], p[1], p[2], p[3], int(mode), s1, h1, aux[t:t + 1], st[0], st[1])
        s_all[t] = s1[0]
        s_prev = s1[0]
    return s_all, h_all, aux, st


def backward(neuron, s, h, aux, weight, s0, states0, params, g_s, g_h_out, g_states, g_s_last, mode: int,
             detach_reset: bool, sur):
    code = surrogate_code(sur)
    mod = _cext.load_extension()
    if code is None or mod is None or h.dtype not in (torch.float32, torch.float64):
        return None
    T = h.shape[0]
    acc = h.dtype
    h = h.contiguous()
    step = h[0]
    w = weight.to(acc)
    p = [_per(q, step) for q in params]
    g_c, g_s_tot, g_h = torch.empty_like(h), torch.empty_like(h), torch.empty_like(h)
    alif = neuron == "alif"
    g_th = torch.empty_like(h) if alif else h.new_empty(0)
    g_as = torch.empty_like(h) if alif else h.new_empty(0)
    carry = [torch.zeros_like(step) if g is None else _per(g, step).clone() for g in g_states]
    g_rec = torch.zeros_like(step) if g_s_last is None else _per(g_s_last, step).clone()
    gs = None if g_s is None else g_s.to(acc).contiguous()
    gho = None if g_h_out is None else g_h_out.to(acc).contiguous()
    dk = DKIND[(int(mode), bool(detach_reset))]
    sid, sp, sc = int(code[0]), float(code[1]), float(code[2])
    a0 = _per(states0[1], step) if alif else None
    for t in range(T - 1, -1, -1):
        if gs is None:
            g_s_tot[t].copy_(g_rec)
        else:
            torch.add(gs[t], g_rec, out=g_s_tot[t])
        sl = slice(t, t + 1)
        gho1 = None if gho is None else gho[sl]
        if neuron == "lif":
            mod.lif_backward(h[sl], g_s_tot[sl], gho1, carry[0], p[0], p[1], dk, sid, sp, sc, g_h[sl])
            g_c[t] = g_h[t]
            torch.mul(p[0], g_h[t], out=carry[0])
        elif neuron == "cubalif":
            mod.cubalif_backward(h[sl], g_s_tot[sl], gho1, carry[1], carry[0], p[0], p[1], p[2], dk, sid, sp, sc,
                                 g_c[sl], g_h[sl])
            torch.mul(p[0], g_c[t], out=carry[0])
            torch.mul(p[1], g_h[t], out=carry[1])
        else:
            a_prev = a0 if t == 0 else aux[t - 1]
            mod.alif_backward(h[sl], aux[sl], a_prev, g_s_tot[sl], gho1, carry[0], carry[1], p[0], p[1], p[2], p[3],
                              int(mode), not bool(detach_reset), sid, sp, sc, g_h[sl], g_th[sl], g_as[sl])
            g_c[t] = g_h[t]
            torch.mul(p[0], g_h[t], out=carry[0])
            torch.addcmul(p[2] * g_as[t], p[3], g_th[t], out=carry[1])
        torch.mm(g_c[t], w, out=g_rec)
    return g_c, g_s_tot, g_h, g_th, g_as
