"""The reference time loop: :func:`scan` iterates a neuron's pure one-step function over a ``[T, B, ...]`` sequence.

It runs every neuron (built-in and custom), is differentiated by autograd, and is the reference the fused
whole-sequence operators are tested against (``backend="python"``). The fused operators themselves are reached
through :mod:`neurosynth.functional` (:func:`~neurosynth.functional.lif`, :func:`~neurosynth.functional.cubalif`,
:func:`~neurosynth.functional.alif`, :func:`~neurosynth.functional.recurrent`), which call the one dispatcher of
:mod:`neurosynth._ops`; their kernel contracts (dynamics, backward) are stated in ``neurosynth/_ops/<op>/reference.py``.
"""

from __future__ import annotations

import torch


def scan(neuron, x: torch.Tensor, state, params):
    """Reference backend: loop ``neuron.dynamics`` (the pure step) over time. Returns ``(out [T,...], state, trace [T,...])``.

    ``out`` is the spike train (or the membrane for non-spiking neurons); ``trace`` is the pre-reset
    membrane ``h``.
    """
    outs, trace = [], []
    for t in range(x.shape[0]):
        out, state, h = neuron.dynamics(x[t], state, params)
        outs.append(out)
        trace.append(h)
    return torch.stack(outs), state, torch.stack(trace)
