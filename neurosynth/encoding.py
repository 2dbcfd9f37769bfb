"""Encoders: static values in [0, 1] -> time-first spike trains ``[T, B, ...]``.

All randomness comes from an explicit ``torch.Generator``.
"""

from __future__ import annotations

import torch

from .registry import Registry

ENCODERS: Registry = Registry("encoder")


def _check_unit(x: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: input contains NaN or inf")
    if x.numel() and (float(x.min()) < 0 or float(x.max()) > 1):
        raise ValueError(f"{name}: input must be scaled to [0, 1]; got range [{float(x.min())}, {float(x.max())}]")


@ENCODERS.register("rate")
def rate(x: torch.Tensor, T: int, generator: torch.Generator | None = None, gain: float = 1.0) -> torch.Tensor:
    """Bernoulli (discrete-time Poisson) rate code: ``s[t] ~ Bernoulli(gain * x)`` independently per step."""
    _check_unit(x, "rate encoder")
    p = (x * gain).clamp(0, 1).unsqueeze(0).expand(T, *x.shape)
    return torch.bernoulli(p, generator=generator)


@ENCODERS.register("latency")
def latency(x: torch.Tensor, T: int, generator: torch.Generator | None = None, tau: float | None = None,
            threshold: float = 0.01, linear: bool = True) -> torch.Tensor:
    """Time-to-first-spike: one spike per input, earlier for larger values; inputs below ``threshold`` never fire.

    ``linear``: ``t = round((1 - x) * (T - 1))``; otherwise an RC-charge law ``t = tau * ln(x / (x - threshold))``
    clipped to ``T - 1``.
    """
    _check_unit(x, "latency encoder")
    if linear:
        t = torch.round((1 - x) * (T - 1))
    else:
        tau = tau if tau is not None else T / 5
        t = tau * torch.log(x / (x - threshold).clamp_min(1e-12))
        t = torch.nan_to_num(t, nan=T - 1, posinf=T - 1).clamp(0, T - 1).round()
    fire = x > threshold
    steps = torch.arange(T, device=x.device).view(T, *([1] * x.dim()))
    return ((steps == t.unsqueeze(0)) & fire.unsqueeze(0)).to(torch.float32)


@ENCODERS.register("delta")
def delta(x: torch.Tensor, threshold: float = 0.1, off_spikes: bool = False, **_) -> torch.Tensor:
    """Delta modulation of a time-first signal ``x [T, B, ...]``: spike when the signal moved by more than
    ``threshold`` since the last spike (the reference level follows the signal at each spike). With
    ``off_spikes`` decreases give ``-1``."""
    if x.dim() < 2:
        raise ValueError(f"delta encoder expects a time-first signal [T, B, ...]; got shape {tuple(x.shape)}")
    ref = x[0].clone()
    out = torch.zeros_like(x)
    for t in range(1, x.shape[0]):
        d = x[t] - ref
        up = d > threshold
        down = d < -threshold
        out[t] = up.to(x.dtype) - (down.to(x.dtype) if off_spikes else 0)
        moved = up | (down if off_spikes else torch.zeros_like(up))
        ref = torch.where(moved | down, x[t], ref)
    return out


def encode(name: str, x: torch.Tensor, T: int, generator: torch.Generator | None = None, **kw) -> torch.Tensor:
    """Encode with a registered encoder by name."""
    fn = ENCODERS.get(name)
    if name == "delta":
        return fn(x, **kw)
    return fn(x, T, generator=generator, **kw)
