"""Losses, regularisers and metrics for time-first network outputs ``[T, B, C]``.

Each loss is a registered value object with ``__call__(out, target) -> loss`` and ``predict(out) -> class``.
Spiking readouts use spike counts; an ``LI`` readout outputs membranes (use ``max_membrane_ce`` or
``mean_membrane_ce``; ``final_membrane_ce`` scores the last step's membrane, what a Loihi voltage readout reads).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .registry import Registry

LOSSES: Registry = Registry("loss")


def _check_out(out: torch.Tensor, target: torch.Tensor) -> None:
    if out.dim() != 3:
        raise ValueError(f"loss expects network output [T, B, C]; got shape {tuple(out.shape)}")
    if target.shape[0] != out.shape[1]:
        raise ValueError(f"batch mismatch: output has B={out.shape[1]} but target has {target.shape[0]} labels")


@LOSSES.register("rate_ce")
@dataclass(frozen=True)
class RateCrossEntropy:
    """Cross-entropy on spike counts: ``CE(sum_t s[t], y)`` (counts act as logits)."""

    def __call__(self, out, target):
        _check_out(out, target)
        return F.cross_entropy(out.sum(0), target)

    def predict(self, out):
        return out.sum(0).argmax(-1)


@LOSSES.register("count_mse")
@dataclass(frozen=True)
class CountMSE:
    """MSE between spike counts and target counts: ``correct_rate * T`` for the label, ``incorrect_rate * T``
    for the others (snnTorch's ``mse_count_loss``)."""

    correct_rate: float = 0.8
    incorrect_rate: float = 0.1

    def __call__(self, out, target):
        _check_out(out, target)
        T, _, C = out.shape
        goal = torch.full_like(out[0], self.incorrect_rate * T)
        goal[torch.arange(out.shape[1]), target] = self.correct_rate * T
        return F.mse_loss(out.sum(0), goal)

    def predict(self, out):
        return out.sum(0).argmax(-1)


@LOSSES.register("max_membrane_ce")
@dataclass(frozen=True)
class MaxMembraneCE:
    """Cross-entropy on the maximum over time of a non-spiking readout's membrane."""

    def __call__(self, out, target):
        _check_out(out, target)
        return F.cross_entropy(out.max(0).values, target)

    def predict(self, out):
        return out.max(0).values.argmax(-1)


@LOSSES.register("mean_membrane_ce")
@dataclass(frozen=True)
class MeanMembraneCE:
    """Cross-entropy on the time-average of a readout's membrane."""

    def __call__(self, out, target):
        _check_out(out, target)
        return F.cross_entropy(out.mean(0), target)

    def predict(self, out):
        return out.mean(0).argmax(-1)


@LOSSES.register("final_membrane_ce")
@dataclass(frozen=True)
class FinalMembraneCE:
    """Cross-entropy on a readout's membrane at the last step, divided by the number of steps ``T``: with a
    non-leaky integrator (``LI(beta=1)``) that is the mean synaptic input over the window. The score a Loihi
    voltage readout gives (the output neurons' ``v`` read once, after the last step); dividing by ``T`` only
    scales the logits, the prediction is the argmax of the last membrane."""

    def __call__(self, out, target):
        _check_out(out, target)
        return F.cross_entropy(out[-1] / out.shape[0], target)

    def predict(self, out):
        return out[-1].argmax(-1)


def get_loss(name_or_obj):
    if callable(name_or_obj) and not isinstance(name_or_obj, str):
        return name_or_obj
    return LOSSES.get(name_or_obj)()


def firing_rate_regularizer(records: dict[str, torch.Tensor], target: float = 0.05, weight: float = 1.0,
                            upper_only: bool = False) -> torch.Tensor:
    """Penalty ``weight * mean_l (r_l - target)^2`` on each recorded spiking layer's mean firing rate ``r_l``
    (``upper_only``: only rates above the target are penalised)."""
    if not records:
        return torch.zeros(())
    terms = []
    for s in records.values():
        r = s.mean()
        d = (r - target).clamp_min(0) if upper_only else (r - target)
        terms.append(d * d)
    return weight * torch.stack(terms).mean()


def accuracy(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of correct predictions."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    return float((pred == target).float().mean()) if target.numel() else float("nan")


def firing_rates(records: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean spikes per neuron per step for every recorded layer."""
    return {k: float(v.float().mean()) for k, v in records.items()}
