"""Recurrent layer on CPU: the orchestration of ``reference.py`` already runs the C++ neuron kernels per step
(through the dispatcher), so there is no separate CPU implementation of the loop itself."""

from __future__ import annotations

import torch


def available(x: torch.Tensor) -> bool:
    return False


def forward(*args):
    return None


def backward(*args):
    return None
