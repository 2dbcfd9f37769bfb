r"""LIF / IF: the kernel contract and its pure-torch reference implementation (any device, any float dtype).

Every implementation of this operator (``cpu.py``: C++; ``triton.py``: CUDA) provides ``forward`` and
``backward`` with exactly these signatures and results; the dispatcher (:mod:`neurosynth._ops`) picks one by
device and dtype, and an implementation may return ``None`` to decline (then this reference runs).

Dynamics, per element (``mode``: 0 subtract, 1 zero, 2 none, 3 subtract_delayed = snnTorch ``reset_delay``):

.. math::
    h_t = \beta v_{t-1} + x_t \;[-\ \vartheta s_{t-1}\ \text{if mode 3 and } t>0],\quad
    s_t = \mathbb{1}[h_t > \vartheta],\quad
    v_t = h_t - \vartheta s_t \;(0)\;|\; h_t (1 - s_t) \;(1)\;|\; h_t \;(2, 3).

Arithmetic order (kept by every implementation, no fused multiply-add, so fp32 spikes are bit-identical):
``bv = beta * v``; ``h = x + bv``; mode 3: ``h = h - thr * s_prev``; ``s = h > thr``; mode 0:
``v = h - thr * s``; mode 1: ``v = h * (1 - s)``.

``forward(x, v0, beta, thr, mode) -> (s, h, v)``
    - ``x [T, *S]``: float32/float64/bfloat16/float16, any strides.
    - ``v0 [*S]`` (or broadcastable), ``beta``, ``thr``: broadcastable to ``[*S]``; any float dtype (they are
      converted to the accumulation dtype ``acc = float64 if x is float64 else float32``).
    - ``s [T, *S]`` in ``x.dtype`` (0/1); ``h [T, *S]`` in ``acc``: the pre-reset membrane (the only tensor the
      backward needs besides the inputs ``v0, beta, thr``); ``v [*S]`` in ``acc``: the final state
      (``h[T-1]`` for modes 2 and 3). All outputs are fresh contiguous tensors.

``backward(h, g_s, g_h_out, g_v, beta, thr, mode, detach_reset, sur) -> g_h``
    - ``h`` as returned by forward; ``g_s [T, *S]`` (gradient w.r.t. ``s``, any float dtype) or ``None``
      (zero); ``g_h_out [T, *S]`` (gradient w.r.t. the returned ``h``) or ``None``; ``g_v [*S]`` (w.r.t. the
      returned ``v``) or ``None``.
    - ``sur``: the surrogate as the code triple ``(id, p, c)`` (:func:`neurosynth._ops.common.surrogate_code`);
      kernels return ``None`` for anything else; this reference also accepts a ``Surrogate`` object.
    - Returns ``g_h [T, *S]`` in ``acc``: the total gradient w.r.t. every pre-reset membrane, which is also the
      gradient w.r.t. ``x`` (cast to ``x.dtype`` by the caller). With :math:`a_t = g_{s_t}\sigma'(h_t-\vartheta)
      + g_{h\_out,t}` and :math:`d_t = \partial v_t / \partial h_t`:
      :math:`g_{h_{T-1}} = a_{T-1} + d_{T-1} g_v`, :math:`g_{h_t} = a_t + d_t\,\beta\,g_{h_{t+1}}`, where
      :math:`d = 1` (mode 0 detached, modes 2, 3), :math:`1 - \vartheta\sigma'` (mode 0 attached),
      :math:`1 - s` (mode 1 detached), :math:`(1 - s) - h\sigma'` (mode 1 attached).

The parameter and initial-state gradients (``beta``, ``thr``, ``v0``) are formed in torch from ``g_h`` by
:func:`neurosynth._ops.lif.autograd.param_grads`; kernels need not compute them.
"""

from __future__ import annotations

import torch

from ..common import DKIND, acc_dtype, surrogate_grad


def forward(x, v0, beta, thr, mode: int):
    acc = acc_dtype(x.dtype)
    T = x.shape[0]
    xa = x.to(acc)
    step_shape = x.shape[1:]
    beta = beta.to(acc)
    thr = thr.to(acc)
    v = v0.to(acc).expand(step_shape)
    h_all = torch.empty(x.shape, dtype=acc, device=x.device)
    s_all = torch.empty_like(h_all)
    tmp = torch.empty(step_shape, dtype=acc, device=x.device)
    vbuf = torch.empty_like(tmp) if mode in (0, 1) else None
    for t in range(T):
        h = h_all[t]
        s = s_all[t]
        torch.mul(beta, v, out=tmp)
        torch.add(xa[t], tmp, out=h)
        if mode == 3 and t > 0:
            # products with a spike (0 or 1) are exact: addcmul(h, thr, s, -1) == h - thr * s bit for bit
            torch.addcmul(h, thr, s_all[t - 1], value=-1, out=h)
        torch.gt(h, thr, out=s)
        if mode == 0:
            v = torch.addcmul(h, thr, s, value=-1, out=vbuf)
        elif mode == 1:
            torch.le(h, thr, out=tmp)  # 1 - s
            v = torch.mul(h, tmp, out=vbuf)
        else:
            v = h
    v = v.clone() if (mode in (2, 3) or T == 0) else v
    return s_all.to(x.dtype), h_all, v.contiguous()


def reverse_scan(a, m, d, g_v, g_h):
    """Fill ``g_h`` in place: ``g_h[T-1] = a[T-1] + d[T-1]*g_v``, ``g_h[t] = a[t] + m[t]*g_h[t+1]``; ``m``, ``d``
    are ``[T, ...]`` or broadcastable to one step; ``d=None`` means 1, ``g_v=None`` means 0."""
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


def _a_and_d(h, g_s, g_h_out, thr, mode, detach, sur):
    """``a_t`` and ``d_t`` of the contract (``d=None`` means 1), and the surrogate derivative."""
    sig = surrogate_grad(sur, h - thr)
    a = g_s.to(h.dtype) * sig if g_s is not None else torch.zeros_like(h)
    if g_h_out is not None:
        a = a + g_h_out.to(h.dtype)
    dk = DKIND[(int(mode), bool(detach))]
    if dk == 0:
        d = None
    elif dk == 1:
        d = 1 - thr * sig
    elif dk == 2:
        d = (h <= thr).to(h.dtype)
    else:
        d = (h <= thr).to(h.dtype) - h * sig
    return a, d, sig


def backward(h, g_s, g_h_out, g_v, beta, thr, mode: int, detach_reset: bool, sur):
    acc = h.dtype
    beta = beta.to(acc)
    thr = thr.to(acc)
    a, d, _ = _a_and_d(h, g_s, g_h_out, thr, mode, detach_reset, sur)
    m = beta if d is None else d * beta
    g_h = torch.empty(h.shape, dtype=acc, device=h.device)
    reverse_scan(a, m, d, None if g_v is None else g_v.to(acc), g_h)
    return g_h
