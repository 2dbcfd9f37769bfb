r"""Attention kernels as pure functions with the signature of :func:`torch.nn.functional.scaled_dot_product_attention`.

Shapes: ``q [B, H, Lq, D]``, ``k [B, H, Lk, D]``, ``v [B, H, Lk, Dv]`` -> ``[B, H, Lq, Dv]``.
``attn_mask``: bool (``True`` = may attend) or float (added to the scores), broadcastable to ``[B, H, Lq, Lk]``;
``is_causal``: query ``i`` sees keys ``j <= i``.

* :func:`sdpa` -- standard softmax attention (Vaswani et al. 2017), torch's fused kernel.
* :func:`competitive_attention` -- biased competition (Desimone & Duncan 1995) as a normalised ReLU
  competition: scores are centred on their mean over the visible keys, rectified, raised to a power
  :math:`p \ge 1` (winner-take-more) and normalised,
  :math:`a_{ij} = [s_{ij} - \bar s_i]_+^p / \sum_{j'} [s_{ij'} - \bar s_i]_+^p`. Keys below the mean get
  exactly zero weight (sparse); if no key is above the mean (all scores equal) the weights are uniform.
* :func:`oscillatory_attention` -- theta-like gating (Lisman & Jensen 2013): a periodic gate
  :math:`e(t) = f + (1-f)\,\sigma(\kappa \cos(\omega t + \phi))` marks encoding phases. Key/value ``j`` is
  written with strength :math:`e(t_j)` (weights :math:`\propto e^{s_{ij}} e(t_j)`) and the output of query
  ``i`` is read out with the retrieval gate :math:`r(t_i) = 1 + f - e(t_i) \in [f, 1]`, high when the gate is
  in its retrieval phase.
* :func:`gain_modulated_attention` -- multiplicative gain (PFC top-down modulation): weights
  :math:`a_{ij} \propto e^{s_{ij}} g_{ij}`, i.e. the softmax weights multiplied by a positive gain and
  renormalised; the gain is computed by the caller (see :class:`~neurosynth.attention.GainModulatedAttention`).

Gates and gains enter as ``log`` terms added to the scores, so the oscillatory and gain variants still use the
fused softmax kernel.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            f"attention expects q [B, H, Lq, D], k [B, H, Lk, D], v [B, H, Lk, Dv]; got shapes "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2] or q.shape[:2] != k.shape[:2]:
        raise ValueError(
            f"incompatible q/k/v shapes {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}: q and k need the "
            "same B, H and D, k and v the same Lk"
        )


def _additive_mask(attn_mask: Tensor | None, is_causal: bool, lq: int, lk: int, dtype, device) -> Tensor | None:
    """Float mask (0 or -inf) combining ``attn_mask`` and causality; ``None`` if neither is given."""
    out = None
    if is_causal:
        causal = torch.ones(lq, lk, dtype=torch.bool, device=device).tril(diagonal=lk - lq)
        out = torch.zeros(lq, lk, dtype=dtype, device=device).masked_fill(~causal, -math.inf)
    if attn_mask is not None:
        m = attn_mask
        if m.dtype == torch.bool:
            m = torch.zeros(m.shape, dtype=dtype, device=device).masked_fill(~m, -math.inf)
        out = m if out is None else out + m
    return out


def sdpa(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False,
         scale: float | None = None) -> Tensor:
    """Standard scaled dot-product attention (torch's fused kernel)."""
    check_qkv(q, k, v)
    if attn_mask is not None and is_causal:  # torch refuses both at once: fold causality into the mask
        attn_mask = _additive_mask(attn_mask, True, q.shape[-2], k.shape[-2], q.dtype, q.device)
        is_causal = False
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal, scale=scale)


def softmax_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False,
                      scale: float | None = None) -> Tensor:
    """Standard attention written out (materialises the ``[B, H, Lq, Lk]`` weights); equals :func:`sdpa`."""
    check_qkv(q, k, v)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = (q @ k.transpose(-2, -1)) * scale
    m = _additive_mask(attn_mask, is_causal, q.shape[-2], k.shape[-2], s.dtype, s.device)
    if m is not None:
        s = s + m
    return torch.softmax(s, dim=-1) @ v


def competitive_weights(scores: Tensor, visible: Tensor | None, power: Tensor | float = 2.0) -> Tensor:
    """Normalised ReLU competition over the last dimension (see module docstring).

    ``scores [..., Lk]``; ``visible``: bool broadcastable to ``scores`` (``None`` = all visible);
    ``power`` broadcastable to ``scores`` (e.g. ``[H, 1, 1]`` per head), ``>= 1`` for winner-take-more.
    """
    if visible is None:
        visible = torch.ones_like(scores, dtype=torch.bool)
    visible = visible.expand_as(scores)
    n = visible.sum(-1, keepdim=True).clamp_min(1)
    s0 = scores.masked_fill(~visible, 0.0)
    mean = s0.sum(-1, keepdim=True) / n
    c = torch.relu(s0 - mean).masked_fill(~visible, 0.0)
    # (c + tiny)^p keeps the gradient of the power finite at c == 0; the tiny term is removed again below
    act = torch.where(c > 0, (c + 1e-12) ** power, torch.zeros_like(c))
    total = act.sum(-1, keepdim=True)
    uniform = visible.to(scores.dtype) / n
    return torch.where(total > 0, act / total.clamp_min(1e-30), uniform)


def competitive_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False,
                          scale: float | None = None, power: Tensor | float = 2.0) -> Tensor:
    """Attention with softmax replaced by a normalised ReLU competition (winner-take-more for power > 1)."""
    check_qkv(q, k, v)
    if attn_mask is not None and attn_mask.dtype != torch.bool:
        raise ValueError("competitive attention takes a boolean attn_mask (True = may attend), not a float mask")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = (q @ k.transpose(-2, -1)) * scale
    lq, lk = q.shape[-2], k.shape[-2]
    visible = torch.ones(lq, lk, dtype=torch.bool, device=q.device)
    if is_causal:
        visible = visible.tril(diagonal=lk - lq)
    if attn_mask is not None:
        visible = visible & attn_mask
    return competitive_weights(s, visible, power) @ v


def theta_gate(t: Tensor, omega: Tensor, phase: Tensor, sharpness: Tensor, floor: float = 0.0) -> Tensor:
    """Encoding gate ``f + (1-f) * sigmoid(sharpness * cos(omega * t + phase))`` -> ``[H, L]`` for ``t [L]``
    and per-head ``omega``, ``phase``, ``sharpness`` of shape ``[H]``."""
    x = sharpness[:, None] * torch.cos(omega[:, None] * t[None, :] + phase[:, None])
    return floor + (1.0 - floor) * torch.sigmoid(x)


def oscillatory_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False,
                          scale: float | None = None, *, encode_k: Tensor, encode_q: Tensor, floor: float = 0.0
                          ) -> Tensor:
    """Theta-gated attention. ``encode_k [H, Lk]`` / ``encode_q [H, Lq]``: encoding gates (from :func:`theta_gate`)
    at the key and query positions. Keys are written with strength ``encode_k``; outputs are read out with the
    retrieval gate ``1 - encode_q + floor``."""
    check_qkv(q, k, v)
    lq, lk = q.shape[-2], k.shape[-2]
    bias = torch.log(encode_k.clamp_min(1e-6))[:, None, :].expand(-1, lq, -1)  # [H, Lq, Lk]
    m = _additive_mask(attn_mask, is_causal, lq, lk, q.dtype, q.device)
    bias = bias if m is None else bias + m
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
    retrieve = (1.0 - encode_q + floor)[None, :, :, None]  # [1, H, Lq, 1]
    return out * retrieve


def gain_modulated_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None,
                             is_causal: bool = False, scale: float | None = None, *, log_gain: Tensor) -> Tensor:
    """Softmax weights multiplied by ``exp(log_gain)`` and renormalised. ``log_gain`` broadcastable to
    ``[B, H, Lq, Lk]`` (e.g. ``[B, H, 1, Lk]`` for a per-key gain)."""
    check_qkv(q, k, v)
    lq, lk = q.shape[-2], k.shape[-2]
    m = _additive_mask(attn_mask, is_causal, lq, lk, q.dtype, q.device)
    bias = log_gain if m is None else log_gain + m
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.expand(q.shape[0], q.shape[1], lq, lk), scale=scale)
