r"""Triton kernels for the CubaLIF operator (contract: ``neurosynth/_ops/cubalif/reference.py``).

Forward: the whole sequence in one kernel, one program per block of neurons, the time loop inside, both states
(current ``i`` and membrane ``v``) in registers (float32, float64 for float64 input). Backward: one reverse-time
pass computing ``g_x`` (and ``g_h`` when asked) with the surrogate and reset derivative inline.
Arithmetic order as the reference (``alpha * i`` then ``+ x``; ``beta * v`` then ``+ i``; no FMA), so float32
spikes are bit-identical. Interpreter/CUDA selection: see :mod:`neurosynth._ops.lif.triton`.
"""

from __future__ import annotations

import torch

from .._triton_common import (
    DKIND,
    _acc,
    block_for,
    block_offsets,
    compute_dtype,
    contiguous_as,
    cuba_charge,
    interpret_env,
    launch_opts,
    load_acc,
    load_or_zero,
    membrane_grad,
    numel,
    on_device,
    per_neuron,
    reset,
    surrogate_code,
    surrogate_grad,
    tl,
    triton,
    usable,
)

if triton is not None:
    with interpret_env():

        @triton.jit
        def _cuba_fwd_kernel(x_ptr, i0_ptr, v0_ptr, alpha_ptr, beta_ptr, thr_ptr, s_ptr, h_ptr, iseq_ptr,
                             i_ptr, v_ptr, T, M, P_STRIDE: tl.constexpr, MODE: tl.constexpr,
                             SAVE_I: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
            offs, mask, poffs = block_offsets(M, P_STRIDE, BLOCK)
            cur = load_acc(i0_ptr, offs, mask, ACC)
            v = load_acc(v0_ptr, offs, mask, ACC)
            alpha = load_acc(alpha_ptr, poffs, mask, ACC)
            beta = load_acc(beta_ptr, poffs, mask, ACC)
            thr = load_acc(thr_ptr, poffs, mask, ACC)
            ptr_off = offs.to(tl.int64)
            x_nxt = tl.load(x_ptr + ptr_off, mask=mask, other=0.0)  # one step of lookahead
            for _t in range(T):
                x = x_nxt.to(ACC)
                x_nxt = tl.load(x_ptr + ptr_off + M, mask=mask & (_t + 1 < T), other=0.0)
                cur, h = cuba_charge(cur, v, x, alpha, beta)
                if SAVE_I:
                    tl.store(iseq_ptr + ptr_off, cur.to(iseq_ptr.dtype.element_ty), mask=mask)
                s = tl.where(h > thr, 1.0, 0.0).to(ACC)
                tl.store(h_ptr + ptr_off, h.to(h_ptr.dtype.element_ty), mask=mask)
                tl.store(s_ptr + ptr_off, s.to(s_ptr.dtype.element_ty), mask=mask)
                v = reset(h, thr, s, MODE)
                ptr_off += M
            tl.store(i_ptr + offs, cur.to(i_ptr.dtype.element_ty), mask=mask)
            tl.store(v_ptr + offs, v.to(v_ptr.dtype.element_ty), mask=mask)

        @triton.jit
        def _cuba_bwd_kernel(h_ptr, gs_ptr, gho_ptr, gv_ptr, gi_ptr, alpha_ptr, beta_ptr, thr_ptr, gx_ptr, gh_ptr,
                             M, T, LAST, sp, sc, P_STRIDE: tl.constexpr, DK: tl.constexpr, SUR: tl.constexpr,
                             HAS_GS: tl.constexpr, HAS_GHO: tl.constexpr, HAS_GV: tl.constexpr,
                             HAS_GI: tl.constexpr, NEED_GH: tl.constexpr, ACC: tl.constexpr,
                             BLOCK: tl.constexpr):
            offs, mask, poffs = block_offsets(M, P_STRIDE, BLOCK)
            alpha = load_acc(alpha_ptr, poffs, mask, ACC)
            beta = load_acc(beta_ptr, poffs, mask, ACC)
            thr = load_acc(thr_ptr, poffs, mask, ACC)
            gv = load_or_zero(gv_ptr, offs, mask, HAS_GV, ACC, BLOCK)
            gi = load_or_zero(gi_ptr, offs, mask, HAS_GI, ACC, BLOCK)
            ptr_off = offs.to(tl.int64) + LAST
            h_nxt = tl.load(h_ptr + ptr_off, mask=mask, other=0.0)  # one step of lookahead
            if HAS_GS:
                gs_nxt = tl.load(gs_ptr + ptr_off, mask=mask, other=0.0)
            if HAS_GHO:
                gho_nxt = tl.load(gho_ptr + ptr_off, mask=mask, other=0.0)
            for _i in range(T):
                more = mask & (_i + 1 < T)
                hh = h_nxt.to(ACC)
                h_nxt = tl.load(h_ptr + ptr_off - M, mask=more, other=0.0)
                sg = surrogate_grad(hh - thr, sp, sc, SUR).to(ACC)
                if HAS_GS:
                    a = gs_nxt.to(ACC) * sg
                    gs_nxt = tl.load(gs_ptr + ptr_off - M, mask=more, other=0.0)
                else:
                    a = tl.full([BLOCK], 0.0, ACC)
                if HAS_GHO:
                    a = a + gho_nxt.to(ACC)
                    gho_nxt = tl.load(gho_ptr + ptr_off - M, mask=more, other=0.0)
                gh = membrane_grad(a, hh, thr, sg, gv, DK, ACC)
                gx = gh + gi
                tl.store(gx_ptr + ptr_off, gx.to(gx_ptr.dtype.element_ty), mask=mask)
                if NEED_GH:
                    tl.store(gh_ptr + ptr_off, gh.to(gh_ptr.dtype.element_ty), mask=mask)
                gv = beta * gh
                gi = alpha * gx
                ptr_off -= M


def available(x: torch.Tensor) -> bool:
    return usable(x)


def forward(x, i0, v0, alpha, beta, thr, mode: int, save_i: bool):
    """``(s in x.dtype, h, i_seq (empty unless save_i), i, v)`` (acc dtype), or ``None`` when not usable."""
    if not usable(x) or x.dim() < 1:
        return None
    acc = compute_dtype(x.dtype)
    x = x.contiguous()
    T = x.shape[0]
    shape = x.shape[1:]
    M = numel(shape)
    dev = x.device
    s = torch.empty(x.shape, dtype=x.dtype, device=dev)
    h = torch.empty(x.shape, dtype=acc, device=dev)
    i_seq = torch.empty(x.shape if save_i else (0,), dtype=acc, device=dev)
    i = i0.to(acc).expand(shape).contiguous().clone()
    v = v0.to(acc).expand(shape).contiguous().clone()
    if T == 0 or M == 0:
        return s, h, i_seq, i, v
    step = torch.empty(shape, dtype=acc, device=dev)
    (a_, b_, t_), ps = per_neuron([alpha.to(acc), beta.to(acc), thr.to(acc)], step)
    BLOCK, warps = block_for(M)
    with on_device(x):
        _cuba_fwd_kernel[(triton.cdiv(M, BLOCK),)](
            x, i, v, a_, b_, t_, s, h, i_seq if save_i else h, i, v, T, M, P_STRIDE=ps, MODE=int(mode),
            SAVE_I=bool(save_i), ACC=_acc(acc), BLOCK=BLOCK, num_warps=warps, **launch_opts())
    return s, h, i_seq, i, v


def backward(h, g_s, g_h_out, g_v, g_i, alpha, beta, thr, mode: int, detach_reset: bool, sur, need_gh: bool):
    """``(g_x, g_h or empty)`` in ``h.dtype`` (acc), or ``None`` (not a built-in surrogate, device)."""
    code = surrogate_code(sur)
    if code is None or not usable(h) or h.dim() < 1:
        return None
    acc = h.dtype
    h = h.contiguous()
    T = h.shape[0]
    shape = h.shape[1:]
    M = numel(shape)
    dev = h.device
    g_x = torch.empty(h.shape, dtype=acc, device=dev)
    g_h = torch.empty(h.shape if need_gh else (0,), dtype=acc, device=dev)
    if T == 0 or M == 0:
        return g_x, g_h
    step = torch.empty(shape, dtype=acc, device=dev)
    (a_, b_, t_), ps = per_neuron([alpha.to(acc), beta.to(acc), thr.to(acc)], step)
    gs, gho = contiguous_as(g_s, h.shape), contiguous_as(g_h_out, h.shape)
    gv, gi = contiguous_as(g_v, shape), contiguous_as(g_i, shape)
    BLOCK, warps = block_for(M)
    with on_device(h):
        _cuba_bwd_kernel[(triton.cdiv(M, BLOCK),)](
            h, gs if gs is not None else h, gho if gho is not None else h, gv if gv is not None else step,
            gi if gi is not None else step, a_, b_, t_, g_x, g_h if need_gh else g_x, M, T, (T - 1) * M,
            float(code[1]), float(code[2]), P_STRIDE=ps, DK=DKIND[(int(mode), bool(detach_reset))], SUR=int(code[0]),
            HAS_GS=gs is not None, HAS_GHO=gho is not None, HAS_GV=gv is not None, HAS_GI=gi is not None,
            NEED_GH=bool(need_gh), ACC=_acc(acc), BLOCK=BLOCK, num_warps=warps, **launch_opts())
    return g_x, g_h
