r"""The multi-step engine: the one place that iterates over time.

Two backends run a neuron layer over a whole ``[T, B, ...]`` sequence:

- ``python``: :func:`scan`, a readable loop over the neuron's pure ``step`` function, differentiated by
  autograd. It runs every neuron (built-in and custom) and is the reference.
- ``fused``: :class:`FusedLIF`, one ``autograd.Function`` for the whole sequence of a LIF/IF layer. The forward
  recurrence is a tight loop (a C++ kernel from :mod:`neurosynth._cext` when it compiles, else a pure-torch
  loop of ``out=`` ops); it saves only the pre-reset membrane ``h`` and the backward is a reverse-time scan.
  With the C++ kernel and a built-in surrogate the whole backward (surrogate, reset derivative, scan) is one
  pass over ``h``; otherwise the surrogate is evaluated by torch and the scan runs in C++ or torch. Both paths
  give spikes bit-identical to the ``python`` backend (no fused multiply-add anywhere) and gradients equal to
  its within float rounding (tests/core/test_fused.py).

LIF dynamics (per element, ``mode`` selects the reset):

.. math::
    h_t = \beta v_{t-1} + x_t \;[-\ \vartheta s_{t-1}\ \text{if delayed subtract}],\quad
    s_t = \Theta(h_t - \vartheta),\quad
    v_t = h_t - \vartheta s_t \;|\; h_t (1 - s_t) \;|\; h_t .

Backward, with :math:`a_t = g_{s_t}\,\sigma'(h_t-\vartheta)` and :math:`d_t = \partial v_t/\partial h_t`:
:math:`g_{h_t} = a_t + d_t\,\beta\,g_{h_{t+1}}`, :math:`g_{x_t} = g_{h_t}`,
:math:`g_\beta = \sum_t g_{h_t} v_{t-1}`, and :math:`g_\vartheta` from the threshold's uses in firing and reset.
"""

from __future__ import annotations

import torch

MODES = {"subtract": 0, "zero": 1, "none": 2, "subtract_delayed": 3}


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


def _forward_torch(x, v0, beta, thr, mode):
    """The pure-torch LIF forward (:func:`neurosynth._ops.lif.reference.forward`)."""
    from ._ops.lif import reference

    return reference.forward(x, v0, beta, thr, mode)


def _reverse_scan_torch(a, m, d, g_v, g_h):
    """The pure-torch reverse scan (:func:`neurosynth._ops.lif.reference.reverse_scan`)."""
    from ._ops.lif import reference

    reference.reverse_scan(a, m, d, g_v, g_h)


def fused_lif(x, v0, beta, thr, mode: str, detach_reset: bool, surrogate):
    """Run a LIF layer over ``x [T, ...]`` with the fused backend. Returns ``(spikes, h, v_final)``."""
    from ._ops.lif.autograd import lif

    return lif(x, v0, beta, thr, mode, detach_reset, surrogate)
