"""Learning-rate schedules for plasticity rules: ``lr_at(schedule, step)`` is a pure function of the step."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ..registry import Registry

SCHEDULES: Registry[Callable[[LRSchedule, int], float]] = Registry("learning-rate schedule")


@dataclass(frozen=True)
class LRSchedule:
    """``kind``: constant | exponential (``lr * gamma**step``) | linear / cosine (``lr`` -> ``lr_final`` over
    ``total_steps``, then constant) | step (``lr * gamma**(step // step_size)``)."""

    kind: str = "constant"
    lr: float = 1.0
    lr_final: float = 0.0
    gamma: float = 1.0
    total_steps: int = 1
    step_size: int = 1

    def __post_init__(self) -> None:
        if self.kind.lower() not in SCHEDULES:
            raise ValueError(f"unknown schedule kind {self.kind!r}; known: {SCHEDULES.names()}")
        if self.total_steps < 1 or self.step_size < 1:
            raise ValueError("total_steps and step_size must be >= 1")
        if self.lr < 0 or self.lr_final < 0 or self.gamma < 0:
            raise ValueError("lr, lr_final and gamma must be >= 0")

    def __call__(self, step: int) -> float:
        return lr_at(self, step)


def lr_at(schedule: LRSchedule, step: int) -> float:
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return SCHEDULES.get(schedule.kind)(schedule, step)


@SCHEDULES.register("constant")
def _constant(s: LRSchedule, step: int) -> float:
    return s.lr


@SCHEDULES.register("exponential")
def _exponential(s: LRSchedule, step: int) -> float:
    return s.lr * s.gamma**step


@SCHEDULES.register("step")
def _step(s: LRSchedule, step: int) -> float:
    return s.lr * s.gamma ** (step // s.step_size)


@SCHEDULES.register("linear")
def _linear(s: LRSchedule, step: int) -> float:
    f = min(step / s.total_steps, 1.0)
    return s.lr + (s.lr_final - s.lr) * f


@SCHEDULES.register("cosine")
def _cosine(s: LRSchedule, step: int) -> float:
    f = min(step / s.total_steps, 1.0)
    return s.lr_final + (s.lr - s.lr_final) * 0.5 * (1.0 + math.cos(math.pi * f))
