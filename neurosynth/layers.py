"""Network containers over time-first tensors.

:class:`SNN` is a ``Sequential`` for ``[T, B, ...]`` data: neuron modules (and any module with
``time_aware = True``) receive the whole sequence; every other module (Linear, Conv2d, pooling, Flatten,
BatchNorm, Dropout...) is applied to the ``[T*B, ...]`` flattened tensor, which is the fast path (one matmul
or convolution for all time steps).
"""

from __future__ import annotations

import torch
from torch import nn

from .neurons import NeuronModel, build_neuron
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


class SNN(nn.Sequential):
    """Sequential spiking network over ``[T, B, ...]``. ``forward(x)`` returns the last layer's output;
    ``forward(x, record=True)`` returns ``(out, records)`` with every spiking neuron layer's spike train
    (keyed by the layer's name in this container)."""

    def forward(self, x: torch.Tensor, record: bool = False):
        check_time_first(x, "SNN input")
        _check_first_layer(self, x)
        records: dict[str, torch.Tensor] = {}
        for name, m in self.named_children():
            x = m(x) if is_time_aware(m) else apply_flat(m, x)
            if record and ((isinstance(m, NeuronModel) and m.spiking) or isinstance(m, Recurrent)):
                records[name] = x
        return (x, records) if record else x


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

    def extra_repr(self) -> str:
        return f"steps={self.steps}"


class Recurrent(nn.Module):
    """A recurrently connected spiking layer: ``x_t + W_rec s_{t-1}`` feeds any registered neuron.

    ``input`` is the already-projected feed-forward current ``[T, B, N]``. Runs the neuron's pure step in the
    reference time loop (recurrence prevents the fused whole-sequence kernel).
    """

    time_aware = True

    def __init__(self, size: int, neuron: str | NeuronModel = "lif", bias: bool = False, **neuron_kw):
        super().__init__()
        self.size = size
        self.rec = nn.Linear(size, size, bias=bias)
        self.neuron = neuron if isinstance(neuron, NeuronModel) else build_neuron(neuron, **neuron_kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_time_first(x, "Recurrent input", feature_shape=(self.size,))
        state = self.neuron.initial_state(x[0])
        p = self.neuron.params()
        s = torch.zeros_like(x[0])
        outs = []
        for t in range(x.shape[0]):
            s, state, _ = self.neuron.step(x[t] + self.rec(s), state, p)
            outs.append(s)
        return torch.stack(outs)


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
