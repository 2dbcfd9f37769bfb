r"""Triton kernels for the ALIF operator (contract: ``neurosynth/_ops/alif/reference.py``).

Forward: the whole sequence in one kernel (membrane ``v`` and adaptation ``a`` in registers, float32 or float64),
one program per block of neurons. Backward: one reverse-time pass carrying :math:`G^v` and :math:`G^a` in
registers; ``a_{t-1}`` is read back from the saved ``a_seq`` (``a0`` at ``t = 0``) and the threshold
:math:`\theta_t` and spike are recomputed from it. Arithmetic order as the reference (``beta * v`` then ``+ x``;
``b * a`` then ``thr + ...``; ``rho * a`` then ``+ s``; no FMA), so float32 spikes are bit-identical.
Interpreter/CUDA selection: see :mod:`neurosynth._ops.lif.triton`.
"""

from __future__ import annotations

import torch

from .._triton_common import (
    _acc,
    adapt,
    adaptive_threshold,
    alif_grad_step,
    block_for,
    block_offsets,
    compute_dtype,
    contiguous_as,
    interpret_env,
    launch_opts,
    load_acc,
    load_or_zero,
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
        def _alif_fwd_kernel(x_ptr, v0_ptr, a0_ptr, beta_ptr, thr_ptr, rho_ptr, b_ptr, s_ptr, h_ptr, aseq_ptr,
                             v_ptr, a_ptr, T, M, P_STRIDE: tl.constexpr, MODE: tl.constexpr, ACC: tl.constexpr,
                             BLOCK: tl.constexpr):
            offs, mask, poffs = block_offsets(M, P_STRIDE, BLOCK)
            v = load_acc(v0_ptr, offs, mask, ACC)
            ad = load_acc(a0_ptr, offs, mask, ACC)
            beta = load_acc(beta_ptr, poffs, mask, ACC)
            thr = load_acc(thr_ptr, poffs, mask, ACC)
            rho = load_acc(rho_ptr, poffs, mask, ACC)
            b = load_acc(b_ptr, poffs, mask, ACC)
            ptr_off = offs.to(tl.int64)
            x_nxt = tl.load(x_ptr + ptr_off, mask=mask, other=0.0)  # one step of lookahead
            for _t in range(T):
                x = x_nxt.to(ACC)
                x_nxt = tl.load(x_ptr + ptr_off + M, mask=mask & (_t + 1 < T), other=0.0)
                bv = beta * v
                h = x + bv
                th = adaptive_threshold(thr, b, ad)
                s = tl.where(h > th, 1.0, 0.0).to(ACC)
                tl.store(h_ptr + ptr_off, h.to(h_ptr.dtype.element_ty), mask=mask)
                tl.store(s_ptr + ptr_off, s.to(s_ptr.dtype.element_ty), mask=mask)
                v = reset(h, th, s, MODE)
                ad = adapt(ad, s, rho)
                tl.store(aseq_ptr + ptr_off, ad.to(aseq_ptr.dtype.element_ty), mask=mask)
                ptr_off += M
            tl.store(v_ptr + offs, v.to(v_ptr.dtype.element_ty), mask=mask)
            tl.store(a_ptr + offs, ad.to(a_ptr.dtype.element_ty), mask=mask)

        @triton.jit
        def _alif_bwd_kernel(h_ptr, aseq_ptr, a0_ptr, gs_ptr, gho_ptr, gv_ptr, ga_ptr, beta_ptr, thr_ptr, rho_ptr,
                             b_ptr, gh_ptr, gth_ptr, gas_ptr, M, T, LAST, sp, sc, P_STRIDE: tl.constexpr,
                             MODE: tl.constexpr, DETACH: tl.constexpr, SUR: tl.constexpr,
                             HAS_GS: tl.constexpr, HAS_GHO: tl.constexpr, HAS_GV: tl.constexpr,
                             HAS_GA: tl.constexpr, NEED_PARAM: tl.constexpr, ACC: tl.constexpr,
                             BLOCK: tl.constexpr):
            offs, mask, poffs = block_offsets(M, P_STRIDE, BLOCK)
            beta = load_acc(beta_ptr, poffs, mask, ACC)
            thr = load_acc(thr_ptr, poffs, mask, ACC)
            rho = load_acc(rho_ptr, poffs, mask, ACC)
            b = load_acc(b_ptr, poffs, mask, ACC)
            a_init = load_acc(a0_ptr, offs, mask, ACC)
            gv = load_or_zero(gv_ptr, offs, mask, HAS_GV, ACC, BLOCK)
            ga = load_or_zero(ga_ptr, offs, mask, HAS_GA, ACC, BLOCK)
            ptr_off = offs.to(tl.int64) + LAST
            # one step of lookahead; a_{t-1} is the saved a_seq of the previous step, a0 at t = 0
            h_nxt = tl.load(h_ptr + ptr_off, mask=mask, other=0.0)
            ap_nxt = tl.load(aseq_ptr + ptr_off - M, mask=mask & (T > 1), other=0.0)
            if HAS_GS:
                gs_nxt = tl.load(gs_ptr + ptr_off, mask=mask, other=0.0)
            if HAS_GHO:
                gho_nxt = tl.load(gho_ptr + ptr_off, mask=mask, other=0.0)
            for _i in range(T):
                more = mask & (_i + 1 < T)
                hh = h_nxt.to(ACC)
                h_nxt = tl.load(h_ptr + ptr_off - M, mask=more, other=0.0)
                a_prev = tl.where(_i < T - 1, ap_nxt.to(ACC), a_init)
                ap_nxt = tl.load(aseq_ptr + ptr_off - 2 * M, mask=mask & (_i + 2 < T), other=0.0)
                th = adaptive_threshold(thr, b, a_prev)
                sg = surrogate_grad(hh - th, sp, sc, SUR).to(ACC)
                s = tl.where(hh > th, 1.0, 0.0).to(ACC)
                if HAS_GS:
                    gsum = gs_nxt.to(ACC) + ga
                    gs_nxt = tl.load(gs_ptr + ptr_off - M, mask=more, other=0.0)
                else:
                    gsum = ga
                if HAS_GHO:
                    gho = gho_nxt.to(ACC)
                    gho_nxt = tl.load(gho_ptr + ptr_off - M, mask=more, other=0.0)
                else:
                    gho = gsum  # not read
                gh, gth = alif_grad_step(hh, th, sg, s, gsum, gv, gho, MODE, DETACH, HAS_GHO)
                tl.store(gh_ptr + ptr_off, gh.to(gh_ptr.dtype.element_ty), mask=mask)
                if NEED_PARAM:
                    tl.store(gth_ptr + ptr_off, gth.to(gth_ptr.dtype.element_ty), mask=mask)
                    tl.store(gas_ptr + ptr_off, ga.to(gas_ptr.dtype.element_ty), mask=mask)
                gv = beta * gh
                ga = rho * ga + b * gth
                ptr_off -= M


def available(x: torch.Tensor) -> bool:
    return usable(x)


def forward(x, v0, a0, beta, thr, rho, b, mode: int):
    """``(s in x.dtype, h, a_seq, v, a)`` (acc dtype) per the reference contract, or ``None`` when not usable."""
    if not usable(x) or x.dim() < 1:
        return None
    acc = compute_dtype(x.dtype)
    x = x.contiguous()
    T, shape, dev = x.shape[0], x.shape[1:], x.device
    M = numel(shape)
    s = torch.empty(x.shape, dtype=x.dtype, device=dev)
    h = torch.empty(x.shape, dtype=acc, device=dev)
    a_seq = torch.empty(x.shape, dtype=acc, device=dev)
    v = v0.to(acc).expand(shape).contiguous().clone()
    a = a0.to(acc).expand(shape).contiguous().clone()
    if T == 0 or M == 0:
        return s, h, a_seq, v, a
    step = torch.empty(shape, dtype=acc, device=dev)
    (b_, t_, r_, k_), ps = per_neuron([beta.to(acc), thr.to(acc), rho.to(acc), b.to(acc)], step)
    BLOCK, warps = block_for(M)
    with on_device(x):
        _alif_fwd_kernel[(triton.cdiv(M, BLOCK),)](
            x, v, a, b_, t_, r_, k_, s, h, a_seq, v, a, T, M, P_STRIDE=ps, MODE=int(mode), ACC=_acc(acc),
            BLOCK=BLOCK, num_warps=warps, **launch_opts())
    return s, h, a_seq, v, a


def backward(h, a_seq, a0, g_s, g_h_out, g_v, g_a, beta, thr, rho, b, mode: int, detach_reset: bool, sur,
             need_param: bool):
    """``(g_h, g_theta, g_a_seq)`` (the last two empty unless ``need_param``) in acc, or ``None``."""
    code = surrogate_code(sur)
    if code is None or not usable(h) or h.dim() < 1:
        return None
    acc = h.dtype
    h = h.contiguous()
    a_seq = a_seq.to(acc).contiguous()
    T, shape, dev = h.shape[0], h.shape[1:], h.device
    M = numel(shape)
    g_h = torch.empty(h.shape, dtype=acc, device=dev)
    g_th = torch.empty(h.shape if need_param else (0,), dtype=acc, device=dev)
    g_as = torch.empty(h.shape if need_param else (0,), dtype=acc, device=dev)
    if T == 0 or M == 0:
        return g_h, g_th, g_as
    step = torch.empty(shape, dtype=acc, device=dev)
    (b_, t_, r_, k_), ps = per_neuron([beta.to(acc), thr.to(acc), rho.to(acc), b.to(acc)], step)
    a0c = a0.to(acc).expand(shape).contiguous()
    gs, gho = contiguous_as(g_s, h.shape), contiguous_as(g_h_out, h.shape)
    gv, ga = contiguous_as(g_v, shape), contiguous_as(g_a, shape)
    BLOCK, warps = block_for(M)
    with on_device(h):
        _alif_bwd_kernel[(triton.cdiv(M, BLOCK),)](
            h, a_seq, a0c, gs if gs is not None else h, gho if gho is not None else h, gv if gv is not None else step,
            ga if ga is not None else step, b_, t_, r_, k_, g_h, g_th if need_param else g_h,
            g_as if need_param else g_h, M, T, (T - 1) * M, float(code[1]), float(code[2]), P_STRIDE=ps,
            MODE=int(mode), DETACH=bool(detach_reset), SUR=int(code[0]), HAS_GS=gs is not None,
            HAS_GHO=gho is not None, HAS_GV=gv is not None, HAS_GA=ga is not None, NEED_PARAM=bool(need_param),
            ACC=_acc(acc), BLOCK=BLOCK, num_warps=warps, **launch_opts())
    return g_h, g_th, g_as
