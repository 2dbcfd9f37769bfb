"""The Loihi network description every backend reads (Lava builder, integer reference, netx writer).

:func:`extract` walks a trained torch model and returns a :class:`LoihiNet`, a frozen list of
``dense`` / ``conv`` / ``flatten`` layers with their (float) weights and neuron parameters, or raises
:class:`LoihiExportError` naming the first layer Loihi cannot run exactly and the fix. Nothing is
written anywhere before this check passes.

Supported torch modules (inside ``neurosynth.SNN`` / ``nn.Sequential``, nested or not):
``nn.Linear``/``QLinear``, ``neurosynth.delays.DelayedLinear`` (learned per-synapse delays, rounded: netx
``delay``, Lava ``DelayDense``) and ``nn.Conv2d``/``QConv2d`` without bias, ``nn.Flatten``, a one-step
``Delay`` after a synapse, ``LIF(reset='zero')`` / ``IF(reset='zero')`` / ``CubaLIF`` with shared
(per-layer) parameters, ``Recurrent`` (``QRecurrent``) after a Linear synapse (one ``dense_rec`` stage:
feed-forward + recurrent Dense into one LIF layer), ``QBias`` after a dense synapse's ``Delay(1)`` (Loihi's
per-neuron bias; plain LIF only), and ``Dropout``/``Identity`` (no-ops at inference).

A leaky integrator ``LI(beta)`` as the *last* layer is a **voltage readout**: Lava's LIF with ``du = 1`` computes
``v_t = v_{t-1} (1 - dv) + a_t``, which is ``LI``'s ``v_t = beta v_{t-1} + x_t``; its neurons get an infinite
threshold in float and ``vThMant = 131071`` (the 17-bit maximum) in fixed point, and the network's score is their
``v`` after the last step (:attr:`NeuronParams.voltage`). Fixed point keeps ``v`` in 24 bits: a membrane that
saturates (``|v| >= 2^23 - 64``, i.e. about 2048 in float units) is clipped, and one above ``131071 << 6`` fires
and resets to zero; the integer reference reproduces both, the float torch model neither (a trained readout
stays far below: the check reports any such step as a fixed-vs-torch difference, never silently).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..targets import loihi_qat as qat


class LoihiExportError(ValueError):
    """The model contains something Loihi 2 cannot run exactly; the message names the layer and the fix."""


#: the largest synaptic delay we export: Loihi 2 stores 6 bits (0..63) and Lava's bit-accurate DelayDense refuses
#: more than 63, but lava-dl netx and slayer clip to 62 (``research/delays_adlif.md`` 1.3), so 62 is what loads
MAX_DELAY = qat.MAX_DELAY_TAPS - 1


@dataclass(frozen=True)
class NeuronParams:
    """One layer of Lava ``LIF`` neurons (zero reset): float factors and their Loihi integers."""

    alpha: float  # current decay factor (0: no current state, i.e. plain LIF)
    beta: float  # voltage decay factor
    threshold: float  # math.inf: a voltage readout (see LoihiLayer.voltage)

    @property
    def voltage(self) -> bool:
        """A voltage readout: neurons that do not fire (float: threshold infinite; fixed point: ``vThMant`` at its
        17-bit maximum) and are read by their membrane ``v`` after the last step."""
        return math.isinf(self.threshold)

    @property
    def i_decay(self) -> int:
        return qat.i_decay(self.alpha)

    @property
    def v_decay(self) -> int:
        return qat.v_decay(self.beta)

    @property
    def vth_mant(self) -> int:
        return qat.VTH_MAX if self.voltage else qat.threshold_mant(self.threshold)

    # Lava LIF process arguments
    def lava_float(self) -> dict:
        return {"du": 1.0 - self.alpha, "dv": 1.0 - self.beta, "vth": self.threshold}

    def lava_fixed(self) -> dict:
        return {"du": self.i_decay - 1, "dv": self.v_decay, "vth": self.vth_mant}


@dataclass(frozen=True)
class LoihiLayer:
    """A synapse + neuron stage (``dense``/``conv``) or a ``flatten``.

    A ``dense`` stage with ``weight_rec`` is a recurrent layer (netx ``dense_rec``): its neurons also receive
    ``W_rec s_{t-1}``, their own spikes of the previous step (Lava's recurrent ``Dense`` delays by one step,
    exactly like :class:`neurosynth.layers.Recurrent`).

    Shapes are torch order: ``(N,)`` or ``(C, H, W)``. ``delayed`` says whether the *torch* model
    already delays this stage's synaptic output by one step (Lava always does).
    """

    kind: str
    name: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    weight: np.ndarray | None = None  # dense (N_out, N_in), conv (C_out, C_in/groups, kH, kW); float64
    neuron: NeuronParams | None = None
    delayed: bool = False
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    weight_rec: np.ndarray | None = None  # dense only: recurrent weight (N, N), netx ``dense_rec``
    # dense only: per-synapse delays (N_out, N_in) int64 in 0..MAX_DELAY (netx ``delay``, Lava ``DelayDense``): a
    # spike sent at t reaches the neuron at t + 1 + d (the synapse's one step plus d)
    delays: np.ndarray | None = None
    # dense only: per-neuron bias (N,) float64 on the 1/64 grid (qat.QBias; Lava ``bias_mant`` with netx's
    # ``bias_exp = 6``, added to v every step); plain LIF (alpha = 0) or LI readout only
    bias: np.ndarray | None = None

    def int_bias(self) -> np.ndarray:
        """The exported bias mantissas ``round(64 b)`` (netx ``bias``; Lava adds ``bias_mant << 6`` to ``v``)."""
        return np.round(self.bias * qat.BIAS_SCALE).astype(np.int64)

    @property
    def recurrent(self) -> bool:
        return self.weight_rec is not None

    @property
    def max_delay(self) -> int:
        """The largest per-synapse delay (0 without delays)."""
        return 0 if self.delays is None or self.delays.size == 0 else int(self.delays.max())

    def int_weight(self) -> np.ndarray:
        """The exported integer weight ``64 w`` (even, in [-256, 254]); see :func:`check_fixed`."""
        return _int_grid(self.weight)

    def int_weight_rec(self) -> np.ndarray:
        """The exported integer recurrent weight (netx ``weight_rec``), same grid as :meth:`int_weight`."""
        return _int_grid(self.weight_rec)


def _int_grid(w: np.ndarray) -> np.ndarray:
    w = np.round(w * (qat.W_SCALE / qat.W_STEP)) * qat.W_STEP
    return np.clip(w, qat.W_MIN, qat.W_MAX).astype(np.int64)


@dataclass(frozen=True)
class LoihiNet:
    input_shape: tuple[int, ...]
    layers: tuple[LoihiLayer, ...] = field(default_factory=tuple)

    @property
    def stages(self) -> list[LoihiLayer]:
        """The layers that have neurons (dense/conv), in order."""
        return [layer for layer in self.layers if layer.kind in ("dense", "conv")]

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.stages[-1].out_shape

    @property
    def voltage_readout(self) -> bool:
        """Whether the network is scored by its last stage's membrane after the last step (an ``LI`` readout),
        not by spike counts."""
        return self.stages[-1].neuron.voltage

    def torch_shifts(self) -> list[int]:
        """Per stage: how many steps the Lava spikes lag the torch spikes (delays torch lacks, cumulative)."""
        out, lag = [], 0
        for s in self.stages:
            lag += 0 if s.delayed else 1
            out.append(lag)
        return out


# ----------------------------------------------------------------------------- extraction
#: why the adaptive LIF family (adLIF, SE-adLIF) does not deploy (research/delays_adlif.md 4.3)
_ADLIF_WHY = ("no open Lava process or netx neuron type has adLIF's adaptation current w coupled to the membrane "
              "(Lava's LIF and ATRLIF do not; new neuron microcode needs Intel's closed lava-loihi extension); train "
              "with --neuron cubalif --reset zero for Loihi")
_REFUSE = {
    "MaxPool1d": "replace MaxPool with a strided convolution (Loihi/netx has no max-pooling)",
    "MaxPool2d": "replace MaxPool2d with a strided convolution (Loihi/netx has no max-pooling)",
    "AvgPool2d": "replace AvgPool2d with a strided QConv2d (netx cannot load pooling layers)",
    "AdaptiveAvgPool2d": "replace the adaptive pooling with a strided QConv2d or a QLinear",
    "BatchNorm1d": "fold BatchNorm into the weights and retrain with QAT, or remove it",
    "BatchNorm2d": "fold BatchNorm into the weights and retrain with QAT, or remove it",
    "ALIF": "Loihi's LIF has a fixed threshold: retrain with LIF(reset='zero') or CubaLIF",
    "AdLIF": _ADLIF_WHY,
    "SEAdLIF": _ADLIF_WHY,
    "Conv1d": "use Conv2d (Lava's Conv process is 2-D)",
}
_SKIP = (nn.Dropout, nn.Dropout2d, nn.Identity)


def _leaves(model: nn.Module, prefix: str = ""):
    """Modules in execution order, descending into Sequential containers (and SNN)."""
    children = list(model.named_children())
    if isinstance(model, nn.Sequential) or (children and type(model).__name__ == "SNN"):
        for name, child in children:
            yield from _leaves(child, f"{prefix}{name}.")
    else:
        yield prefix.rstrip("."), model


def _is_delay(m: nn.Module) -> bool:
    return type(m).__name__ == "Delay" and hasattr(m, "steps")


def _scalar(t: torch.Tensor, what: str, name: str) -> float:
    flat = t.detach().double().flatten()
    if flat.numel() == 0:
        raise LoihiExportError(f"layer {name}: empty {what}")
    if not bool((flat == flat[0]).all()):
        raise LoihiExportError(
            f"layer {name} ({what}): Lava's LIF process takes one {what} per layer but this layer has per-neuron "
            f"values ({flat.min().item():.4g}..{flat.max().item():.4g}); retrain with a shared {what}")
    return float(flat[0])


def _neuron_params(m: nn.Module, name: str) -> NeuronParams:
    from neurosynth import neurons as N

    cls = type(m).__name__
    if cls in _REFUSE:
        raise LoihiExportError(f"layer {name} ({cls}) cannot run on Loihi: {_REFUSE[cls]}")
    if isinstance(m, N.LI):  # a voltage readout (extract checks that it is the last layer)
        beta = _scalar(m.beta, "beta", name)
        if not 0.0 < beta <= 1.0:
            raise LoihiExportError(f"layer {name} (LI readout): beta must lie in (0, 1] on Loihi; got {beta}")
        return NeuronParams(alpha=0.0, beta=beta, threshold=math.inf)
    if not isinstance(m, (N.LIF, N.CubaLIF)):
        raise LoihiExportError(
            f"layer {name} ({cls}) cannot run on Loihi: only LIF/IF (reset='zero') and CubaLIF map onto Lava's LIF; "
            "retrain with one of them")
    if m.reset != "zero":
        raise LoihiExportError(
            f"layer {name} ({cls}, reset={m.reset!r}): Loihi resets the membrane to zero; retrain with reset='zero'")
    if getattr(m, "reset_delay", False):
        pass  # identical to the immediate convention for reset='zero'
    beta = _scalar(m.beta, "beta", name)
    alpha = _scalar(m.alpha, "alpha", name) if isinstance(m, N.CubaLIF) else 0.0
    thr = _scalar(m.threshold, "threshold", name)
    if not 0.0 <= beta <= 1.0 or not 0.0 <= alpha <= 1.0:
        raise LoihiExportError(f"layer {name}: decays must lie in [0, 1]; got alpha={alpha}, beta={beta}")
    if thr <= 0:
        raise LoihiExportError(f"layer {name}: threshold {thr} must be positive on Loihi; retrain with threshold > 0")
    return NeuronParams(alpha=alpha, beta=beta, threshold=thr)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _conv_out(shape, conv: nn.Conv2d) -> tuple[int, int, int]:
    _, h, w = shape
    (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
    if isinstance(conv.padding, str):
        raise LoihiExportError("conv padding must be given as integers (not 'same'/'valid')")
    ph, pw = conv.padding
    return (conv.out_channels, (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1)


def _recurrent_stage(name: str, m: nn.Module, pending: dict | None) -> LoihiLayer:
    """A ``Recurrent`` layer after its feed-forward synapse: one netx ``dense_rec`` stage."""
    if pending is None or pending["kind"] != "dense":
        what = "a convolution" if pending is not None else "no synapse"
        raise LoihiExportError(
            f"layer {name} (Recurrent) follows {what}; Loihi's recurrent layer (netx dense_rec) is a Dense synapse "
            "plus a recurrent Dense into one LIF layer: put a Linear/QLinear (then Delay(1)) before it")
    if pending.get("delays") is not None:
        raise LoihiExportError(
            f"layer {name} (Recurrent) follows {pending['name']}, a synapse with learned delays; netx cannot load a "
            "recurrent layer with delays (dense_rec + delay: lava-dl gives the recurrent synapse the feed-forward "
            "delays and drops weight_exp, research/delays_adlif.md 2.3): use a plain Linear before a Recurrent layer")
    rec = m.rec
    if rec.bias is not None and bool((rec.bias != 0).any()):
        raise LoihiExportError(
            f"layer {name}.rec (Recurrent) has a bias; Loihi has no synaptic bias: retrain with bias=False "
            "(qat.QRecurrent / the 'qrecurrent' layer type)")
    size = int(getattr(m, "size", rec.out_features))
    if tuple(pending["out_shape"]) != (size,):
        raise LoihiExportError(f"layer {name} (Recurrent, size {size}) receives {pending['out_shape']} from "
                               f"synapse {pending['name']}")
    p = _neuron_params(m.neuron, f"{name}.neuron")
    if p.voltage:
        raise LoihiExportError(f"layer {name} (Recurrent of LI): a leaky integrator does not spike, so it has nothing "
                               "to feed back; Loihi runs LI only as the last, feed-forward voltage readout")
    w_rec = qat.effective_weight(rec).detach().double().cpu().numpy()
    pending = dict(pending)
    delay = pending.pop("delay")
    _check_bias_neuron(name, p, pending)
    return LoihiLayer(neuron=p, delayed=bool(delay), weight_rec=w_rec, **{**pending, "name": name})


def _check_bias_neuron(name: str, p: NeuronParams, pending: dict) -> None:
    if pending.get("bias") is not None and p.alpha != 0.0:
        raise LoihiExportError(
            f"layer {name}: a bias before a CubaLIF (alpha={p.alpha}); Loihi adds its neuron bias to the membrane, "
            "which equals the trained bias on the input current only for a plain LIF: retrain with alpha=0 or "
            "without the bias")


def _check_synapse(name: str, cls: str, m, pending: dict | None, bias_fix: str) -> None:
    """A synapse (Dense/Conv/delayed Dense) must follow a neuron and carry no bias: Loihi adds a bias to the
    voltage, not the synaptic current. ``bias_fix`` ends the bias message (what to retrain with)."""
    if pending is not None:
        raise LoihiExportError(
            f"layer {name} ({cls}) follows synapse {pending['name']} with no neuron in between; Loihi needs "
            "a LIF layer after every Dense/Conv (merge the two linear maps or insert a neuron)")
    if m.bias is not None and bool((m.bias != 0).any()):
        raise LoihiExportError(
            f"layer {name} ({cls}) has a bias; Loihi adds biases to the voltage, not the synaptic current, "
            f"so it is not reproduced exactly with the synaptic {bias_fix}")


def extract(model: nn.Module, input_shape: tuple[int, ...] | list[int] | None = None) -> LoihiNet:
    """Describe ``model`` as a :class:`LoihiNet`, refusing anything Loihi cannot run exactly.

    ``input_shape`` is the per-step feature shape (``(N,)`` or ``(C, H, W)``); for an MLP it defaults to
    the first layer's ``in_features``; a conv network needs it (``arch.json``'s ``input_shape``).
    """
    mods = [(n, m) for n, m in _leaves(model) if not isinstance(m, _SKIP)]
    from neurosynth.delays import DelayedLinear

    if input_shape is None:
        first = next((m for _, m in mods if isinstance(m, (nn.Linear, nn.Conv2d, DelayedLinear))), None)
        if isinstance(first, (nn.Linear, DelayedLinear)):
            input_shape = (first.in_features,)
        else:
            raise LoihiExportError("pass input_shape=(C, H, W) for a network that starts with a convolution")
    shape = tuple(int(s) for s in input_shape)
    layers: list[LoihiLayer] = []
    from neurosynth.layers import Recurrent
    from neurosynth.neurons import NeuronModel

    pending = None  # synapse waiting for its neuron: dict
    readout = None  # the name of a voltage readout (LI) layer: nothing may follow it
    for name, m in mods:
        cls = type(m).__name__
        if readout is not None:
            raise LoihiExportError(
                f"layer {name} ({cls}) follows {readout}, a leaky-integrator (LI) layer; Loihi runs LI only as the "
                "network's voltage readout, its last layer (it does not spike): end the model with it or use "
                "LIF(reset='zero')")
        if isinstance(m, DelayedLinear):
            _check_synapse(name, cls, m, pending, "delays: retrain with bias=False")
            if len(shape) != 1 or shape[0] != m.in_features:
                raise LoihiExportError(f"layer {name} ({cls}) expects {m.in_features} inputs but receives shape "
                                       f"{shape}" + ("; insert nn.Flatten() before it" if len(shape) != 1 else ""))
            d = m.hard_delays().cpu().numpy().astype(np.int64)
            if d.size and int(d.max()) > MAX_DELAY:
                raise LoihiExportError(
                    f"layer {name} ({cls}): delays up to {int(d.max())} steps; Loihi 2 stores 6-bit delays and "
                    f"lava-dl netx clips them to {MAX_DELAY}: retrain with max_delay <= {MAX_DELAY + 1}")
            w = qat.effective_weight(m).detach().double().cpu().numpy()
            pending = dict(kind="dense", name=name, in_shape=shape, out_shape=(m.out_features,), weight=w, delays=d,
                           delay=0)
        elif isinstance(m, (nn.Linear, nn.Conv2d)):
            _check_synapse(name, cls, m, pending, "delay: retrain with bias=False (QLinear/QConv2d)")
            w = qat.effective_weight(m).detach().double().cpu().numpy()
            if isinstance(m, nn.Linear):
                n_in = int(np.prod(shape))
                if len(shape) != 1 or n_in != m.in_features:
                    raise LoihiExportError(
                        f"layer {name} ({cls}) expects {m.in_features} inputs but receives shape {shape}; "
                        "insert nn.Flatten() before it" if len(shape) != 1 else
                        f"layer {name} ({cls}) expects {m.in_features} inputs but receives {n_in}")
                pending = dict(kind="dense", name=name, in_shape=shape, out_shape=(m.out_features,), weight=w)
            else:
                if len(shape) != 3 or shape[0] != m.in_channels:
                    raise LoihiExportError(f"layer {name} ({cls}) expects input (C={m.in_channels}, H, W); got {shape}")
                if m.padding_mode != "zeros":
                    raise LoihiExportError(f"layer {name}: padding_mode={m.padding_mode!r} is not supported; use zeros")
                pending = dict(kind="conv", name=name, in_shape=shape, out_shape=_conv_out(shape, m), weight=w,
                               stride=_pair(m.stride), padding=_pair(m.padding), dilation=_pair(m.dilation),
                               groups=int(m.groups))
            pending["delay"] = 0
        elif _is_delay(m):
            steps = int(m.steps)
            if pending is None:
                raise LoihiExportError(f"layer {name} (Delay) must follow a Linear/Conv synapse")
            pending["delay"] += steps
            if pending["delay"] > 1:
                raise LoihiExportError(
                    f"layer {name}: {pending['delay']} steps of delay after synapse {pending['name']}; Lava's Dense/Conv "
                    "delay by exactly one step: use Delay(1)")
        elif isinstance(m, qat.QBias):
            if pending is None or pending["kind"] != "dense":
                what = "no synapse" if pending is None else f"synapse {pending['name']} ({pending['kind']})"
                raise LoihiExportError(
                    f"layer {name} (QBias) follows {what}; Loihi's neuron bias is exported after a dense synapse "
                    "and its Delay(1): Linear/QLinear -> Delay(1) -> QBias -> LIF/Recurrent")
            if pending["delay"] != 1:
                raise LoihiExportError(
                    f"layer {name} (QBias) comes before the Delay(1) of synapse {pending['name']}; Loihi adds its "
                    "bias from the first step on, so the bias must follow the delay: Linear -> Delay(1) -> QBias")
            if pending.get("bias") is not None:
                raise LoihiExportError(f"layer {name} (QBias): synapse {pending['name']} already has a bias")
            if (m.features,) != tuple(pending["out_shape"]):
                raise LoihiExportError(f"layer {name} (QBias, {m.features} features) receives {pending['out_shape']}")
            pending["bias"] = m.effective_bias().detach().double().cpu().numpy()
        elif isinstance(m, nn.Flatten):
            if pending is not None:
                raise LoihiExportError(f"layer {name} (Flatten) sits between synapse {pending['name']} and its neuron")
            if m.start_dim not in (1, -len(shape) - 1) or m.end_dim != -1:
                raise LoihiExportError(f"layer {name}: only nn.Flatten() over all feature dimensions is supported")
            new = (int(np.prod(shape)),)
            layers.append(LoihiLayer("flatten", name, shape, new))
            shape = new
        elif isinstance(m, Recurrent):
            layers.append(_recurrent_stage(name, m, pending))
            shape = pending["out_shape"]
            pending = None
        elif isinstance(m, NeuronModel):
            if pending is None:
                raise LoihiExportError(
                    f"layer {name} ({cls}) has no synapse before it; Loihi neurons receive input through Dense/Conv")
            p = _neuron_params(m, name)
            shp = getattr(m, "shape", None)
            if shp is not None and tuple(shp) != tuple(pending["out_shape"]):
                raise LoihiExportError(f"layer {name}: neuron shape {tuple(shp)} != synapse output {pending['out_shape']}")
            delay = pending.pop("delay")
            _check_bias_neuron(name, p, pending)
            layers.append(LoihiLayer(neuron=p, delayed=bool(delay), **pending))
            shape = pending["out_shape"]
            pending = None
            if p.voltage:
                readout = name
        else:
            hint = _REFUSE.get(cls, "supported layers are Linear/QLinear, Conv2d/QConv2d, Flatten, Delay(1), "
                                    "LIF/IF(reset='zero'), CubaLIF, Dropout, LI (last layer: voltage readout)")
            raise LoihiExportError(f"layer {name} ({cls}) cannot run on Loihi: {hint}")
    if pending is not None:
        raise LoihiExportError(
            f"the model ends with synapse {pending['name']} without a neuron; end with a spiking LIF(reset='zero') "
            "layer read out by spike count or an LI voltage readout")
    if not any(layer.kind != "flatten" for layer in layers):
        raise LoihiExportError("the model has no Linear/Conv + neuron layer to export")
    return LoihiNet(input_shape=tuple(int(s) for s in input_shape), layers=tuple(layers))


def check_fixed(net: LoihiNet) -> None:
    """Refuse values that leave Loihi's integer ranges after quantisation (weights, thresholds, decays)."""
    for layer in net.stages:
        check_delays(layer)
        mats = [("weights", layer.weight)]
        if layer.recurrent:
            mats.append(("recurrent weights", layer.weight_rec))
        for what, w in mats:
            wi = np.round(w * (qat.W_SCALE / qat.W_STEP)) * qat.W_STEP
            lo, hi = float(wi.min()), float(wi.max())
            if lo < qat.W_MIN or hi > qat.W_MAX:
                raise LoihiExportError(
                    f"layer {layer.name}: {what} span [{w.min():.4g}, {w.max():.4g}], i.e. "
                    f"[{lo:.0f}, {hi:.0f}] on Loihi's 64x grid, outside the 8-bit range [{qat.W_MIN}, {qat.W_MAX}] "
                    f"(float [-4, 3.97]); retrain with QAT layers (qlinear/qconv2d/qrecurrent) or a larger threshold")
            if layer.kind == "dense" and hi <= 0 and lo < -255:
                raise LoihiExportError(
                    f"layer {layer.name}: all {what} are <= 0 and some equal -4.0 (-256); Loihi stores an "
                    "all-inhibitory matrix in [-255, 0]: retrain (QAT) or clip them to >= -3.97")
        if layer.bias is not None:
            b = layer.int_bias()
            if tuple(b.shape) != tuple(layer.out_shape) or layer.kind != "dense":
                raise LoihiExportError(f"layer {layer.name}: bias of shape {tuple(b.shape)}; expected one per neuron "
                                       f"{tuple(layer.out_shape)} on a dense layer")
            if b.size and (int(b.min()) < qat.BIAS_MANT_MIN or int(b.max()) > qat.BIAS_MANT_MAX):
                raise LoihiExportError(
                    f"layer {layer.name}: bias spans [{layer.bias.min():.4g}, {layer.bias.max():.4g}]; Loihi's 13-bit "
                    f"bias mantissa (x 64) holds [{qat.BIAS_MANT_MIN / 64}, {qat.BIAS_MANT_MAX / 64}]: retrain with "
                    "qat.QBias, which clamps it")
        p = layer.neuron
        if p.voltage and layer is not net.stages[-1]:
            raise LoihiExportError(f"layer {layer.name}: a voltage readout (infinite threshold) must be the last layer")
        if not 1 <= p.vth_mant <= qat.VTH_MAX:
            raise LoihiExportError(
                f"layer {layer.name}: threshold {p.threshold} gives vThMant={p.vth_mant}, outside 1..{qat.VTH_MAX} "
                f"(17-bit); use a threshold in [{1 / qat.TH_SCALE}, {qat.VTH_MAX / qat.TH_SCALE}]")
        if not 1 <= p.i_decay <= qat.DECAY_UNITY:
            raise LoihiExportError(
                f"layer {layer.name}: alpha={p.alpha} gives iDecay={p.i_decay}; Loihi's current decay must be in "
                f"1..4096 (alpha <= {1 - 1 / qat.DECAY_UNITY:.6f})")
        if not 0 <= p.v_decay <= qat.DECAY_UNITY - 1:
            raise LoihiExportError(
                f"layer {layer.name}: beta={p.beta} gives vDecay={p.v_decay}; Loihi's 12-bit voltage decay must be "
                f"in 0..4095 (beta >= {1 / qat.DECAY_UNITY:.6f})")


def check_delays(layer: LoihiLayer) -> None:
    """Refuse per-synapse delays netx/Loihi cannot run: on a conv layer (netx ignores a conv ``delay``), on a
    recurrent layer (netx's ``dense_rec`` + ``delay`` is broken), outside ``0..MAX_DELAY`` or not ``(N_out, N_in)``."""
    d = layer.delays
    if d is None:
        return
    if layer.kind == "conv":
        raise LoihiExportError(
            f"layer {layer.name}: synaptic delays on a convolution; lava-dl netx ignores the 'delay' of conv layers "
            "(the code is commented out), so Loihi would run it without them: use delays on Linear layers only")
    if layer.recurrent:
        raise LoihiExportError(
            f"layer {layer.name}: synaptic delays on a recurrent layer; netx's dense_rec + delay applies the "
            "feed-forward delays to the recurrent synapse and drops weight_exp (research/delays_adlif.md 2.3): use "
            "delays on feed-forward layers only")
    n_in = int(np.prod(layer.in_shape))
    if tuple(d.shape) != (layer.out_shape[0], n_in):
        raise LoihiExportError(f"layer {layer.name}: delays of shape {tuple(d.shape)}; expected "
                               f"({layer.out_shape[0]}, {n_in}), one per synapse")
    if not np.issubdtype(d.dtype, np.integer):
        raise LoihiExportError(f"layer {layer.name}: delays must be whole steps; got {d.dtype}")
    if d.size and (int(d.min()) < 0 or int(d.max()) > MAX_DELAY):
        raise LoihiExportError(
            f"layer {layer.name}: delays span {int(d.min())}..{int(d.max())} steps; Loihi 2 runs 0..{MAX_DELAY} "
            f"(6-bit delays; lava-dl netx clips to {MAX_DELAY}): retrain with max_delay <= {MAX_DELAY + 1}")
