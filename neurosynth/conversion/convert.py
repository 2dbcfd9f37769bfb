r"""ANN -> SNN conversion with integrate-and-fire neurons and reset by subtraction.

Pipeline (:func:`convert`):

1. **Fold BatchNorm** into the preceding ``Linear``/``Conv2d`` (:func:`fold_batchnorm`):
   :math:`W' = W \gamma/\sigma`, :math:`b' = (b - \mu)\gamma/\sigma + \beta`.
2. **Fold AvgPool (+Flatten) into a following Linear** (exact: the pool is linear), so every synapse of the
   SNN receives binary spikes. An AvgPool followed by a Conv2d is kept as a layer (rates pass through it
   unchanged; its outputs are then fractional).
3. **Data-based threshold balancing** (Diehl et al. 2015; Rueckauer et al. 2017): :math:`\lambda_l` = the
   ``percentile``-th percentile of the non-zero ReLU activations of layer ``l`` on calibration data (robust to
   outliers; 99.9 by default); weights are rescaled :math:`W_l \leftarrow W_l \lambda_{l-1}/\lambda_l`,
   :math:`b_l \leftarrow b_l/\lambda_l` (:math:`\lambda_0 = 1` for analog input, the output layer keeps
   :math:`\lambda_L = 1` so it returns the ANN's logits), and every ReLU becomes an
   :class:`neurosynth.neurons.IF` with threshold 1 and **reset by subtraction** (Rueckauer et al. 2017;
   Han et al. 2020, "RMP-SNN"), which keeps the residual charge instead of discarding it.
4. **Initial membrane** :math:`v(0) = \theta/2` (``v_init=0.5``): makes the spike count the *rounded* rather
   than the floored activation, removing the systematic under-estimate of rates (Bu et al. 2022, "Optimal
   ANN-SNN conversion for high-accuracy and ultra-low-latency spiking neural networks", ICLR; equivalent to the
   :math:`\theta/2T` shift of Deng & Gu 2021, ICLR). Implemented by :class:`FirstStepCharge`, which adds
   ``v_init * threshold`` to the input of the first step (identical for a non-leaky IF neuron).

The input is fed as a constant current every step (direct/analog encoding, Rueckauer et al. 2017); the
output layer is a non-spiking accumulator and the prediction at time ``t`` is the mean of its outputs over
the first ``t`` steps (:func:`accuracy_vs_T` reads every ``T`` from one simulation).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn


class FirstStepCharge(nn.Module):
    """Adds ``value`` to the first time step of ``[T, B, ...]`` (an initial membrane for the next IF neuron)."""

    time_aware = True

    def __init__(self, value: float = 0.5):
        super().__init__()
        self.value = float(value)

    def forward(self, x: Tensor) -> Tensor:
        if self.value == 0.0:
            return x
        out = x.clone()
        out[0] = out[0] + self.value
        return out

    def extra_repr(self) -> str:
        return f"value={self.value}"


try:  # register the layer so converted SNNs round-trip through ArchSpec / run directories
    from ..arch import layer_type

    @layer_type("first_step_charge", FirstStepCharge, lambda m: {"value": m.value})
    def _first_step_charge(cfg):
        return FirstStepCharge(float(cfg.get("value", 0.5)))
except ValueError:  # already registered (module reloaded)
    pass


SUPPORTED = (nn.Linear, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.AvgPool2d, nn.Flatten, nn.Dropout,
             nn.Identity)


def ann_layers(model: nn.Module) -> list[nn.Module]:
    """The layers of a sequential ANN (``nn.Sequential`` / ``neurosynth.SNN`` of supported modules)."""
    layers = list(model.children()) if isinstance(model, nn.Sequential) else [model]
    for i, m in enumerate(layers):
        if isinstance(m, nn.MaxPool2d):
            raise ValueError(f"layer {i} is MaxPool2d, which rate-coded IF neurons cannot reproduce; "
                             "train the ANN with AvgPool2d instead")
        if not isinstance(m, SUPPORTED):
            raise ValueError(f"layer {i} ({type(m).__name__}) is not supported for conversion; supported: "
                             f"{', '.join(c.__name__ for c in SUPPORTED)}")
    return layers


def fold_batchnorm(layers: list[nn.Module]) -> list[nn.Module]:
    """Copies of ``layers`` with every BatchNorm merged into the preceding Linear/Conv2d (eval statistics)."""
    out: list[nn.Module] = []
    for m in layers:
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if not out or not isinstance(out[-1], (nn.Linear, nn.Conv2d)):
                raise ValueError("a BatchNorm must directly follow a Linear or Conv2d layer to be folded")
            prev = out[-1]
            std = torch.sqrt(m.running_var + m.eps)
            gamma = m.weight if m.affine else torch.ones_like(std)
            beta = m.bias if m.affine else torch.zeros_like(std)
            scale = (gamma / std).detach()
            shape = (-1,) + (1,) * (prev.weight.dim() - 1)
            b = prev.bias.detach() if prev.bias is not None else torch.zeros_like(m.running_mean)
            new = copy.deepcopy(prev)
            if new.bias is None:
                new.bias = nn.Parameter(torch.zeros_like(m.running_mean))
            with torch.no_grad():
                new.weight.copy_(prev.weight * scale.reshape(shape))
                new.bias.copy_((b - m.running_mean) * scale + beta.detach())
            out[-1] = new
        elif isinstance(m, (nn.Dropout, nn.Identity)):
            continue
        else:
            out.append(copy.deepcopy(m))
    return out


def _avgpool_matrix(pool: nn.AvgPool2d, in_shape: tuple[int, int, int]) -> Tensor:
    """The matrix ``P`` with ``flatten(pool(x)) = P @ flatten(x)`` for one sample of shape ``in_shape``."""
    n = int(np.prod(in_shape))
    eye = torch.eye(n, dtype=torch.float64).reshape(n, *in_shape)
    return pool(eye).reshape(n, -1).T  # [n_out, n_in]


def fold_avgpool(layers: list[nn.Module], input_shape: tuple[int, ...]) -> list[nn.Module]:
    """Merge ``AvgPool2d [-> Flatten] -> Linear`` into one Linear on the unpooled (flattened) input."""
    out: list[nn.Module] = []
    shape = tuple(input_shape)
    i = 0
    while i < len(layers):
        m = layers[i]
        nxt = layers[i + 1:i + 3]
        if isinstance(m, nn.AvgPool2d) and len(shape) == 3:
            j = i + 1 + (1 if nxt and isinstance(nxt[0], nn.Flatten) else 0)
            if j < len(layers) and isinstance(layers[j], nn.Linear):
                lin = layers[j]
                P = _avgpool_matrix(m, shape)
                if P.shape[0] != lin.in_features:
                    raise ValueError(f"AvgPool output ({P.shape[0]}) does not match Linear in_features ({lin.in_features})")
                new = nn.Linear(P.shape[1], lin.out_features, bias=lin.bias is not None)
                with torch.no_grad():
                    new.weight.copy_((lin.weight.double() @ P).float())
                    if lin.bias is not None:
                        new.bias.copy_(lin.bias)
                out += [nn.Flatten(), new]
                shape = (lin.out_features,)
                i = j + 1
                continue
        out.append(m)
        with torch.no_grad():
            shape = tuple(m(torch.zeros(1, *shape)).shape[1:])
        i += 1
    return out


@torch.no_grad()
def activation_scales(layers: list[nn.Module], x: Tensor, percentile: float = 99.9) -> list[float]:
    """``lambda`` for every ReLU (in order): the ``percentile`` of its non-zero activations on ``x [B, ...]``."""
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    scales = []
    h = x
    for m in layers:
        h = m(h)
        if isinstance(m, nn.ReLU):
            nz = h[h > 0].double().cpu().numpy()
            scales.append(float(np.percentile(nz, percentile)) if nz.size else 1.0)
    return scales


@dataclass(frozen=True)
class ConversionReport:
    scales: tuple[float, ...]
    percentile: float
    v_init: float
    n_neuron_layers: int


@torch.no_grad()
def convert(ann: nn.Module, calib_x: Tensor, *, percentile: float = 99.9, v_init: float = 0.5,
            input_shape: tuple[int, ...] | None = None) -> tuple[nn.Module, ConversionReport]:
    """Convert a trained ReLU ANN to an SNN of IF neurons (see the module docstring).

    ``calib_x [B, ...]``: calibration inputs (no labels). Returns ``(snn, report)``; ``snn`` is a
    :class:`neurosynth.SNN` taking ``[T, B, ...]`` (the analog input repeated each step) and returning the output
    layer's per-step currents ``[T, B, classes]``.
    """
    from ..layers import SNN
    from ..neurons import IF

    if not 0 <= v_init <= 1:
        raise ValueError(f"v_init is a fraction of the threshold in [0, 1], got {v_init}")
    layers = ann_layers(ann)
    was_training = ann.training
    ann.eval()
    try:
        layers = fold_batchnorm(layers)
    finally:
        ann.train(was_training)
    layers = fold_avgpool(layers, tuple(input_shape or calib_x.shape[1:]))
    for m in layers:
        m.eval()
    scales = activation_scales(layers, calib_x, percentile)
    out: list[nn.Module] = []
    prev_scale, k = 1.0, 0
    for i, m in enumerate(layers):
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            lam = scales[k] if _relu_before_next_weight(layers, i) else 1.0
            new = copy.deepcopy(m)
            new.weight.mul_(prev_scale / lam)
            if new.bias is not None:
                new.bias.div_(lam)
            out.append(new)
        elif isinstance(m, nn.ReLU):
            out += [FirstStepCharge(v_init), IF(threshold=1.0, reset="subtract")]
            prev_scale = scales[k]
            k += 1
        else:
            out.append(m)
    snn = SNN(*out)
    snn.eval()
    return snn, ConversionReport(tuple(scales), percentile, v_init, k)


def _relu_before_next_weight(layers: list[nn.Module], i: int) -> bool:
    for m in layers[i + 1:]:
        if isinstance(m, nn.ReLU):
            return True
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            return False
    return False


def repeat_input(x: Tensor, T: int) -> Tensor:
    """Direct (analog) encoding: ``x [B, ...]`` repeated ``T`` times -> ``[T, B, ...]``."""
    return x.unsqueeze(0).expand(T, *x.shape).contiguous()


@torch.no_grad()
def accuracy_vs_T(snn: nn.Module, x: Tensor, y: Tensor, Ts: list[int], batch_size: int = 256) -> dict[int, float]:
    """Accuracy of the converted SNN at every ``T`` in ``Ts`` from one simulation of ``max(Ts)`` steps
    (prediction at ``T`` = argmax of the output summed over the first ``T`` steps)."""
    if not Ts or min(Ts) < 1:
        raise ValueError("Ts must be a non-empty list of positive integers")
    t_max = max(Ts)
    correct = dict.fromkeys(Ts, 0)
    for i in range(0, len(x), batch_size):
        out = snn(repeat_input(x[i:i + batch_size], t_max))  # [T, B, C]
        cum = out.cumsum(0)
        for T in Ts:
            correct[T] += int((cum[T - 1].argmax(-1) == y[i:i + batch_size]).sum())
    return {T: correct[T] / len(x) for T in Ts}


@torch.no_grad()
def ann_accuracy(ann: nn.Module, x: Tensor, y: Tensor) -> float:
    h = x
    was = ann.training
    ann.eval()
    for m in ann_layers(ann):
        h = m(h)
    ann.train(was)
    return float((h.argmax(-1) == y).float().mean())


__all__ = ["ConversionReport", "FirstStepCharge", "accuracy_vs_T", "activation_scales", "ann_accuracy", "ann_layers",
           "convert", "fold_avgpool", "fold_batchnorm", "repeat_input"]
