r"""Learnable per-synapse delays (DCLS-style; Hammouamri, Khalfaoui-Hassani & Masquelier, ICLR 2024).

A :class:`DelayedLinear` layer maps time-first input ``x [T, B, N_in]`` to ``y [T, B, N_out]``: every synapse
``(i, j)`` has a weight ``w_ij`` and a delay ``d_ij`` in ``[0, K - 1]`` steps (``K = max_delay``)::

    y[t, :, i] = b_i + sum_j sum_{k=0}^{K-1} w_ij g_ijk x[t - k, :, j]          (x[t] = 0 for t < 0)

**Training** (``module.train()``): ``d_ij`` is continuous (a learnable position) and the taps
``g_ijk = exp(-(k - d_ij)^2 / (2 sigma^2)) / sum_k' exp(-(k' - d_ij)^2 / (2 sigma^2))`` are a Gaussian over the
``K`` integer delays, normalised so that the kernel of each synapse sums to its weight; the gradient reaches both
``w`` and ``d``. A :class:`SigmaSchedule` shrinks ``sigma`` from about ``K/2`` (every delay heard, blurred) to a
small width (one delay) during the first part of training.

**Evaluation and export** (``module.eval()``, :meth:`DelayedLinear.hard_delays`): ``sigma = 0`` and the positions
are rounded (``torch.round``, half to even), so ``g_ijk = [k == round(d_ij)]``: each synapse has exactly one tap,
``y[t, :, i] = b_i + sum_j w_ij x[t - d_ij, :, j]``. That is what Loihi 2 runs (Lava's ``DelayDense``, netx
``delay`` dataset: a spike leaves at ``t`` and arrives at ``t + 1 + d``, the usual one-step ``Dense`` latency plus
``d``) and what the NIR export expands into ``Delay`` + ``Linear`` branches.

Implementation: the taps times the weights form a ``[N_out, N_in, K]`` kernel, applied by one causal
``conv1d`` over time (the input left-padded with ``K - 1`` steps: zeros, or the previous chunk's last inputs when
streaming with :meth:`DelayedLinear.run`). The kernel's tap axis is reversed (``conv1d`` correlates: its tap ``K-1-k``
multiplies ``x[t - k]``).

**Annealing sigma.** The training loop calls :func:`start_epoch` (``neurosynth.training.fit`` does) once at the
start of every epoch::

    for epoch in range(epochs):
        neurosynth.delays.start_epoch(model, epoch, epochs)   # sets every DelayedLinear's sigma
        ...train one epoch...

Each layer's schedule is part of its configuration (``sigma_init``, ``sigma_final``, ``anneal_fraction``: the
ArchSpec fields), so ``neurosynth train``, a resumed run and a custom loop anneal the same way: sigma decays
exponentially from ``sigma_init`` (default ``K / 2``) to ``sigma_final`` (default 0.23, as the DCLS reference) over
the first ``ceil(anneal_fraction * epochs)`` epochs (default a quarter) and stays there. A loop that does not call
:func:`start_epoch` trains at ``sigma_init``; evaluation always uses the rounded delays.

Positions are kept in ``[0, K - 1]``: the forward pass clamps them, and :meth:`DelayedLinear.clamp_params_` (called by
``neurosynth.training.clamp_params_`` after every optimiser step) projects the parameter back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .utils import check_time_first

#: the default width at the end of the annealing (the DCLS SHD configuration's final sigma)
SIGMA_FINAL = 0.23


# ----------------------------------------------------------------------------- functional core
def gaussian_taps(delays: torch.Tensor, sigma: float | torch.Tensor, max_delay: int) -> torch.Tensor:
    """Taps ``g [*delays.shape, K]`` over the integer delays ``0..K-1`` (each row sums to 1).

    ``sigma > 0``: a Gaussian centred on the (continuous) ``delays``, normalised over the ``K`` taps.
    ``sigma == 0``: one tap at ``round(delays)`` (clamped to ``[0, K-1]``)."""
    K = int(max_delay)
    d = delays.clamp(0, K - 1)
    sigma = torch.as_tensor(sigma, dtype=d.dtype, device=d.device)
    if float(sigma) <= 0:
        return F.one_hot(torch.round(d).long(), K).to(d.dtype)
    k = torch.arange(K, dtype=d.dtype, device=d.device)
    logits = -0.5 * ((k - d.unsqueeze(-1)) / sigma) ** 2
    return torch.softmax(logits, dim=-1)  # = exp(logits) / sum over taps, computed stably


def delay_kernel(weight: torch.Tensor, delays: torch.Tensor, sigma: float | torch.Tensor,
                 max_delay: int) -> torch.Tensor:
    """The ``[N_out, N_in, K]`` kernel ``w_ij g_ijk``; tap ``k`` is delay ``k`` (sum over ``k`` = ``w``).

    Subnormal entries (``|w g| <`` the dtype's smallest normal number, about 1e-38 in float32: a tap far from its
    Gaussian's centre times a weight) are set to zero. They add nothing a float sum keeps, but a CPU computes with
    them in microcode: with 3.7% of the kernel subnormal, which happens while sigma anneals, the spoken-digits delays
    recipe's first layer ran 3.45x slower on an Intel Xeon (``benchmarks/bench_delays.py``,
    ``delayed_conv1d_subnormal``)."""
    kernel = weight.unsqueeze(-1) * gaussian_taps(delays, sigma, max_delay)
    return kernel.masked_fill(kernel.abs() < torch.finfo(kernel.dtype).tiny, 0.0)


def delayed_linear(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None = None,
                   history: torch.Tensor | None = None) -> torch.Tensor:
    """``y[t] = bias + sum_k kernel[..., k] x[t - k]``: ``x [T, B, N_in]``, ``kernel [N_out, N_in, K]`` -> ``[T, B,
    N_out]``. ``history [K-1, B, N_in]`` holds the inputs before ``x[0]`` (default zeros)."""
    T, B, _ = x.shape
    K = kernel.shape[-1]
    xb = x.permute(1, 2, 0)  # [B, N_in, T]
    if K > 1:
        if history is None:
            xb = F.pad(xb, (K - 1, 0))
        else:
            xb = torch.cat([history.to(x.dtype).permute(1, 2, 0), xb], dim=-1)
    y = F.conv1d(xb, kernel.flip(-1).to(x.dtype), None if bias is None else bias.to(x.dtype))
    return y.permute(2, 0, 1)  # [T, B, N_out]


def delayed_linear_reference(x: torch.Tensor, weight: torch.Tensor, delays: torch.Tensor,
                             bias: torch.Tensor | None = None) -> torch.Tensor:
    """The explicit shift-and-sum definition with integer ``delays [N_out, N_in]``: ``y[t, :, i] = b_i +
    sum_j w_ij x[t - d_ij, :, j]`` (a loop over synapses; for tests and small checks)."""
    T, B, n_in = x.shape
    n_out = weight.shape[0]
    y = torch.zeros(T, B, n_out, dtype=x.dtype, device=x.device)
    for i in range(n_out):
        for j in range(n_in):
            d = int(delays[i, j])
            if d < T:
                y[d:, :, i] += weight[i, j].to(x.dtype) * x[: T - d, :, j]
    if bias is not None:
        y = y + bias.to(x.dtype)
    return y


@dataclass(frozen=True)
class SigmaSchedule:
    """Width of the delay Gaussians per epoch: exponential decay from ``init`` to ``final`` over the first
    ``ceil(anneal_fraction * epochs)`` epochs (at least one), then ``final``. ``init=None``: ``max_delay / 2``."""

    init: float | None = None
    final: float = SIGMA_FINAL
    anneal_fraction: float = 0.25

    def __post_init__(self):
        if self.init is not None and not (math.isfinite(self.init) and self.init > 0):
            raise ValueError(f"sigma_init must be a positive number; got {self.init}")
        if not (math.isfinite(self.final) and self.final >= 0):
            raise ValueError(f"sigma_final must be >= 0; got {self.final}")
        if not 0 < self.anneal_fraction <= 1:
            raise ValueError(f"anneal_fraction must lie in (0, 1]; got {self.anneal_fraction}")

    def start(self, max_delay: int) -> float:
        return float(self.init) if self.init is not None else max_delay / 2.0

    def sigma(self, epoch: int, epochs: int, max_delay: int) -> float:
        """Sigma for ``epoch`` (0-based) of ``epochs``."""
        s0, s1 = self.start(max_delay), float(self.final)
        n = max(1, math.ceil(self.anneal_fraction * epochs))
        if epoch >= n:
            return s1
        if s1 <= 0:  # decay geometrically towards a tiny width, then reach 0 at the end of the annealing
            s1 = min(s0, 1e-3)
        return s0 * (s1 / s0) ** (epoch / n)


# ----------------------------------------------------------------------------- module
class DelayedLinear(nn.Module):
    """A Linear synapse with one learnable delay per synapse (module docstring): ``[T, B, in] -> [T, B, out]``.

    Args:
        in_features, out_features: sizes.
        max_delay: ``K``, the number of integer delays ``0..K-1`` (Loihi 2: ``K <= 63``).
        bias: add a learnable bias (Loihi exports need ``bias=False``).
        sigma_init, sigma_final, anneal_fraction: the :class:`SigmaSchedule` (see :func:`start_epoch`).
        generator: ``torch.Generator`` for the initialisation (weights like ``nn.Linear``, delays uniform in
            ``[0, K-1]``); ``None`` uses torch's default generator (seeded by the entry points).
    """

    time_aware = True

    def __init__(self, in_features: int, out_features: int, max_delay: int = 25, bias: bool = False,
                 sigma_init: float | None = None, sigma_final: float = SIGMA_FINAL, anneal_fraction: float = 0.25,
                 generator: torch.Generator | None = None):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"DelayedLinear sizes must be >= 1; got {in_features} -> {out_features}")
        if int(max_delay) != max_delay or max_delay < 1:
            raise ValueError(f"max_delay (the number of delay taps K: delays 0..K-1) must be an integer >= 1; "
                             f"got {max_delay}")
        self.in_features, self.out_features, self.max_delay = int(in_features), int(out_features), int(max_delay)
        self.schedule = SigmaSchedule(sigma_init, sigma_final, anneal_fraction)
        bound = 1.0 / math.sqrt(in_features)  # nn.Linear's default init range
        self.weight = nn.Parameter(
            (torch.rand(out_features, in_features, generator=generator) * 2 - 1) * bound)
        self.delay = nn.Parameter(torch.rand(out_features, in_features, generator=generator) * (self.max_delay - 1))
        self.bias = nn.Parameter((torch.rand(out_features, generator=generator) * 2 - 1) * bound) if bias else None
        self.register_buffer("sigma", torch.tensor(self.schedule.start(self.max_delay)))

    # the configuration (ArchSpec fields)
    def config(self) -> dict:
        return {"in_features": self.in_features, "out_features": self.out_features, "max_delay": self.max_delay,
                "bias": self.bias is not None, "sigma_init": self.schedule.init, "sigma_final": self.schedule.final,
                "anneal_fraction": self.schedule.anneal_fraction}

    def effective_weight(self) -> torch.Tensor:
        """The weight the forward pass uses (a quantising subclass overrides this)."""
        return self.weight

    def hard_delays(self) -> torch.Tensor:
        """The integer delays of evaluation and export, ``round(clamp(d, 0, K-1))`` as int64 ``[out, in]``."""
        return torch.round(self.delay.detach().clamp(0, self.max_delay - 1)).long()

    def kernel(self) -> torch.Tensor:
        """``[out, in, K]``: Gaussian taps of width ``sigma`` while training, one rounded tap in eval mode."""
        sigma = self.sigma if self.training else 0.0
        return delay_kernel(self.effective_weight(), self.delay, sigma, self.max_delay)

    def set_sigma(self, sigma: float) -> None:
        if not (math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"sigma must be >= 0; got {sigma}")
        self.sigma.fill_(float(sigma))

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Set ``sigma`` from the schedule for ``epoch`` (0-based) of ``epochs``."""
        self.set_sigma(self.schedule.sigma(epoch, epochs, self.max_delay))

    @torch.no_grad()
    def clamp_params_(self) -> None:
        """Project the delay positions back into ``[0, K-1]``."""
        self.delay.clamp_(0, self.max_delay - 1)

    def _check(self, x: torch.Tensor) -> None:
        check_time_first(x, "DelayedLinear input", feature_shape=(self.in_features,))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return delayed_linear(x, self.kernel(), self.bias)

    def run(self, x: torch.Tensor, state: torch.Tensor | None = None):
        """``(y, state, None)`` for chunked streaming: ``state [K-1, B, in]`` are the last inputs seen."""
        self._check(x)
        K = self.max_delay
        y = delayed_linear(x, self.kernel(), self.bias, history=state)
        if K == 1:
            return y, x[:0], None
        past = state if state is not None else x.new_zeros((K - 1, *x.shape[1:]))
        return y, torch.cat([past.to(x.dtype), x], 0)[-(K - 1):], None

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, max_delay={self.max_delay}, "
                f"bias={self.bias is not None}, sigma={float(self.sigma):.3g}")


def start_epoch(model: nn.Module, epoch: int, epochs: int) -> None:
    """Anneal every :class:`DelayedLinear` in ``model`` for ``epoch`` (0-based) of ``epochs``; call it once at the
    start of every epoch (``neurosynth.training.fit`` and the workflow do). The same as
    :func:`neurosynth.training.begin_epoch`, which tells every module with a ``start_epoch`` hook."""
    from .training import begin_epoch

    begin_epoch(model, epoch, epochs)


__all__ = ["DelayedLinear", "SigmaSchedule", "delay_kernel", "delayed_linear", "delayed_linear_reference",
           "gaussian_taps", "start_epoch", "SIGMA_FINAL"]
