"""Network containers over time-first tensors.

:class:`SNN` is a ``Sequential`` for ``[T, B, ...]`` data: neuron modules (and any module with
``time_aware = True``) receive the whole sequence; every other module (Linear, Conv2d, pooling, Flatten,
BatchNorm, Dropout...) is applied to the ``[T*B, ...]`` flattened tensor, which is the fast path (one matmul
or convolution for all time steps).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from . import functional as F
from .neurons import ALIF, LIF, CubaLIF, NeuronModel, build_neuron
from .utils import check_time_first


def is_time_aware(m: nn.Module) -> bool:
    return isinstance(m, NeuronModel) or getattr(m, "time_aware", False)


def apply_flat(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a stateless module to every time step at once through the ``[T*B, ...]`` view."""
    T, B = x.shape[:2]
    y = module(x.reshape(T * B, *x.shape[2:]))
    return y.reshape(T, B, *y.shape[1:])


def _check_first_layer(net: nn.Module, x: torch.Tensor) -> None:
    """A clear ValueError when the input's feature size does not fit the first Linear/Conv layer."""
    first = next(iter(net.children()), None)
    if isinstance(first, nn.Linear) and x.shape[-1] != first.in_features:
        raise ValueError(f"SNN input has {x.shape[-1]} features (shape {tuple(x.shape)}) but the first Linear layer "
                         f"expects {first.in_features}: pass [T, B, {first.in_features}]")
    if isinstance(first, nn.Conv2d) and (x.dim() != 5 or x.shape[2] != first.in_channels):
        raise ValueError(f"SNN input has shape {tuple(x.shape)} but the first Conv2d layer expects "
                         f"[T, B, {first.in_channels}, H, W]")


RECORD_MODES = ("spikes", "membrane", "all")


def _record_mode(record) -> str | None:
    if record is None or record is False:
        return None
    if record is True:
        return "spikes"
    if record not in RECORD_MODES:
        raise ValueError(f"record must be False, True, 'spikes', 'membrane' or 'all'; got {record!r}")
    return record


class SNN(nn.Sequential):
    """Sequential spiking network over ``[T, B, ...]``.

    ``forward(x)`` returns the last layer's output. Options:

    - ``record="spikes"`` (or ``True``) / ``"membrane"`` / ``"all"``: also return the records, keyed by the
      layer's name in this container: every spiking neuron layer's (and ``Recurrent`` layer's) spike train for
      ``"spikes"``; every neuron layer's pre-reset membrane trace (the membrane itself for a non-spiking
      readout such as ``LI``) for ``"membrane"``; ``{"spikes": {...}, "membrane": {...}}`` for ``"all"``.
    - ``state`` / ``return_state=True``: chunked streaming. ``state`` is the dict returned by a previous call
      (``None``: every layer at rest) holding each stateful layer's state (neurons, ``Recurrent``, ``Delay``);
      running a sequence in chunks gives the same output as running it whole::

          out1, st = net(x[:50], return_state=True)
          out2, st = net(x[50:], state=st, return_state=True)

    Returns ``out``, ``(out, records)``, ``(out, state)`` or ``(out, records, state)``. With ``record`` or a state
    the stateful layers are run through their ``run`` method, so module forward hooks on those layers do not fire
    (energy counters and the Loihi comparison use the plain call).
    """

    def forward(self, x: torch.Tensor, state: dict | None = None, record: bool | str = False,
                return_state: bool = False):
        check_time_first(x, "SNN input")
        _check_first_layer(self, x)
        mode = _record_mode(record)
        if mode is None and state is None and not return_state:
            for m in self.children():
                x = m(x) if is_time_aware(m) else apply_flat(m, x)
            return x
        state = dict(state or {})
        new_state: dict = {}
        spikes: dict[str, torch.Tensor] = {}
        membrane: dict[str, torch.Tensor] = {}
        for name, m in self.named_children():
            trace = None
            if hasattr(m, "run") and is_time_aware(m):
                x, new_state[name], trace = m.run(x, state.get(name))
            else:
                x = m(x) if is_time_aware(m) else apply_flat(m, x)
            neuron_like = isinstance(m, (NeuronModel, Recurrent))
            if neuron_like and getattr(m, "spiking", True):
                spikes[name] = x
            if neuron_like and trace is not None:
                membrane[name] = trace
        out: tuple = (x,)
        if mode is not None:
            out += ({"spikes": spikes, "membrane": membrane}[mode] if mode != "all"
                    else {"spikes": spikes, "membrane": membrane},)
        if return_state:
            out += (new_state,)
        return out if len(out) > 1 else out[0]


class Delay(nn.Module):
    """Shift a sequence ``steps`` steps later in time, filling with zeros (Loihi's one-step synaptic delay)."""

    time_aware = True

    def __init__(self, steps: int = 1):
        super().__init__()
        if steps < 0:
            raise ValueError(f"Delay steps must be >= 0; got {steps}")
        self.steps = int(steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.steps == 0:
            return x
        pad = torch.zeros_like(x[: self.steps])
        return torch.cat([pad, x[: x.shape[0] - self.steps]], 0)[: x.shape[0]]

    def run(self, x: torch.Tensor, state: torch.Tensor | None = None):
        """``(delayed x, state, None)``; ``state`` holds the last ``steps`` inputs of the previous chunk."""
        if self.steps == 0:
            return x, x[:0], None
        if state is None:
            state = torch.zeros((self.steps, *x.shape[1:]), dtype=x.dtype, device=x.device)
        full = torch.cat([state.to(x.dtype), x], 0)
        T = x.shape[0]
        return full[:T], full[T:], None

    def extra_repr(self) -> str:
        return f"steps={self.steps}"


class RecurrentState(NamedTuple):
    """State of a :class:`Recurrent` layer: the last spikes ``s [B, N]`` and the neuron's own state."""

    s: torch.Tensor
    neuron: Any


class Recurrent(nn.Module):
    """A recurrently connected spiking layer: ``x_t + W_rec s_{t-1}`` feeds any registered neuron.

    ``input`` is the already-projected feed-forward current ``[T, B, N]``; the current at step t is
    ``x[t] + rec(s[t-1])`` (``rec`` is an ``nn.Linear``; its bias is added at every step).

    Two paths, with bit-identical spikes in float32: for the fused neurons (LIF, IF, CubaLIF, ALIF with the
    built-in dynamics and ``backend != "python"``) the fast path :func:`neurosynth.functional.recurrent` runs one
    GEMM plus one fused elementwise kernel per step and a hand-written reverse-scan backward; every other neuron
    (custom ``charge``, ``reset_delay``), ``backend="python"`` and a ``rec`` Linear with forward hooks (energy
    counters see every step) run the reference loop over the neuron's pure ``dynamics``.
    """

    time_aware = True

    def __init__(self, size: int, neuron: str | NeuronModel = "lif", bias: bool = False, **neuron_kw):
        super().__init__()
        self.size = size
        self.rec = nn.Linear(size, size, bias=bias)
        self.neuron = neuron if isinstance(neuron, NeuronModel) else build_neuron(neuron, **neuron_kw)

    def initial_state(self, x0: torch.Tensor) -> RecurrentState:
        """Rest: no previous spikes, the neuron's initial state (``x0``: one step ``[B, N]``)."""
        return RecurrentState(torch.zeros_like(x0), self.neuron.initial_state(x0))

    def _hooked(self) -> bool:
        """Forward hooks on ``rec`` (energy counters): the python loop runs, so they see every step."""
        return bool(self.rec._forward_hooks or self.rec._forward_pre_hooks or _has_global_hooks())

    def _fast_op(self, neuron_state) -> tuple[str, list, list] | None:
        n = self.neuron
        if self._hooked():
            return None
        if not n._use_fused(neuron_state):
            return None
        p = n.params()
        if isinstance(n, LIF):
            if n._fused_mode() == "subtract_delayed":
                return None
            return "lif", [neuron_state.v], [p.beta, p.threshold]
        if isinstance(n, CubaLIF):
            return "cubalif", [neuron_state.i, neuron_state.v], [p.alpha, p.beta, p.threshold]
        if isinstance(n, ALIF):
            return "alif", [neuron_state.v, neuron_state.a], [p.beta, p.threshold, p.adapt_decay, p.adapt_scale]
        return None

    def run(self, x: torch.Tensor, state: RecurrentState | None = None):
        """``(spikes [T, B, N], final state, membrane trace [T, B, N])``; ``state`` continues a sequence."""
        check_time_first(x, "Recurrent input", feature_shape=(self.size,))
        if state is None:
            state = self.initial_state(x[0])
        fast = self._fast_op(state.neuron)
        if fast is not None:
            name, states0, params = fast
            s, h, final = F.recurrent(name, x, self.rec.weight, self.rec.bias, state.s, states0, params,
                                      reset_mode=self.neuron.reset, detach_reset=self.neuron.detach_reset,
                                      surrogate=self.neuron.surrogate)
            return s, RecurrentState(s[-1], self.neuron.State(*final)), h
        p = self.neuron.params()
        if self.neuron.backend != "python" and not self._hooked():  # a custom neuron (adLIF): its generated kernel
            out = F.custom_recurrent(self.neuron, x, self.rec.weight, self.rec.bias, state.s, state.neuron, p)
            if out is not None:
                s, nstate, h = out
                return s, RecurrentState(s[-1], nstate), h
        s_prev, nstate = state
        outs, trace = [], []
        for t in range(x.shape[0]):
            s_prev, nstate, h = self.neuron.dynamics(x[t] + self.rec(s_prev.to(x.dtype)), nstate, p)
            outs.append(s_prev)
            trace.append(h)
        return torch.stack(outs), RecurrentState(s_prev, nstate), torch.stack(trace)

    def forward(self, x: torch.Tensor, state: RecurrentState | None = None) -> torch.Tensor:
        return self.run(x, state)[0]


def _has_global_hooks() -> bool:
    from torch.nn.modules import module as _m

    return bool(getattr(_m, "_global_forward_hooks", None) or getattr(_m, "_global_forward_pre_hooks", None))


class MeanOverTime(nn.Module):
    """Readout helper: ``[T, B, ...] -> [B, ...]`` mean over time."""

    time_aware = True

    def forward(self, x):
        return x.mean(0)


class SumPool2d(nn.Module):
    """Sum pooling (average pooling times the window size): the spike-count-preserving pool Loihi/NIR use."""

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding

    def forward(self, x):
        k = self.kernel_size
        return torch.nn.functional.avg_pool2d(x, k, self.stride, self.padding, count_include_pad=True) * (k * k)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
