r"""The multi-step engine: the one place that iterates over time.

Two backends run a neuron layer over a whole ``[T, B, ...]`` sequence:

- ``python``: :func:`scan`, a readable loop over the neuron's pure ``step`` function, differentiated by
  autograd. It runs every neuron (built-in and custom) and is the reference.
- ``fused``: :class:`FusedLIF`, one ``autograd.Function`` for the whole sequence of a LIF/IF layer. The forward
  recurrence is a tight loop (a C++ kernel from :mod:`neurosynth._cext` when it compiles, else a pure-torch
  loop of ``out=`` ops); it saves only the pre-reset membrane ``h`` and the backward is a reverse-time scan.
  With the C++ kernel and a built-in surrogate the whole backward (surrogate, reset derivative, scan) is one
  pass over ``h``; otherwise the surrogate is evaluated by torch and the scan runs in C++ or torch. Both paths
  give spikes bit-identical to the ``python`` backend (no fused multiply-add anywhere) and gradients equal to
  its within float rounding (tests/core/test_fused.py).

LIF dynamics (per element, ``mode`` selects the reset):

.. math::
    h_t = \beta v_{t-1} + x_t \;[-\ \vartheta s_{t-1}\ \text{if delayed subtract}],\quad
    s_t = \Theta(h_t - \vartheta),\quad
    v_t = h_t - \vartheta s_t \;|\; h_t (1 - s_t) \;|\; h_t .

Backward, with :math:`a_t = g_{s_t}\,\sigma'(h_t-\vartheta)` and :math:`d_t = \partial v_t/\partial h_t`:
:math:`g_{h_t} = a_t + d_t\,\beta\,g_{h_{t+1}}`, :math:`g_{x_t} = g_{h_t}`,
:math:`g_\beta = \sum_t g_{h_t} v_{t-1}`, and :math:`g_\vartheta` from the threshold's uses in firing and reset.
"""

from __future__ import annotations

import torch

MODES = {"subtract": 0, "zero": 1, "none": 2, "subtract_delayed": 3}


def scan(neuron, x: torch.Tensor, state, params):
    """Reference backend: loop ``neuron.step`` over time. Returns ``(out [T,...], state, trace [T,...])``.

    ``out`` is the spike train (or the membrane for non-spiking neurons); ``trace`` is the pre-reset
    membrane ``h``.
    """
    outs, trace = [], []
    for t in range(x.shape[0]):
        out, state, h = neuron.step(x[t], state, params)
        outs.append(out)
        trace.append(h)
    return torch.stack(outs), state, torch.stack(trace)


def _reduce_to(grad: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Sum ``grad`` over the dimensions along which ``like`` was broadcast."""
    if grad.shape == like.shape:
        return grad
    while grad.dim() > like.dim():
        grad = grad.sum(0)
    for i, n in enumerate(like.shape):
        if n == 1 and grad.shape[i] != 1:
            grad = grad.sum(i, keepdim=True)
    return grad.reshape(like.shape)


def _forward_torch(x, v0, beta, thr, mode):
    """Pure-torch forward recurrence (any device). Every op writes into preallocated storage (``out=``).

    The arithmetic is the reference step's, op for op (``beta * v`` then ``+ x``, no fused multiply-add), so
    spikes are bit-identical to the ``python`` backend and to the C++ kernel. Products with a spike
    (0 or 1) are exact, so ``addcmul(h, thr, s, value=-1)`` equals ``h - thr * s`` bit for bit.
    """
    T = x.shape[0]
    h_all = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    s_all = torch.empty_like(h_all)
    tmp = torch.empty_like(h_all[0])
    vbuf = torch.empty_like(h_all[0]) if mode in (0, 1) else None
    v = v0
    for t in range(T):
        h = h_all[t]
        s = s_all[t]
        torch.mul(beta, v, out=tmp)
        torch.add(x[t], tmp, out=h)
        if mode == 3 and t > 0:
            torch.addcmul(h, thr, s_all[t - 1], value=-1, out=h)
        torch.gt(h, thr, out=s)
        if mode == 0:
            v = torch.addcmul(h, thr, s, value=-1, out=vbuf)
        elif mode == 1:
            torch.le(h, thr, out=tmp)  # 1 - s
            v = torch.mul(h, tmp, out=vbuf)
        else:
            v = h
    if mode in (2, 3) or T == 0:
        v = v.clone()
    return s_all, h_all, v


def _reverse_scan_torch(a, m, d, g_v, g_h):
    """Pure-torch reverse scan into ``g_h`` (same contract as :func:`neurosynth._cext.reverse_scan`)."""
    T = a.shape[0]
    step_m = m.dim() == a.dim()
    if g_v is None:
        g_h[T - 1].copy_(a[T - 1])
    elif d is None:
        torch.add(a[T - 1], g_v, out=g_h[T - 1])
    else:
        torch.addcmul(a[T - 1], d[T - 1] if d.dim() == a.dim() else d, g_v, out=g_h[T - 1])
    for t in range(T - 2, -1, -1):
        torch.addcmul(a[t], m[t] if step_m else m, g_h[t + 1], out=g_h[t])


def _prev_v(h_all, s_all, v0, thr, mode):
    """v_{t-1} for every t (v_{-1} = v0), recomputed from the saved h."""
    if mode == 0:
        v = h_all - thr * s_all
    elif mode == 1:
        v = h_all * (1 - s_all)
    else:
        v = h_all
    return torch.cat([v0.unsqueeze(0), v[:-1]], 0)


class FusedLIF(torch.autograd.Function):
    """Whole-sequence LIF with a hand-written reverse-time backward (see module docstring)."""

    @staticmethod
    def forward(ctx, x, v0, beta, thr, mode: int, detach_reset: bool, surrogate):
        from . import _cext

        out = _cext.lif_forward(x, v0, beta, thr, mode) if _cext.available(x) else None
        if out is None:
            out = _forward_torch(x, v0, beta, thr, mode)
        s_all, h_all, v = out
        ctx.set_materialize_grads(False)  # unused outputs (h, v) get no zero-filled gradient tensors
        ctx.save_for_backward(h_all, v0, beta, thr)
        ctx.mode, ctx.detach_reset, ctx.surrogate = mode, detach_reset, surrogate
        return s_all, h_all, v

    @staticmethod
    def backward(ctx, g_s, g_h_out, g_v):
        from . import _cext

        h_all, v0, beta, thr = ctx.saved_tensors
        mode, detach, sur = ctx.mode, ctx.detach_reset, ctx.surrogate
        need_beta, need_v0, need_thr = ctx.needs_input_grad[2], ctx.needs_input_grad[1], ctx.needs_input_grad[3]
        s_all = None

        def spikes():
            nonlocal s_all
            if s_all is None:
                s_all = (h_all > thr).to(h_all.dtype)
            return s_all

        g_h = _cext.lif_backward(h_all, g_s, g_h_out, g_v, beta, thr, mode, detach, sur)
        sig = None
        if g_h is None:
            sig = sur.grad(h_all - thr)
            a = g_s * sig if g_s is not None else torch.zeros_like(h_all)
            if g_h_out is not None:  # gradient flowing into the recorded membrane trace
                a = a + g_h_out
            # d_t = dv_t/dh_t (None: 1 everywhere); m_t = d_t * beta is the factor of the reverse scan
            if (mode == 0 and detach) or mode in (2, 3):
                d, m = None, beta
            else:
                if mode == 0:
                    d = 1 - thr * sig
                elif detach:
                    d = 1 - spikes()
                else:
                    d = (1 - spikes()) - h_all * sig
                m = d * beta
            g_h = torch.empty(h_all.shape, dtype=h_all.dtype, device=h_all.device)
            if not _cext.reverse_scan(a, m, d, g_v, g_h):
                _reverse_scan_torch(a, m, d, g_v, g_h)
        g_x = g_h
        g_beta = g_v0 = g_thr = None
        if need_beta:
            v_prev = _prev_v(h_all, spikes() if mode in (0, 1) else None, v0, thr, mode)
            g_beta = _reduce_to((g_h * v_prev).sum(0), beta)
        if need_v0:
            g_v0 = _reduce_to(beta * g_h[0], v0)
        if need_thr:
            s_all = spikes()
            if sig is None:
                sig = sur.grad(h_all - thr)
            gt = -(g_s * sig) if g_s is not None else torch.zeros_like(h_all)
            # uses of the threshold in the reset, through g_v_t = beta * g_h_{t+1} (and g_v at the end)
            g_last = (g_v if g_v is not None else torch.zeros_like(h_all[0])).expand_as(h_all[0]).unsqueeze(0)
            g_vnext = torch.cat([beta * g_h[1:], g_last], 0)
            if mode == 0:
                dv_dthr = -s_all if detach else -s_all + thr * sig
                gt = gt + g_vnext * dv_dthr
            elif mode == 1 and not detach:
                gt = gt + g_vnext * h_all * sig
            elif mode == 3:
                s_prev = torch.cat([torch.zeros_like(s_all[:1]), s_all[:-1]], 0)
                gt = gt - g_h * s_prev
            g_thr = _reduce_to(gt.sum(0), thr)
        return g_x, g_v0, g_beta, g_thr, None, None, None


def fused_lif(x, v0, beta, thr, mode: str, detach_reset: bool, surrogate):
    """Run a LIF layer over ``x [T, ...]`` with the fused backend. Returns ``(spikes, h, v_final)``."""
    if mode == "subtract_delayed" and not detach_reset:
        raise ValueError("reset_delay=True (snnTorch convention) always detaches the reset")
    return FusedLIF.apply(x, v0, beta, thr, MODES[mode], detach_reset, surrogate)
