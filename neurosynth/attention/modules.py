"""Drop-in attention modules: ``module(q, k, v, attn_mask=None, is_causal=False) -> out``.

All take ``q [B, H, Lq, D]``, ``k [B, H, Lk, D]``, ``v [B, H, Lk, Dv]`` like
:func:`torch.nn.functional.scaled_dot_product_attention`; they own only the variant's own parameters
(per head), so any of them can replace the core of a multi-head attention layer
(:class:`MultiHeadAttention` does exactly that, choosing the core by registry name).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import Registry
from . import functional as AF

ATTENTION: Registry[type[nn.Module]] = Registry("attention variant")


@ATTENTION.register("standard")
class ScaledDotProductAttention(nn.Module):
    """Standard softmax attention (torch's fused ``scaled_dot_product_attention``)."""

    def __init__(self, num_heads: int = 1, head_dim: int | None = None, **_: Any):
        super().__init__()

    def forward(self, q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None,
                is_causal: bool = False) -> Tensor:
        return AF.sdpa(q, k, v, attn_mask, is_causal)


@ATTENTION.register("softmax_explicit")
class ExplicitSoftmaxAttention(ScaledDotProductAttention):
    """Standard attention with the weight matrix materialised (the unfused reference for memory comparisons)."""

    def forward(self, q, k, v, attn_mask=None, is_causal=False):
        return AF.softmax_attention(q, k, v, attn_mask, is_causal)


@ATTENTION.register("competitive")
class CompetitiveAttention(nn.Module):
    """Normalised ReLU competition instead of softmax (winner-take-more). The exponent per head is
    ``1 + softplus(rho)`` (>= 1), initialised to ``power`` and learnable unless ``learn_power=False``."""

    def __init__(self, num_heads: int = 1, head_dim: int | None = None, power: float = 2.0,
                 learn_power: bool = True, **_: Any):
        super().__init__()
        if power <= 1.0:
            raise ValueError(f"power must be > 1 (1 + softplus parametrisation), got {power}")
        rho = torch.full((num_heads,), math.log(math.expm1(power - 1.0)))
        if learn_power:
            self.rho = nn.Parameter(rho)
        else:
            self.register_buffer("rho", rho)
        self.num_heads = num_heads

    @property
    def power(self) -> Tensor:
        return 1.0 + F.softplus(self.rho)

    def forward(self, q, k, v, attn_mask=None, is_causal=False):
        if q.shape[1] != self.num_heads:
            raise ValueError(f"built for {self.num_heads} heads, got q with {q.shape[1]} heads")
        return AF.competitive_attention(q, k, v, attn_mask, is_causal, power=self.power[:, None, None])


@ATTENTION.register("oscillatory")
class OscillatoryGatedAttention(nn.Module):
    """Theta-like gate separating encoding (key writes) from retrieval (query reads).

    Per head: angular frequency ``omega = 2 pi / period`` (learnable through ``log_period``), phase (learnable,
    initialised spread over ``[0, 2 pi)`` across heads) and sharpness (learnable, via softplus). ``floor`` keeps
    every gate >= floor so no position is silenced completely. Positions are ``0..L-1``.
    """

    def __init__(self, num_heads: int = 1, head_dim: int | None = None, period: float = 8.0,
                 sharpness: float = 2.0, floor: float = 0.05, **_: Any):
        super().__init__()
        if period <= 0 or sharpness <= 0 or not 0 <= floor < 1:
            raise ValueError("need period > 0, sharpness > 0 and 0 <= floor < 1")
        self.log_period = nn.Parameter(torch.full((num_heads,), math.log(period)))
        self.phase = nn.Parameter(torch.arange(num_heads, dtype=torch.float32) * (2 * math.pi / num_heads))
        self.sharp_raw = nn.Parameter(torch.full((num_heads,), math.log(math.expm1(sharpness))))
        self.floor = floor
        self.num_heads = num_heads

    def gates(self, length: int, device=None) -> Tensor:
        """Encoding gate per head and position ``[H, L]``."""
        t = torch.arange(length, dtype=self.phase.dtype, device=device)
        omega = 2 * math.pi / self.log_period.exp()
        return AF.theta_gate(t, omega, self.phase, F.softplus(self.sharp_raw), self.floor)

    def forward(self, q, k, v, attn_mask=None, is_causal=False):
        if q.shape[1] != self.num_heads:
            raise ValueError(f"built for {self.num_heads} heads, got q with {q.shape[1]} heads")
        lq, lk = q.shape[-2], k.shape[-2]
        g = self.gates(max(lq, lk), q.device)
        # with Lq < Lk (e.g. decoding the last positions) queries sit at the end of the key sequence
        return AF.oscillatory_attention(q, k, v, attn_mask, is_causal, encode_k=g[:, :lk],
                                        encode_q=g[:, lk - lq:lk] if lq <= lk else g[:, :lq], floor=self.floor)


@ATTENTION.register("gain")
class GainModulatedAttention(nn.Module):
    """Context-dependent multiplicative gain on the attention weights.

    Per head ``h`` the gain of key ``j`` is ``exp(gamma_h * tanh(<k_j, u_h + W_h c> / sqrt(D)))`` in
    ``[e^-gamma, e^gamma]``: ``u_h`` is a learned top-down template, ``c`` the context -- by default the mean
    of the visible keys of that head (a summary of the sequence), or an external ``context [B, context_dim]``
    set with :meth:`set_context` (e.g. a task cue). Softmax weights are multiplied by the gain and renormalised.
    """

    def __init__(self, num_heads: int = 1, head_dim: int | None = None, context_dim: int | None = None,
                 gamma: float = 1.0, **_: Any):
        super().__init__()
        if head_dim is None:
            raise ValueError("GainModulatedAttention needs head_dim")
        self.num_heads, self.head_dim = num_heads, head_dim
        self.template = nn.Parameter(torch.zeros(num_heads, head_dim))
        cdim = head_dim if context_dim is None else context_dim
        self.context_proj = nn.Parameter(torch.zeros(num_heads, head_dim, cdim))
        self.log_gamma = nn.Parameter(torch.tensor(math.log(gamma)).repeat(num_heads))
        self.context_dim = context_dim
        self._context: Tensor | None = None

    def set_context(self, context: Tensor | None) -> None:
        """External top-down context ``[B, context_dim]`` for the next calls (``None`` = use the key mean)."""
        if context is not None and (self.context_dim is None or context.shape[-1] != self.context_dim):
            raise ValueError(f"context must be [B, {self.context_dim}] (set context_dim when building the module)")
        self._context = context

    def log_gain(self, k: Tensor, visible_keys: Tensor | None = None) -> Tensor:
        """``[B, H, 1, Lk]`` log-gains."""
        if self._context is not None:
            c = self._context[:, None, :].expand(-1, self.num_heads, -1)  # [B, H, C]
        else:
            if visible_keys is None:
                c = k.mean(2)
            else:
                w = visible_keys.to(k.dtype)[:, None, :, None]
                c = (k * w).sum(2) / w.sum(2).clamp_min(1)
        direction = self.template[None] + torch.einsum("hdc,bhc->bhd", self.context_proj, c)  # [B, H, D]
        proj = torch.einsum("bhld,bhd->bhl", k, direction) / math.sqrt(self.head_dim)
        return (self.log_gamma.exp()[None, :, None] * torch.tanh(proj))[:, :, None, :]

    def forward(self, q, k, v, attn_mask=None, is_causal=False):
        if q.shape[1] != self.num_heads or q.shape[-1] != self.head_dim:
            raise ValueError(f"built for {self.num_heads} heads of dim {self.head_dim}, got q {tuple(q.shape)}")
        return AF.gain_modulated_attention(q, k, v, attn_mask, is_causal, log_gain=self.log_gain(k))


class MultiHeadAttention(nn.Module):
    """Multi-head self/cross attention whose core is any registered variant (``attention=`` name).

    ``forward(x [B, L, d_model], memory=None, attn_mask=None, is_causal=False) -> [B, L, d_model]``
    (batch-first, as sequence models use it; ``memory`` for cross-attention).
    """

    def __init__(self, d_model: int, num_heads: int, attention: str = "standard", bias: bool = True,
                 **attention_kw: Any):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        self.d_model, self.num_heads, self.head_dim = d_model, num_heads, d_model // num_heads
        self.q = nn.Linear(d_model, d_model, bias=bias)
        self.kv = nn.Linear(d_model, 2 * d_model, bias=bias)
        self.out = nn.Linear(d_model, d_model, bias=bias)
        self.variant = attention
        self.core = ATTENTION.get(attention)(num_heads=num_heads, head_dim=self.head_dim, **attention_kw)

    def _split(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor, memory: Tensor | None = None, attn_mask: Tensor | None = None,
                is_causal: bool = False) -> Tensor:
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"expected x [B, L, {self.d_model}], got {tuple(x.shape)}")
        mem = x if memory is None else memory
        k, v = self.kv(mem).chunk(2, dim=-1)
        o = self.core(self._split(self.q(x)), self._split(k), self._split(v), attn_mask, is_causal)
        return self.out(o.transpose(1, 2).reshape(x.shape[0], x.shape[1], self.d_model))
