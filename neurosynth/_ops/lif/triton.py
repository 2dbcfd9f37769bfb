r"""Triton kernels for the LIF / IF operator (CUDA; CPU tensors under the Triton interpreter).

Same contract as the reference backend (``neurosynth/_ops/lif/reference.py``; originally
:func:`neurosynth._cext.lif_forward` / :func:`neurosynth._cext.lif_backward`):

- :func:`lif_forward` ``(x [T, ...], v0, beta, thr, mode) -> (s, h, v_T)``: the whole sequence in one kernel,
  one program per block of neurons, the time loop inside. The membrane is accumulated in float32 (float64 for
  float64 input); ``h`` is stored in ``h_dtype`` (default: x's dtype), spikes in x's dtype.
- :func:`lif_backward` ``(h, g_s, g_h_out, g_v, beta, thr, mode, detach_reset, surrogate) -> g_h``: the whole
  backward (surrogate, reset derivative, reverse-time scan) in one kernel; optionally (``param_grads=True``)
  the same pass also accumulates the per-neuron sums that the gradients of ``beta``, ``thr`` and ``v0`` need.

Arithmetic mirrors the reference op for op (``beta * v`` then ``+ x``, no fused multiply-add:
``enable_fp_fusion=False``; strict ``>``), so float32 spikes are bit-identical to the reference.

What the ops' Triton modules share (:data:`INTERPRET`, :func:`interpret_env`, :func:`usable`,
:func:`block_for`, the kernel preamble :func:`block_offsets` / :func:`load_acc` / :func:`load_or_zero` and the
``@triton.jit`` step helpers :func:`surrogate_grad`, :func:`reset`, :func:`reset_slope`, ...) lives in
:mod:`neurosynth._ops._triton_common` (the first ones are re-exported here).
"""

from __future__ import annotations

import torch

from .._triton_common import (  # noqa: F401 - re-exported: the other ops' modules and tests import them from here
    DKIND,
    INTERPRET,
    MODES,
    _acc,
    _env_interpret,
    block_for,
    block_offsets,
    compute_dtype,
    interpret_env,
    launch_opts,
    load_acc,
    load_or_zero,
    on_device,
    per_neuron,
    reset,
    reset_slope,
    surrogate_code,
    surrogate_grad,
    tl,
    triton,
    usable,
)

if triton is not None:
    with interpret_env():

        @triton.jit
        def _lif_fwd_kernel(x_ptr, v0_ptr, beta_ptr, thr_ptr, s_ptr, h_ptr, v_ptr, T, M,
                            P_STRIDE: tl.constexpr, MODE: tl.constexpr, ACC: tl.constexpr,
                            BLOCK: tl.constexpr):
            offs, mask, poffs = block_offsets(M, P_STRIDE, BLOCK)
            v = load_acc(v0_ptr, offs, mask, ACC)
            beta = load_acc(beta_ptr, poffs, mask, ACC)
            thr = load_acc(thr_ptr, poffs, mask, ACC)
            s_prev = tl.full([BLOCK], 0.0, ACC)
            ptr_off = offs.to(tl.int64)
            # one step of lookahead: the load of x[t+1] is issued before step t computes (latency hiding)
            x_nxt = tl.load(x_ptr + ptr_off, mask=mask, other=0.0)
            for _t in range(T):
                x = x_nxt.to(ACC)
                x_nxt = tl.load(x_ptr + ptr_off + M, mask=mask & (_t + 1 < T), other=0.0)
                bv = beta * v
                h = x + bv
                if MODE == 3:
                    r = thr * s_prev
                    h = h - r
                spk = h > thr
                s = tl.where(spk, 1.0, 0.0).to(ACC)
                tl.store(h_ptr + ptr_off, h.to(h_ptr.dtype.element_ty), mask=mask)
                tl.store(s_ptr + ptr_off, s.to(s_ptr.dtype.element_ty), mask=mask)
                v = reset(h, thr, s, MODE)
                if MODE == 3:
                    s_prev = s
                ptr_off += M
            tl.store(v_ptr + offs, v.to(v_ptr.dtype.element_ty), mask=mask)

        @triton.jit
        def _lif_bwd_kernel(h_ptr, gs_ptr, gho_ptr, gv_ptr, beta_ptr, thr_ptr, v0_ptr, gh_ptr,
                            gbeta_ptr, gthr_ptr, T, M, LAST, sp, sc,
                            P_STRIDE: tl.constexpr, MODE: tl.constexpr, DK: tl.constexpr,
                            SUR: tl.constexpr, HAS_GS: tl.constexpr, HAS_GHO: tl.constexpr,
                            HAS_GV: tl.constexpr, PGRAD: tl.constexpr, GS_FULL: tl.constexpr,
                            GHO_FULL: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
            offs, mask, poffs = block_offsets(M, P_STRIDE, BLOCK)
            beta = load_acc(beta_ptr, poffs, mask, ACC)
            thr = load_acc(thr_ptr, poffs, mask, ACC)
            g_next = load_or_zero(gv_ptr, offs, mask, HAS_GV, ACC, BLOCK)
            one = tl.full([BLOCK], 1.0, ACC)
            f_beta = one  # the last step: g_h[T-1] = a + d * g_v (no beta)
            gb = tl.full([BLOCK], 0.0, ACC)  # sum_t g_h[t] * v[t-1]
            gt = tl.full([BLOCK], 0.0, ACC)  # sum_t dL/dthr (firing and reset uses)
            ptr_off = offs.to(tl.int64) + LAST  # offset of step T-1
            # one step of lookahead (loads of step t-1 issued before step t computes)
            h_nxt = tl.load(h_ptr + ptr_off, mask=mask, other=0.0)
            # g_s / g_h_out: a full [T, ...] tensor (GS_FULL = 1) or one value broadcast everywhere (0: e.g. the
            # expanded ones of `out.sum()`, read without materialising them)
            if HAS_GS:
                gs_nxt = tl.load(gs_ptr + ptr_off * GS_FULL, mask=mask, other=0.0)
            if HAS_GHO:
                gho_nxt = tl.load(gho_ptr + ptr_off * GHO_FULL, mask=mask, other=0.0)
            for _i in range(T):
                more = mask & (_i + 1 < T)
                hh = h_nxt.to(ACC)
                h_nxt = tl.load(h_ptr + ptr_off - M, mask=more, other=0.0)
                sg = surrogate_grad(hh - thr, sp, sc, SUR).to(ACC)
                if HAS_GS:
                    gs = gs_nxt.to(ACC)
                    gs_nxt = tl.load(gs_ptr + (ptr_off - M) * GS_FULL, mask=more, other=0.0)
                    a = gs * sg
                else:
                    gs = tl.full([BLOCK], 0.0, ACC)
                    a = tl.full([BLOCK], 0.0, ACC)
                if HAS_GHO:
                    a = a + gho_nxt.to(ACC)
                    gho_nxt = tl.load(gho_ptr + (ptr_off - M) * GHO_FULL, mask=more, other=0.0)
                spk = hh > thr
                s = tl.where(spk, 1.0, 0.0).to(ACC)
                if DK == 0:
                    d = one
                else:
                    d = reset_slope(hh, thr, sg, s, DK)
                f = d * f_beta
                gh = a + f * g_next
                tl.store(gh_ptr + ptr_off, gh.to(gh_ptr.dtype.element_ty), mask=mask)
                if PGRAD:
                    # g_v_t (the gradient reaching v_t) = f_beta * g_h[t+1]  (g_v at the last step)
                    gvt = f_beta * g_next
                    tgrad = -(gs * sg)
                    if MODE == 0:
                        if DK == 0:
                            tgrad += gvt * (-s)
                        else:
                            tgrad += gvt * (thr * sg - s)
                    elif MODE == 1:
                        if DK == 3:
                            tgrad += gvt * hh * sg
                    gt += tgrad
                    # v_{t-1} from the saved h of the previous step (v0 at t = 0)
                    if _i < T - 1:
                        hp = h_nxt.to(ACC)  # h[t-1], already loaded
                        sprev = tl.where(hp > thr, 1.0, 0.0).to(ACC)
                        vp = reset(hp, thr, sprev, MODE)
                        if MODE == 3:
                            gt += -(gh * sprev)
                    else:
                        vp = load_acc(v0_ptr, offs, mask, ACC)
                    gb += gh * vp
                g_next = gh
                f_beta = beta
                ptr_off -= M
            if PGRAD:
                tl.store(gbeta_ptr + offs, gb, mask=mask)
                tl.store(gthr_ptr + offs, gt, mask=mask)


def _seq_grad(g, like):
    """A gradient w.r.t. a ``[T, ...]`` output for a kernel: ``(tensor, 1)`` contiguous and full, or
    ``(one-element tensor, 0)`` when ``g`` is a single value broadcast to the whole shape (all strides 0, as
    autograd passes ``ones.expand(...)`` for ``out.sum()``), which the kernel then reads without materialising it;
    ``(None, 1)`` for ``None``."""
    if g is None:
        return None, 1
    if g.dim() == like.dim() and g.numel() > 0 and all(st == 0 for st in g.stride()):
        return g.reshape(-1)[:1].contiguous(), 0
    return g.expand_as(like).contiguous(), 1


def lif_forward(x, v0, beta, thr, mode, h_dtype=None, v_dtype=None):
    """``(s [T, ...] in x.dtype, h [T, ...] in h_dtype or x.dtype, v_T [...] in v_dtype or x.dtype)``; ``None``
    when the kernel cannot run on ``x`` (see :func:`usable`). ``mode``: 0..3 or a name of :data:`MODES`."""
    if not usable(x) or x.dim() < 1:
        return None
    mode = MODES[mode] if isinstance(mode, str) else int(mode)
    x = x.contiguous()
    T = x.shape[0]
    step = x[0] if T > 0 else x.new_empty(x.shape[1:])
    M = step.numel()
    s = torch.empty_like(x)
    h = torch.empty(x.shape, dtype=h_dtype or x.dtype, device=x.device)
    v = torch.empty(step.shape, dtype=v_dtype or x.dtype, device=x.device)
    v0c = v0.to(v.dtype).expand_as(step).contiguous()
    if T == 0 or M == 0:
        v.copy_(v0c)
        return s, h, v
    acc = compute_dtype(x.dtype)
    (b, t), ps = per_neuron([beta.to(acc), thr.to(acc)], step)
    BLOCK, warps = block_for(M)
    grid = (triton.cdiv(M, BLOCK),)
    with on_device(x):
        _lif_fwd_kernel[grid](x, v0c, b, t, s, h, v, T, M, P_STRIDE=ps, MODE=mode, ACC=_acc(acc),
                              BLOCK=BLOCK, num_warps=warps, **launch_opts())
    return s, h, v


def lif_backward(h, g_s, g_h_out, g_v, beta, thr, mode, detach_reset, surrogate, *, v0=None,
                 param_grads=False, out_dtype=None):
    """``g_h`` (gradient w.r.t. every pre-reset membrane = w.r.t. the input), in ``out_dtype`` (default h's),
    or ``None`` when the kernel cannot run (device/dtype, or a surrogate that is not built in).

    With ``param_grads=True`` (needs ``v0``) returns ``(g_h, g_beta_n, g_thr_n)``: per-neuron (shape of one
    time step, float32/64) sums over time of the gradients of ``beta`` and ``thr``; the caller reduces them
    over broadcast dimensions. ``g_v0 = beta * g_h[0]`` needs no kernel."""
    code = surrogate_code(surrogate)
    if code is None or not usable(h) or h.dim() < 1:
        return None
    mode = MODES[mode] if isinstance(mode, str) else int(mode)
    h = h.contiguous()
    T = h.shape[0]
    step = h[0] if T > 0 else h.new_empty(h.shape[1:])
    M = step.numel()
    acc_dtype = compute_dtype(h.dtype)
    gh = torch.empty(h.shape, dtype=out_dtype or h.dtype, device=h.device)
    gbeta = torch.zeros(step.shape, dtype=acc_dtype, device=h.device) if param_grads else None
    gthr = torch.zeros(step.shape, dtype=acc_dtype, device=h.device) if param_grads else None
    if T == 0 or M == 0:
        return (gh, gbeta, gthr) if param_grads else gh
    pdt = acc_dtype
    (b, t), ps = per_neuron([beta.to(pdt), thr.to(pdt)], step)

    gs, gs_full = _seq_grad(g_s, h)
    gho, gho_full = _seq_grad(g_h_out, h)
    gv = None if g_v is None else g_v.expand_as(step).contiguous()
    v0c = None
    if param_grads:
        if v0 is None:
            raise ValueError("param_grads=True needs v0")
        v0c = v0.to(pdt).expand_as(step).contiguous()
    dummy = b
    BLOCK, warps = block_for(M)
    grid = (triton.cdiv(M, BLOCK),)
    with on_device(h):
        _lif_bwd_kernel[grid](
            h, gs if gs is not None else dummy, gho if gho is not None else dummy, gv if gv is not None else dummy,
            b, t, v0c if v0c is not None else dummy, gh,
            gbeta if param_grads else dummy, gthr if param_grads else dummy, T, M, (T - 1) * M,
            float(code[1]), float(code[2]),
            P_STRIDE=ps, MODE=mode, DK=DKIND[(mode, bool(detach_reset))], SUR=int(code[0]), HAS_GS=gs is not None,
            HAS_GHO=gho is not None, HAS_GV=gv is not None, PGRAD=bool(param_grads), GS_FULL=gs_full,
            GHO_FULL=gho_full, ACC=_acc(pdt), BLOCK=BLOCK, num_warps=warps, **launch_opts())
    return (gh, gbeta, gthr) if param_grads else gh


# ----------------------------------------------------------------------------------- the operator contract
def available(x: torch.Tensor) -> bool:
    """The dispatcher's question: can :func:`forward` run on ``x``?"""
    return usable(x)


def forward(x, v0, beta, thr, mode: int):
    """``(s in x.dtype, h in acc, v in acc)`` per ``neurosynth/_ops/lif/reference.py``, or ``None``."""
    acc = compute_dtype(x.dtype)
    return lif_forward(x, v0, beta, thr, mode, h_dtype=acc, v_dtype=acc)


def backward(h, g_s, g_h_out, g_v, beta, thr, mode: int, detach_reset: bool, sur):
    """``g_h`` in ``h.dtype`` (acc) per the reference contract, or ``None`` (not a built-in surrogate, device)."""
    return lif_backward(h, g_s, g_h_out, g_v, beta, thr, mode, detach_reset, sur)
