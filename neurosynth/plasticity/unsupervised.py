r"""Building blocks for unsupervised spiking learning (Diehl & Cook 2015 style), as pure functions.

* **Winner-take-all / lateral inhibition**: :func:`winner_take_all` lets at most ``k`` neurons per sample
  spike (those with the largest margin above threshold), the limit of strong lateral inhibition;
  :func:`lateral_inhibition` is the soft version, subtracting ``strength`` times the other neurons' spikes
  from each membrane.
* **Adaptive thresholds (homeostasis)**: :func:`adaptive_threshold_step`,
  :math:`\theta \leftarrow \theta\, e^{-dt/\tau_\theta} + \theta_+ \bar s` — a neuron that fires often
  becomes harder to excite, so every neuron gets a share of the inputs.
* **Weight normalisation**: :func:`normalize_weights` rescales each post-synaptic neuron's incoming weights
  to a fixed sum, so that LTP on active inputs implies relative depression of the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor


def winner_take_all(v: Tensor, threshold: Tensor | float, k: int = 1) -> Tensor:
    """Spikes ``[B, N]`` where only the (at most) ``k`` neurons with the largest ``v - threshold > 0`` fire.

    ``v``: membrane ``[B, N]`` (or ``[B, C, H, W]``, competition over all non-batch dimensions).
    Ties are broken by index (the lowest index wins), so the result is deterministic.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    shape = v.shape
    flat = (v - threshold).reshape(shape[0], -1)
    k = min(k, flat.shape[1])
    top, idx = flat.topk(k, dim=1)
    spikes = torch.zeros_like(flat)
    spikes.scatter_(1, idx, (top > 0).to(flat.dtype))
    return spikes.reshape(shape)


def lateral_inhibition(v: Tensor, spikes: Tensor, strength: float) -> Tensor:
    """``v - strength * (sum of the *other* neurons' spikes)`` per sample (soft WTA), ``v``/``spikes`` ``[B, N]``."""
    total = spikes.reshape(spikes.shape[0], -1).sum(1).reshape(-1, *([1] * (spikes.dim() - 1)))
    return v - strength * (total - spikes)


@dataclass(frozen=True)
class HomeostasisParams:
    """Adaptive threshold: each spike adds ``theta_plus``; ``theta`` decays with ``tau_theta`` (0 = never)."""

    theta_plus: float = 0.05
    tau_theta: float = 1e7
    dt: float = 1.0
    theta_max: float = math.inf

    def __post_init__(self) -> None:
        if self.theta_plus < 0 or self.tau_theta <= 0 or self.dt <= 0:
            raise ValueError("theta_plus must be >= 0, tau_theta and dt > 0")


def adaptive_threshold_step(theta: Tensor, spikes: Tensor, p: HomeostasisParams, batch_reduce: str = "mean"
                            ) -> Tensor:
    """New per-neuron threshold offset ``theta [N]`` from batched spikes ``[B, N]``."""
    if batch_reduce not in ("mean", "sum"):
        raise ValueError(f"batch_reduce must be 'mean' or 'sum', got {batch_reduce!r}")
    s = spikes.mean(0) if batch_reduce == "mean" else spikes.sum(0)
    return (theta * math.exp(-p.dt / p.tau_theta) + p.theta_plus * s).clamp(max=p.theta_max)


def normalize_weights(w: Tensor, total: float, dim: int | tuple[int, ...] = 1, eps: float = 1e-12) -> Tensor:
    """Rescale ``w`` so that its sum over ``dim`` (the inputs of each post neuron) equals ``total``.

    For an ``nn.Linear`` weight ``[N_out, N_in]`` use ``dim=1``; for a conv weight ``[C_out, C_in, kh, kw]``
    use ``dim=(1, 2, 3)``.
    """
    s = w.sum(dim=dim, keepdim=True)
    return w * (total / (s + eps))


class LIFWTAState(NamedTuple):
    v: Tensor  # membrane [B, N]
    refractory: Tensor  # remaining refractory steps [B, N]


@dataclass(frozen=True)
class LIFWTAParams:
    """Excitatory layer of the Diehl & Cook network in discrete time (rest 0, threshold 1 + theta)."""

    beta: float = 0.9  # membrane decay per step
    threshold: float = 1.0
    refractory: int = 2
    k: int = 1  # winners per sample per step
    reset: str = "zero"  # "zero": winners reset to 0; "all": every neuron of the sample resets (strong WTA)

    def __post_init__(self) -> None:
        if not 0 <= self.beta <= 1 or self.refractory < 0 or self.k < 1 or self.reset not in ("zero", "all"):
            raise ValueError("need 0 <= beta <= 1, refractory >= 0, k >= 1, reset in ('zero', 'all')")


def lif_wta_step(x: Tensor, state: LIFWTAState, theta: Tensor, p: LIFWTAParams) -> tuple[Tensor, LIFWTAState]:
    """One step of a leaky layer with hard winner-take-all and adaptive threshold ``p.threshold + theta``.

    ``x``: input current ``[B, N]``. Returns ``(spikes [B, N], new_state)``.
    """
    active = state.refractory <= 0
    v = torch.where(active, p.beta * state.v + x, state.v)
    spikes = winner_take_all(torch.where(active, v, torch.full_like(v, -math.inf)), p.threshold + theta, p.k)
    if p.reset == "all":
        fired_sample = spikes.sum(1, keepdim=True) > 0
        v = torch.where(fired_sample, torch.zeros_like(v), v)
    else:
        v = v * (1 - spikes)
    refr = torch.where(spikes > 0, torch.full_like(state.refractory, p.refractory), state.refractory - 1)
    return spikes, LIFWTAState(v, refr)


def lif_wta_init(batch: int, n: int, dtype=torch.float32, device=None) -> LIFWTAState:
    z = torch.zeros(batch, n, dtype=dtype, device=device)
    return LIFWTAState(z, torch.zeros_like(z))
