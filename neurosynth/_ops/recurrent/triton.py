r"""Triton implementation of the recurrent layer (contract: ``neurosynth/_ops/recurrent/reference.py``).

Per time step the recurrent GEMM stays in cuBLAS (``F.linear(s_{t-1}, W, b)``, the contract's own call) and the
rest is ONE Triton launch: it adds ``x_t`` (rounded to x's dtype, as ``torch.add``), runs the neuron update on
the state kept in place in float32 buffers, and writes ``s[t]``, ``h[t]`` (and ``i_seq[t]`` / ``a_seq[t]``)
directly into the sequence outputs.
The backward is the reverse scan of the contract with, per step, one Triton launch for the whole elementwise
part (spike-gradient sum ``g_s[t] + g_{c_{t+1}} W``, surrogate, reset derivative, the neuron's carried state
gradients, updated in place) and one ``torch.mm`` for ``g_{c_t} W``. That is 2 launches per step in each
direction, against ~10-20 small ops per step for the reference orchestration (which slices the sequence, calls
the neuron op through the dispatcher on ``[1, B, N]`` and copies the results back).

Arithmetic is the reference's, op for op (same GEMMs, same elementwise order, no FMA), so float32 spikes are
bit-identical to ``reference.py``. Not done (yet): a persistent kernel keeping ``W`` on chip across steps (it
needs a grid-wide barrier per step).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._triton_common import (
    DKIND,
    INTERPRET,
    _acc,
    adapt,
    adaptive_threshold,
    alif_grad_step,
    block_for,
    block_offsets,
    compute_dtype,
    contiguous_as,
    cuba_charge,
    interpret_env,
    launch_opts,
    load_acc,
    membrane_grad,
    on_device,
    per_neuron,
    reset,
    surrogate_code,
    surrogate_grad,
    tl,
    triton,
    usable,
)

__all__ = ["INTERPRET", "available", "backward", "forward", "triton"]

NEURONS = ("lif", "cubalif", "alif")
_KIND = {"lif": 0, "cubalif": 1, "alif": 2}

if triton is not None:
    with interpret_env():

        @triton.jit
        def _rec_fwd_step_kernel(x_ptr, r_ptr, st1_ptr, st2_ptr, p0_ptr, p1_ptr, p2_ptr, p3_ptr, s_ptr, h_ptr,
                                 aux_ptr, sbuf_ptr, M, P_STRIDE: tl.constexpr, KIND: tl.constexpr,
                                 MODE: tl.constexpr, X_BF16: tl.constexpr, ACC: tl.constexpr,
                                 BLOCK: tl.constexpr):
            """One forward step: ``c = x_t + r`` (``r = s_{t-1} W^T + b`` from cuBLAS; the sum rounded to x's
            dtype, as ``torch.add``), then the neuron update with its state in place (lif: st1 = v; cubalif:
            st1 = i, st2 = v; alif: st1 = v, st2 = a); writes s_t, h_t and aux_t (i_t / a_t), and s_t again into
            ``sbuf``, the next step's GEMM operand."""
            offs, mask, poffs = block_offsets(M, P_STRIDE, BLOCK)
            xr = load_acc(x_ptr, offs, mask, ACC) + load_acc(r_ptr, offs, mask, ACC)
            if X_BF16:
                # round to nearest even by hand: the Triton interpreter truncates float32 -> bfloat16 casts
                # (compiled code rounds to nearest even, as torch does); NaN passes through
                bits = xr.to(tl.float32).to(tl.uint32, bitcast=True)
                bits = bits + (0x7FFF + ((bits >> 16) & 1))
                bits = (bits >> 16) << 16
                c = tl.where(xr == xr, bits.to(tl.float32, bitcast=True), xr).to(ACC)
            else:
                c = xr.to(x_ptr.dtype.element_ty).to(ACC)
            if KIND == 1:
                alpha = load_acc(p0_ptr, poffs, mask, ACC)
                beta = load_acc(p1_ptr, poffs, mask, ACC)
                thr = load_acc(p2_ptr, poffs, mask, ACC)
                cur = load_acc(st1_ptr, offs, mask, ACC)
                v = load_acc(st2_ptr, offs, mask, ACC)
                cur, h = cuba_charge(cur, v, c, alpha, beta)
                tl.store(aux_ptr + offs, cur, mask=mask)
                tl.store(st1_ptr + offs, cur, mask=mask)
                th = thr
            else:
                beta = load_acc(p0_ptr, poffs, mask, ACC)
                thr = load_acc(p1_ptr, poffs, mask, ACC)
                v = load_acc(st1_ptr, offs, mask, ACC)
                bv = beta * v
                h = c + bv
                if KIND == 2:
                    rho = load_acc(p2_ptr, poffs, mask, ACC)
                    b = load_acc(p3_ptr, poffs, mask, ACC)
                    ad = load_acc(st2_ptr, offs, mask, ACC)
                    th = adaptive_threshold(thr, b, ad)
                else:
                    th = thr
            s = tl.where(h > th, 1.0, 0.0).to(ACC)
            tl.store(h_ptr + offs, h.to(h_ptr.dtype.element_ty), mask=mask)
            tl.store(s_ptr + offs, s.to(s_ptr.dtype.element_ty), mask=mask)
            tl.store(sbuf_ptr + offs, s.to(sbuf_ptr.dtype.element_ty), mask=mask)
            v = reset(h, th, s, MODE)
            if KIND == 1:
                tl.store(st2_ptr + offs, v, mask=mask)
            else:
                tl.store(st1_ptr + offs, v, mask=mask)
            if KIND == 2:
                ad = adapt(ad, s, rho)
                tl.store(aux_ptr + offs, ad, mask=mask)
                tl.store(st2_ptr + offs, ad, mask=mask)

        @triton.jit
        def _rec_bwd_step_kernel(grec_ptr, gs_ptr, h_ptr, gho_ptr, aprev_ptr, c1_ptr, c2_ptr, p0_ptr, p1_ptr,
                                 p2_ptr, p3_ptr, gstot_ptr, gh_ptr, gc_ptr, gth_ptr, gas_ptr, M, sp, sc,
                                 P_STRIDE: tl.constexpr, KIND: tl.constexpr, MODE: tl.constexpr,
                                 DK: tl.constexpr, DETACH: tl.constexpr, SUR: tl.constexpr,
                                 HAS_GS: tl.constexpr, HAS_GHO: tl.constexpr, ACC: tl.constexpr,
                                 BLOCK: tl.constexpr):
            """One step of the reverse scan. ``c1``/``c2``: the carried state gradients, updated in place
            (lif: c1 = G^v; cubalif: c1 = G^i, c2 = G^v; alif: c1 = G^v, c2 = G^a). Parameters p0..p3:
            lif (beta, thr); cubalif (alpha, beta, thr); alif (beta, thr, rho, b)."""
            offs, mask, poffs = block_offsets(M, P_STRIDE, BLOCK)
            gs = load_acc(grec_ptr, offs, mask, ACC)
            if HAS_GS:
                gs = gs + load_acc(gs_ptr, offs, mask, ACC)
            tl.store(gstot_ptr + offs, gs.to(gstot_ptr.dtype.element_ty), mask=mask)
            hh = load_acc(h_ptr, offs, mask, ACC)
            if KIND == 0:
                beta = load_acc(p0_ptr, poffs, mask, ACC)
                thr = load_acc(p1_ptr, poffs, mask, ACC)
                gv = load_acc(c1_ptr, offs, mask, ACC)
            elif KIND == 1:
                alpha = load_acc(p0_ptr, poffs, mask, ACC)
                beta = load_acc(p1_ptr, poffs, mask, ACC)
                thr = load_acc(p2_ptr, poffs, mask, ACC)
                gi = load_acc(c1_ptr, offs, mask, ACC)
                gv = load_acc(c2_ptr, offs, mask, ACC)
            else:
                beta = load_acc(p0_ptr, poffs, mask, ACC)
                thr = load_acc(p1_ptr, poffs, mask, ACC)
                rho = load_acc(p2_ptr, poffs, mask, ACC)
                b = load_acc(p3_ptr, poffs, mask, ACC)
                gv = load_acc(c1_ptr, offs, mask, ACC)
                ga = load_acc(c2_ptr, offs, mask, ACC)
            if KIND == 2:
                a_prev = load_acc(aprev_ptr, offs, mask, ACC)
                th = adaptive_threshold(thr, b, a_prev)
                sg = surrogate_grad(hh - th, sp, sc, SUR).to(ACC)
                s = tl.where(hh > th, 1.0, 0.0).to(ACC)
                gsum = gs + ga
                if HAS_GHO:
                    gho = load_acc(gho_ptr, offs, mask, ACC)
                else:
                    gho = gsum  # not read
                gh, gth = alif_grad_step(hh, th, sg, s, gsum, gv, gho, MODE, DETACH, HAS_GHO)
                tl.store(gh_ptr + offs, gh.to(gh_ptr.dtype.element_ty), mask=mask)
                tl.store(gc_ptr + offs, gh.to(gc_ptr.dtype.element_ty), mask=mask)
                tl.store(gth_ptr + offs, gth.to(gth_ptr.dtype.element_ty), mask=mask)
                tl.store(gas_ptr + offs, ga.to(gas_ptr.dtype.element_ty), mask=mask)
                tl.store(c1_ptr + offs, beta * gh, mask=mask)
                tl.store(c2_ptr + offs, rho * ga + b * gth, mask=mask)
            else:
                sg = surrogate_grad(hh - thr, sp, sc, SUR).to(ACC)
                a = gs * sg
                if HAS_GHO:
                    a = a + load_acc(gho_ptr, offs, mask, ACC)
                gh = membrane_grad(a, hh, thr, sg, gv, DK, ACC)
                tl.store(gh_ptr + offs, gh.to(gh_ptr.dtype.element_ty), mask=mask)
                if KIND == 0:
                    tl.store(gc_ptr + offs, gh.to(gc_ptr.dtype.element_ty), mask=mask)
                    tl.store(c1_ptr + offs, beta * gh, mask=mask)
                else:
                    gx = gh + gi
                    tl.store(gc_ptr + offs, gx.to(gc_ptr.dtype.element_ty), mask=mask)
                    tl.store(c1_ptr + offs, alpha * gx, mask=mask)
                    tl.store(c2_ptr + offs, beta * gh, mask=mask)


def available(x: torch.Tensor) -> bool:
    return usable(x)


def forward(neuron, x, weight, bias, s0, states0, params, mode: int):
    """``(s, h, aux, states)`` per the reference contract, or ``None`` when these tensors are not for Triton."""
    if neuron not in NEURONS or not usable(x) or x.dim() != 3 or int(mode) not in (0, 1, 2):
        return None
    T, B, N = x.shape
    M = B * N
    acc = compute_dtype(x.dtype)
    dev = x.device
    w = weight.to(x.dtype)
    b = None if bias is None else bias.to(x.dtype)
    x = x.contiguous()
    s_all = torch.empty_like(x)
    h_all = torch.empty(x.shape, dtype=acc, device=dev)
    aux = torch.empty(x.shape if neuron != "lif" else (0,), dtype=acc, device=dev)
    states = [st.to(acc).expand(B, N).contiguous().clone() for st in states0]
    if T == 0 or M == 0:
        return s_all, h_all, aux, states
    ps, stride = per_neuron([p.to(acc) for p in params], states[0])
    while len(ps) < 4:
        ps.append(ps[0])
    st1, st2 = states[0], states[-1]
    s_prev = s0.to(x.dtype).expand(B, N).contiguous()
    # the GEMM operand of the next step: one freshly allocated (aligned) buffer rather than the view s_all[t],
    # because GEMMs may round differently for differently aligned operands (the reference multiplies fresh
    # tensors). Stream order makes reusing it safe: step t+1's GEMM reads it before step t+1's kernel writes it.
    s_buf = torch.empty((B, N), dtype=x.dtype, device=dev)
    BLOCK, warps = block_for(M)
    grid = (triton.cdiv(M, BLOCK),)
    opts = dict(P_STRIDE=stride, KIND=_KIND[neuron], MODE=int(mode), X_BF16=x.dtype == torch.bfloat16,
                ACC=_acc(acc), BLOCK=BLOCK, num_warps=warps, **launch_opts())
    with on_device(x):
        for t in range(T):
            # the contract's arithmetic: c = x[t] + F.linear(s_prev, w, b) (the GEMM stays in cuBLAS)
            rec = F.linear(s_prev, w, b)
            _rec_fwd_step_kernel[grid](x[t], rec, st1, st2, ps[0], ps[1], ps[2], ps[3], s_all[t], h_all[t],
                                       aux[t] if neuron != "lif" else h_all[t], s_buf, M, **opts)
            s_prev = s_buf
    return s_all, h_all, aux, states


def backward(neuron, s, h, aux, weight, s0, states0, params, g_s, g_h_out, g_states, g_s_last, mode: int,
             detach_reset: bool, sur):
    """``(g_c, g_s_tot, g_h, g_theta, g_a_seq)`` per the reference contract, or ``None``."""
    code = surrogate_code(sur)
    if code is None or neuron not in NEURONS or not usable(h) or h.dim() != 3 or int(mode) not in (0, 1, 2):
        return None
    T, B, N = h.shape
    M = B * N
    acc = h.dtype
    dev = h.device
    w = weight.to(acc)
    g_c = torch.empty_like(h)
    g_s_tot = torch.empty_like(h)
    g_h = torch.empty_like(h)
    alif = neuron == "alif"
    g_th = torch.empty_like(h) if alif else torch.empty(0, dtype=acc, device=dev)
    g_as = torch.empty_like(h) if alif else torch.empty(0, dtype=acc, device=dev)
    if T == 0 or M == 0:
        return g_c, g_s_tot, g_h, g_th, g_as
    # carried state gradients (contract order = states order), updated in place by the kernel
    carry = [torch.zeros((B, N), dtype=acc, device=dev) if g is None else g.to(acc).expand(B, N).contiguous().clone()
             for g in g_states]
    c1, c2 = carry[0], carry[1] if len(carry) > 1 else carry[0]
    g_rec = (torch.zeros((B, N), dtype=acc, device=dev) if g_s_last is None
             else g_s_last.to(acc).expand(B, N).contiguous().clone())
    ps, stride = per_neuron([p.to(acc) for p in params], carry[0])
    while len(ps) < 4:
        ps.append(ps[0])
    gs_all, gho_all = contiguous_as(g_s, h.shape), contiguous_as(g_h_out, h.shape)
    a0 = states0[1].to(acc).expand(B, N).contiguous() if alif else None
    BLOCK, warps = block_for(M)
    grid = (triton.cdiv(M, BLOCK),)
    opts = dict(P_STRIDE=stride, KIND=_KIND[neuron], MODE=int(mode), DK=DKIND[(int(mode), bool(detach_reset))],
                DETACH=bool(detach_reset), SUR=int(code[0]), HAS_GS=gs_all is not None,
                HAS_GHO=gho_all is not None, ACC=_acc(acc), BLOCK=BLOCK, num_warps=warps, **launch_opts())
    with on_device(h):
        for t in range(T - 1, -1, -1):
            a_prev = (a0 if t == 0 else aux[t - 1]) if alif else h[t]
            _rec_bwd_step_kernel[grid](
                g_rec, gs_all[t] if gs_all is not None else h[t], h[t], gho_all[t] if gho_all is not None else h[t],
                a_prev, c1, c2, ps[0], ps[1], ps[2], ps[3], g_s_tot[t], g_h[t], g_c[t],
                g_th[t] if alif else h[t], g_as[t] if alif else h[t], M, float(code[1]), float(code[2]), **opts)
            if t > 0:
                torch.mm(g_c[t], w, out=g_rec)
    return g_c, g_s_tot, g_h, g_th, g_as
