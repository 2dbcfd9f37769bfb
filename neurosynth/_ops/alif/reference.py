r"""ALIF (adaptive-threshold LIF, Bellec et al. 2018): the kernel contract and its pure-torch reference.

Parameters ``beta``, ``thr`` (base threshold), ``rho`` (= ``adapt_decay``), ``b`` (= ``adapt_scale``). Per element
(``mode``: 0 subtract (default), 1 zero, 2 none):

.. math::
    h_t = \beta v_{t-1} + x_t,\quad \theta_t = \vartheta + b\,a_{t-1},\quad s_t = \mathbb{1}[h_t > \theta_t],\quad
    v_t = h_t - \theta_t s_t \;(0)\;|\; h_t (1 - s_t) \;(1)\;|\; h_t \;(2),\quad a_t = \rho a_{t-1} + s_t .

Arithmetic order (no FMA): ``h = beta * v`` then ``+ x``; ``theta = b * a`` then ``thr + ...``; ``s = h > theta``;
reset as LIF with ``theta``; ``a = rho * a`` then ``+ s``. The spike keeps its surrogate gradient in ``a``
(``after_fire``); ``detach_reset`` only detaches the spike inside the reset of ``v``.

``forward(x, v0, a0, beta, thr, rho, b, mode) -> (s, h, a_seq, v, a)``
    - ``x [T, *S]`` (float32/float64/bfloat16/float16); ``v0, a0, beta, thr, rho, b`` broadcastable to ``[*S]``.
    - ``s [T, *S]`` in ``x.dtype``; ``h, a_seq [T, *S]`` in ``acc`` (``a_seq[t]`` = ``a_t`` after the update);
      ``v, a [*S]`` in ``acc``: the final state. Saved for backward: ``h`` and ``a_seq``.

``backward(h, a_seq, a0, g_s, g_h_out, g_v, g_a, beta, thr, rho, b, mode, detach_reset, sur, need_param)
-> (g_h, g_theta, g_a_seq)``
    - ``g_s``, ``g_h_out`` ``[T, *S]`` or ``None``; ``g_v``, ``g_a`` ``[*S]`` or ``None``; ``sur`` the code triple.
    - Returns ``g_h [T, *S]`` (``acc``; = gradient w.r.t. ``x``), and when ``need_param`` ``g_theta [T, *S]``
      (w.r.t. each :math:`\theta_t`) and ``g_a_seq [T, *S]`` (total gradient w.r.t. each :math:`a_t`), else two
      empty tensors. Recurrence from :math:`t = T-1` down, with :math:`G^v_{T-1} = g_v`,
      :math:`G^a_{T-1} = g_a`, :math:`G^v_{t} = \beta g_{h_{t+1}}`,
      :math:`G^a_t = \rho G^a_{t+1} + b\,g_{\theta_{t+1}}`, :math:`\sigma_t = \sigma'(h_t - \theta_t)`:
      :math:`\hat g_t = g_{s_t} + G^a_t + [\text{attached}]\,\partial v_t/\partial s_t\,G^v_t` (subtract:
      :math:`-\theta_t`, zero: :math:`-h_t`), :math:`g_{h_t} = \hat g_t\sigma_t + g_{h\_out,t} +
      \partial v_t/\partial h_t\,G^v_t` (zero: :math:`1 - s_t`, else 1),
      :math:`g_{\theta_t} = -\hat g_t\sigma_t - [\text{subtract}]\,s_t G^v_t`.

Parameter gradients (torch, :func:`neurosynth._ops.alif.autograd.param_grads`): ``g_thr = sum g_theta``,
``g_b = sum g_theta a_{t-1}``, ``g_rho = sum G^a_t a_{t-1}``, ``g_beta = sum g_h v_{t-1}``, ``g_v0 = beta g_h[0]``,
``g_a0 = rho G^a_0 + b g_theta[0]``.
"""

from __future__ import annotations

import torch

from ..common import acc_dtype, reset_into, surrogate_grad


def forward(x, v0, a0, beta, thr, rho, b, mode: int):
    acc = acc_dtype(x.dtype)
    T = x.shape[0]
    xa = x.to(acc)
    step_shape = x.shape[1:]
    beta, thr, rho, b = beta.to(acc), thr.to(acc), rho.to(acc), b.to(acc)
    v = v0.to(acc).expand(step_shape).clone()
    a = a0.to(acc).expand(step_shape).clone()
    h_all = torch.empty(x.shape, dtype=acc, device=x.device)
    s_all = torch.empty_like(h_all)
    a_all = torch.empty_like(h_all)
    tmp = torch.empty(step_shape, dtype=acc, device=x.device)
    th = torch.empty_like(tmp)
    for t in range(T):
        h, s = h_all[t], s_all[t]
        torch.mul(beta, v, out=tmp)
        torch.add(xa[t], tmp, out=h)
        torch.mul(b, a, out=tmp)
        torch.add(thr, tmp, out=th)
        torch.gt(h, th, out=s)
        reset_into(v, h, th, s, mode, tmp)
        torch.mul(rho, a, out=tmp)
        torch.add(tmp, s, out=a)
        a_all[t].copy_(a)
    return s_all.to(x.dtype), h_all, a_all, v, a


def backward(h, a_seq, a0, g_s, g_h_out, g_v, g_a, beta, thr, rho, b, mode: int, detach_reset: bool, sur,
             need_param: bool):
    acc = h.dtype
    T = h.shape[0]
    beta, thr, rho, b = beta.to(acc), thr.to(acc), rho.to(acc), b.to(acc)
    a_prev = torch.cat([a0.to(acc).expand_as(h[0]).unsqueeze(0), a_seq[:-1]], 0)
    theta = thr + b * a_prev
    sig = surrogate_grad(sur, h - theta)
    s = (h > theta).to(acc)
    zero = torch.zeros(h.shape[1:], dtype=acc, device=h.device)
    gv = zero if g_v is None else g_v.to(acc).expand_as(zero)
    ga = zero if g_a is None else g_a.to(acc).expand_as(zero)
    g_h = torch.empty(h.shape, dtype=acc, device=h.device)
    g_th = torch.empty_like(g_h)
    g_as = torch.empty_like(g_h)
    for t in range(T - 1, -1, -1):
        gs = ga if g_s is None else g_s[t].to(acc) + ga
        if not detach_reset:
            if mode == 0:
                gs = gs - theta[t] * gv
            elif mode == 1:
                gs = gs - h[t] * gv
        gss = gs * sig[t]
        gh = gss if g_h_out is None else gss + g_h_out[t].to(acc)
        gh = gh + ((1 - s[t]) * gv if mode == 1 else gv)
        gth = -gss - s[t] * gv if mode == 0 else -gss
        g_h[t], g_th[t], g_as[t] = gh, gth, ga
        gv = beta * gh
        ga = rho * ga + b * gth
    if not need_param:  # two distinct empty tensors (custom-op outputs must not alias)
        return g_h, torch.empty(0, dtype=acc, device=h.device), torch.empty(0, dtype=acc, device=h.device)
    return g_h, g_th, g_as
