r"""CubaLIF (current-based LIF, Loihi's neuron): the kernel contract and its pure-torch reference.

Dynamics, per element (``mode``: 0 subtract, 1 zero (default), 2 none; the current ``i`` is never reset):

.. math::
    i_t = \alpha i_{t-1} + x_t,\quad h_t = \beta v_{t-1} + i_t,\quad s_t = \mathbb{1}[h_t > \vartheta],\quad
    v_t = h_t - \vartheta s_t \;(0)\;|\; h_t (1 - s_t) \;(1)\;|\; h_t \;(2).

Arithmetic order (no FMA): ``i = alpha * i`` then ``i = i + x``; ``h = beta * v`` then ``h = h + i``; spikes
and resets as in :mod:`neurosynth._ops.lif.reference`.

``forward(x, i0, v0, alpha, beta, thr, mode, save_i) -> (s, h, i_seq, i, v)``
    - ``x [T, *S]`` (float32/float64/bfloat16/float16); ``i0, v0, alpha, beta, thr`` broadcastable to ``[*S]``.
    - ``s [T, *S]`` in ``x.dtype``; ``h [T, *S]`` in ``acc`` (float64 for float64 input, else float32);
      ``i_seq [T, *S]`` in ``acc`` when ``save_i`` (needed only for the gradient of ``alpha``), else an empty
      tensor (``numel() == 0``); ``i, v [*S]`` in ``acc``: the final state.
    - Saved for backward: ``h`` (and ``i_seq`` when ``alpha`` needs a gradient).

``backward(h, g_s, g_h_out, g_v, g_i, alpha, beta, thr, mode, detach_reset, sur, need_gh) -> (g_x, g_h)``
    - ``g_s``, ``g_h_out`` ``[T, *S]`` or ``None``; ``g_v``, ``g_i`` ``[*S]`` (w.r.t. the final state) or ``None``;
      ``sur`` the ``(id, p, c)`` triple (kernels decline anything else by returning ``None``).
    - Returns ``g_x [T, *S]`` (``acc``; the gradient w.r.t. ``x`` and w.r.t. every ``i_t``) and ``g_h [T, *S]``
      (``acc``; w.r.t. every pre-reset membrane) when ``need_gh``, else an empty tensor.
    - Recurrence: :math:`G^v_{T-1} = g_v`, :math:`G^v_{t} = \beta g_{h_{t+1}}`;
      :math:`g_{h_t} = a_t + d_t G^v_t` (``a``, ``d`` as for LIF modes 0-2);
      :math:`g_{x_t} = g_{h_t} + (g_i \text{ if } t = T-1 \text{ else } \alpha\,g_{x_{t+1}})`.

Parameter and initial-state gradients are formed in torch by :func:`neurosynth._ops.cubalif.autograd.param_grads`:
``g_i0 = alpha g_x[0]``, ``g_v0 = beta g_h[0]``, ``g_alpha = sum_t g_x[t] i_{t-1}``, ``g_beta = sum_t g_h[t] v_{t-1}``,
``g_thr`` from the threshold's uses in firing and reset.
"""

from __future__ import annotations

import torch

from ..common import acc_dtype, reset_into
from ..lif.reference import _a_and_d


def forward(x, i0, v0, alpha, beta, thr, mode: int, save_i: bool):
    acc = acc_dtype(x.dtype)
    T = x.shape[0]
    xa = x.to(acc)
    step_shape = x.shape[1:]
    alpha, beta, thr = alpha.to(acc), beta.to(acc), thr.to(acc)
    i = i0.to(acc).expand(step_shape).clone()
    v = v0.to(acc).expand(step_shape).clone()
    h_all = torch.empty(x.shape, dtype=acc, device=x.device)
    s_all = torch.empty_like(h_all)
    i_all = torch.empty_like(h_all) if save_i else torch.empty(0, dtype=acc, device=x.device)
    tmp = torch.empty(step_shape, dtype=acc, device=x.device)
    for t in range(T):
        h, s = h_all[t], s_all[t]
        torch.mul(alpha, i, out=tmp)
        torch.add(tmp, xa[t], out=i)
        if save_i:
            i_all[t].copy_(i)
        torch.mul(beta, v, out=tmp)
        torch.add(tmp, i, out=h)
        torch.gt(h, thr, out=s)
        reset_into(v, h, thr, s, mode, tmp)
    return s_all.to(x.dtype), h_all, i_all, i, v


def backward(h, g_s, g_h_out, g_v, g_i, alpha, beta, thr, mode: int, detach_reset: bool, sur, need_gh: bool):
    acc = h.dtype
    T = h.shape[0]
    alpha, beta, thr = alpha.to(acc), beta.to(acc), thr.to(acc)
    a, d, _ = _a_and_d(h, g_s, g_h_out, thr, mode, detach_reset, sur)
    g_h = torch.empty(h.shape, dtype=acc, device=h.device)
    g_x = torch.empty_like(g_h)
    zero = torch.zeros(h.shape[1:], dtype=acc, device=h.device)
    gv = zero if g_v is None else g_v.to(acc).expand_as(zero)
    gi = zero if g_i is None else g_i.to(acc).expand_as(zero)
    for t in range(T - 1, -1, -1):
        dt = 1 if d is None else d[t]
        torch.add(a[t], dt * gv, out=g_h[t])
        torch.add(g_h[t], gi, out=g_x[t])
        gv = beta * g_h[t]
        gi = alpha * g_x[t]
    return g_x, (g_h if need_gh else torch.empty(0, dtype=acc, device=h.device))
