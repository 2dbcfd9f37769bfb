"""The ``float`` target: a GPU/CPU in floating point. Any registered neuron, the whole MSE-NAS space (batch norm,
graded motif outputs, skips, feedback, lateral inhibition, LI readout); no sequential lowering and no exporter
(the model is used as trained). The module is named ``float_`` because ``float`` is a Python builtin."""

from __future__ import annotations

from .base import TARGETS, Target

FLOAT = TARGETS.add("float", Target(
    name="float", description="floating point on a CPU/GPU: the full search space, not exported", lowers=False))
