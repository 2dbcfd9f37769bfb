r"""Quantisation-aware training for Loihi 2: the fixed-point grids, straight-through quantisers,
quantised layers and the ArchSpec of the Loihi-compatible model family.

Loihi 2 (and Lava's bit-accurate ``LIF``/``Dense``/``Conv`` models) store

- **weights** as 8-bit integers on a 64x grid: slayer's ``quantize_8bit`` rounds to steps of
  ``2/64`` and clamps to ``[-256, 254] / 64``, so the exported integer ``64 w`` is an *even* integer
  in ``[-256, 254]`` (:data:`W_SCALE`, :func:`quantize_weight`);
- **thresholds** as ``vThMant = 64 * threshold`` (17-bit unsigned, ``1 .. 131071``);
- **decays** as 12-bit fractions of 4096: ``iDecay = 4096 (1 - alpha)`` (current, effective range
  ``1 .. 4096``: Lava's ``du = iDecay - 1``) and ``vDecay = 4096 (1 - beta)`` (voltage, ``0 .. 4095``).

A model trained with :class:`QLinear` / :class:`QConv2d` (weights snapped to the grid in the forward
pass, gradients passed straight through) and neurons whose ``alpha``/``beta``/``threshold`` already sit
on their grids (:func:`loihi_mlp_spec` puts them there) computes in float exactly what the exported
integer network computes up to the truncation of the decays, so it keeps its accuracy after export.

The grids themselves are data of the Loihi target (:mod:`neurosynth.hardware.targets.loihi`, pure Python); this
module adds what needs torch. The ArchSpec layer types ``"qlinear"``, ``"qconv2d"``, ``"qrecurrent"``,
``"qsumpool"`` and ``"qdelayed_linear"`` (learnable per-synapse delays, :class:`QDelayedLinear`) are registered in ``neurosynth.arch.LAYERS`` when this module is imported; specs that use them name
``"target": "loihi"`` (``neurosynth.arch/2``; release 0.1.0 wrote ``"plugin": "neurosynth.hardware.lava.qat"``,
which ``neurosynth.arch.upgrade`` maps). ``neurosynth.hardware.lava.qat`` is this module under its old name.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from neurosynth.arch import FORMAT

from .loihi_grids import (  # noqa: F401  (the grids, re-exported: qat.W_SCALE, qat.snap_beta, ...)
    DECAY_UNITY,
    TH_SCALE,
    VTH_MAX,
    W_MAX,
    W_MIN,
    W_SCALE,
    W_STEP,
    i_decay,
    snap_alpha,
    snap_beta,
    snap_threshold,
    threshold_mant,
    v_decay,
)

TARGET = "loihi"  # the specs below name their target (neurosynth.arch/2); release 0.1.0 named this module


# ----------------------------------------------------------------------------- weight grid (torch)
def weight_grid_ints(w: torch.Tensor) -> torch.Tensor:
    """Integer weights ``64 w`` rounded to the even grid, *without* clamping (to check the range)."""
    return torch.round(w * (W_SCALE / W_STEP)) * W_STEP


def quantize_weight(w: torch.Tensor) -> torch.Tensor:
    """Snap float weights to Loihi's 8-bit grid (``k / 32`` for ``k`` in ``[-128, 127]``) with a
    straight-through estimator: the forward value is quantised, the gradient is the identity."""
    q = torch.clamp(weight_grid_ints(w.detach()), W_MIN, W_MAX) / W_SCALE
    return w + (q - w).detach()


# ----------------------------------------------------------------------------- layers
class QLinear(nn.Linear):
    """``nn.Linear`` whose forward uses Loihi-quantised weights (STE). No bias by default: Loihi adds a
    neuron's bias to the voltage, not to the synaptic current, so it does not commute with the delay."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False, **kw):
        super().__init__(in_features, out_features, bias=bias, **kw)

    def effective_weight(self) -> torch.Tensor:
        return quantize_weight(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight(), self.bias)


class QConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose forward uses Loihi-quantised weights (STE); no bias by default."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = False, **kw):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias, **kw)

    def effective_weight(self) -> torch.Tensor:
        return quantize_weight(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.effective_weight(), self.bias)


#: Loihi's neuron bias as lava-dl netx loads it: ``bias_mant`` (signed 13 bit) shifted by ``bias_exp = 6``, added to
#: the membrane every step; in float units (``v_int / 4096``) the bias is ``bias_mant / 64``
BIAS_SCALE = 64
BIAS_MANT_MIN, BIAS_MANT_MAX = -4096, 4095


def bias_grid_ints(b: torch.Tensor) -> torch.Tensor:
    """Integer bias mantissas ``round(64 b)``, *without* clamping (to check the range)."""
    return torch.round(b * BIAS_SCALE)


def quantize_bias(b: torch.Tensor) -> torch.Tensor:
    """Snap float biases to Loihi's bias grid (``k / 64``, ``k`` in ``[-4096, 4095]``) with a straight-through
    estimator."""
    q = torch.clamp(bias_grid_ints(b.detach()), BIAS_MANT_MIN, BIAS_MANT_MAX) / BIAS_SCALE
    return b + (q - b).detach()


class QBias(nn.Module):
    """A learnable per-neuron bias on Loihi's grid (STE), added to the synaptic input *after* the synapse's
    one-step :class:`~neurosynth.layers.Delay`, so it reaches the neurons from the first step on, as Loihi's neuron
    bias does (Lava adds ``bias_mant << bias_exp`` to ``v`` every step). With a plain LIF (``alpha = 0``: Lava's
    ``u`` is the step's synaptic input) a bias on the input is exactly a bias on the membrane; a CubaLIF would feed
    it through its current, which Loihi does not, so the export refuses that. Input ``[T, B, N]``."""

    def __init__(self, features: int, init: float = 0.0):
        super().__init__()
        if int(features) <= 0:
            raise ValueError(f"features must be positive; got {features}")
        self.features = int(features)
        self.bias = nn.Parameter(torch.full((self.features,), float(init)))

    def effective_bias(self) -> torch.Tensor:
        return quantize_bias(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.effective_bias()

    def extra_repr(self) -> str:
        return f"features={self.features}"


def _delayed_base():
    from neurosynth.delays import DelayedLinear

    return DelayedLinear


#: the most delay taps ``K`` (delays 0..K-1) a Loihi synapse takes: Loihi 2 stores 6-bit delays and lava-dl netx
#: clips them to 62
MAX_DELAY_TAPS = 63


class QDelayedLinear(_delayed_base()):
    """:class:`neurosynth.delays.DelayedLinear` (learnable per-synapse delays) whose forward uses Loihi-quantised
    weights (STE), without bias: trained so, its eval-mode model (rounded delays) is what the netx ``delay``
    dataset and Lava's ``DelayDense`` run. ``max_delay <= 63`` (delays 0..62, what netx loads)."""

    def __init__(self, in_features: int, out_features: int, max_delay: int = 25, bias: bool = False, **kw):
        if int(max_delay) > MAX_DELAY_TAPS:
            raise ValueError(f"qdelayed_linear: max_delay {max_delay} gives delays up to {int(max_delay) - 1}; Loihi 2 "
                             "runs delays 0..62 (lava-dl netx clips to 62): use max_delay <= 63")
        super().__init__(in_features, out_features, max_delay=max_delay, bias=bias, **kw)

    def effective_weight(self) -> torch.Tensor:
        return quantize_weight(self.weight)


def _recurrent_base():
    from neurosynth.layers import Recurrent

    return Recurrent


class QRecurrent(_recurrent_base()):
    r"""Loihi's recurrent layer (netx ``dense_rec``) for training: ``h_t = neuron(x_t + W_rec s_{t-1})``.

    ``x`` is the feed-forward current ``[T, B, N]`` (a :class:`QLinear` followed by ``Delay(1)``: Lava's
    feed-forward ``Dense`` delays by one step); the recurrent ``Dense`` of Lava delays its input by one step
    too, which is exactly the ``s_{t-1}`` here, so no extra delay goes on the recurrent path. ``W_rec`` is a
    bias-free :class:`QLinear` (Loihi's 8-bit grid, straight-through gradient). The time loop is this class's
    own (it does not use :class:`neurosynth.layers.Recurrent`'s forward, whose fast path may change), so the
    trained model computes what the exported network computes.
    """

    def __init__(self, size: int, neuron="lif", **neuron_kw):
        super().__init__(size, neuron, bias=False, **neuron_kw)
        self.rec = QLinear(size, size, bias=False)

    def run(self, x: torch.Tensor, state=None):
        """``(spikes [T, B, N], (last spikes, neuron state), membrane [T, B, N])``; ``state`` continues a sequence."""
        if x.dim() != 3 or x.shape[-1] != self.size:
            raise ValueError(f"QRecurrent input must be [T, B, {self.size}]; got {tuple(x.shape)}")
        s, nstate = (torch.zeros_like(x[0]), self.neuron.initial_state(x[0])) if state is None else state
        p = self.neuron.params()
        # the neuron's pure one-step function: `dynamics` (engine API) or the older `step(x, state, p)`
        step = getattr(self.neuron, "dynamics", None) or self.neuron.step
        outs, trace = [], []
        for t in range(x.shape[0]):
            s, nstate, h = step(x[t] + self.rec(s.to(x.dtype)), nstate, p)
            outs.append(s)
            trace.append(h)
        return torch.stack(outs), _recurrent_state(s, nstate), torch.stack(trace)

    def forward(self, x: torch.Tensor, state=None) -> torch.Tensor:
        return self.run(x, state)[0]


def _recurrent_state(s, nstate):
    from neurosynth import layers

    cls = getattr(layers, "RecurrentState", None)
    return cls(s, nstate) if cls is not None else (s, nstate)


class SumPoolConv(QConv2d):
    """Sum pooling as Loihi runs it: a depthwise (``groups = channels``) strided convolution with fixed weights
    ``weight`` (default 1: the spike count of each ``k x k`` window), not trained. netx has no ``pool``
    layer (lava-dl raises ``NotImplementedError``), but it runs this ``conv``; follow it with ``Delay(1)`` and a
    LIF like every Loihi synapse."""

    def __init__(self, channels: int, kernel_size: int = 2, stride: int | None = None, weight: float = 1.0):
        super().__init__(channels, channels, kernel_size, stride=stride or kernel_size, groups=channels, bias=False)
        self.pool_weight = float(weight)
        with torch.no_grad():
            self.weight.fill_(self.pool_weight)
        self.weight.requires_grad_(False)


def effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight a synapse module computes with (quantised for QLinear/QConv2d, raw otherwise)."""
    fn = getattr(module, "effective_weight", None)
    return fn() if callable(fn) else module.weight


# ----------------------------------------------------------------------------- ArchSpec integration
def _qlinear_fields(m: QLinear) -> dict:
    return {"in_features": m.in_features, "out_features": m.out_features, "bias": m.bias is not None}


def _qconv2d_fields(m: QConv2d) -> dict:
    return {"in_channels": m.in_channels, "out_channels": m.out_channels, "kernel_size": list(m.kernel_size),
            "stride": list(m.stride), "padding": list(m.padding), "dilation": list(m.dilation), "groups": m.groups,
            "bias": m.bias is not None}


def _check_fields(cfg: dict, required: tuple[str, ...], optional: dict[str, Any]) -> dict:
    missing = [k for k in required if k not in cfg]
    extra = set(cfg) - set(required) - set(optional) - {"type", "name"}
    if missing or extra:
        raise ValueError(f"layer type '{cfg.get('type')}' needs fields {list(required)} (optional {list(optional)}); "
                         f"missing {missing}, unknown {sorted(extra)} in {cfg}")
    return {**optional, **{k: v for k, v in cfg.items() if k not in ("type", "name")}}


def _tup(v):
    return tuple(int(a) for a in v) if isinstance(v, (list, tuple)) else int(v)


def build_qlinear(cfg: dict) -> QLinear:
    """ArchSpec builder of ``{"type": "qlinear", "in_features", "out_features", "bias": false}``."""
    f = _check_fields(cfg, ("in_features", "out_features"), {"bias": False})
    return QLinear(int(f["in_features"]), int(f["out_features"]), bias=bool(f["bias"]))


def build_qconv2d(cfg: dict) -> QConv2d:
    """ArchSpec builder of ``{"type": "qconv2d", "in_channels", "out_channels", "kernel_size", ...}``."""
    f = _check_fields(cfg, ("in_channels", "out_channels", "kernel_size"),
                      {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": False})
    return QConv2d(int(f["in_channels"]), int(f["out_channels"]), _tup(f["kernel_size"]), stride=_tup(f["stride"]),
                   padding=_tup(f["padding"]), dilation=_tup(f["dilation"]), groups=int(f["groups"]),
                   bias=bool(f["bias"]))


def _qrecurrent_fields(m: QRecurrent) -> dict:
    return {"size": m.size, **m.neuron.config()}


def build_qrecurrent(cfg: dict) -> QRecurrent:
    """ArchSpec builder of ``{"type": "qrecurrent", "size", "neuron": "lif"|"cubalif", "params", "reset", ...}``."""
    from neurosynth.neurons import build_neuron

    cfg = {k: v for k, v in cfg.items() if k not in ("type", "name")}
    if "size" not in cfg:
        raise ValueError(f"layer type 'qrecurrent' needs 'size'; got {cfg}")
    size = int(cfg.pop("size"))
    name = cfg.pop("neuron", "lif")
    return QRecurrent(size, build_neuron(name, **cfg))


def build_qdelayed_linear(cfg: dict) -> QDelayedLinear:
    """ArchSpec builder of ``{"type": "qdelayed_linear", "in_features", "out_features", "max_delay": 25, ...}``."""
    from neurosynth.delays import SIGMA_FINAL

    f = _check_fields(cfg, ("in_features", "out_features"),
                      {"max_delay": 25, "bias": False, "sigma_init": None, "sigma_final": SIGMA_FINAL,
                       "anneal_fraction": 0.25})
    return QDelayedLinear(int(f["in_features"]), int(f["out_features"]), max_delay=int(f["max_delay"]),
                          bias=bool(f["bias"]),
                          sigma_init=None if f["sigma_init"] is None else float(f["sigma_init"]),
                          sigma_final=float(f["sigma_final"]), anneal_fraction=float(f["anneal_fraction"]))


def _sumpool_fields(m: SumPoolConv) -> dict:
    return {"channels": m.in_channels, "kernel_size": int(m.kernel_size[0]), "stride": int(m.stride[0]),
            "weight": m.pool_weight}


def build_sumpool(cfg: dict) -> SumPoolConv:
    """ArchSpec builder of ``{"type": "qsumpool", "channels", "kernel_size": 2, "stride": k, "weight": 1.0}``."""
    f = _check_fields(cfg, ("channels",), {"kernel_size": 2, "stride": None, "weight": 1.0})
    return SumPoolConv(int(f["channels"]), int(f["kernel_size"]), None if f["stride"] is None else int(f["stride"]),
                       float(f["weight"]))


def build_qbias(cfg: dict) -> QBias:
    """ArchSpec builder of ``{"type": "qbias", "features", "init": 0.0}``."""
    f = _check_fields(cfg, ("features",), {"init": 0.0})
    return QBias(int(f["features"]), float(f["init"]))


def register_layers() -> bool:
    """Register ``qlinear``/``qconv2d`` in ``neurosynth.arch.LAYERS`` (and their inverse for ``to_spec``).

    Idempotent; returns False when the core ``neurosynth.arch`` module is not available.
    """
    try:
        from neurosynth import arch
    except ImportError:
        return False
    for name, cls, build, fields in (("qlinear", QLinear, build_qlinear, _qlinear_fields),
                                     ("qconv2d", QConv2d, build_qconv2d, _qconv2d_fields),
                                     ("qrecurrent", QRecurrent, build_qrecurrent, _qrecurrent_fields),
                                     ("qsumpool", SumPoolConv, build_sumpool, _sumpool_fields),
                                     ("qbias", QBias, build_qbias, lambda m: {"features": m.features}),
                                     ("qdelayed_linear", QDelayedLinear, build_qdelayed_linear,
                                      lambda m: m.config())):
        if name not in arch.LAYERS:
            arch.layer_type(name, cls, fields)(build)
    return True


def voltage_readout_entry(beta: float = 1.0) -> dict:
    """The ArchSpec entry of a Loihi voltage readout: a leaky integrator ``LI(beta)`` (``beta = 1``: no leak, the
    membrane sums its input) with ``beta`` snapped to Loihi's 12-bit decay grid. Loihi runs it as LIF neurons with
    ``vThMant`` at its maximum and reads their ``v`` after the last step."""
    if not 0.0 < beta <= 1.0:
        raise ValueError(f"the readout's beta must lie in (0, 1] (decay = 4096*(1-beta)); got {beta}")
    return {"type": "neuron", "neuron": "li", "params": {"beta": snap_beta(beta)}}


def loihi_neuron_entry(*, beta: float = 0.9, alpha: float = 0.0, threshold: float = 1.0,
                       surrogate: str | dict = "atan") -> dict:
    """The ArchSpec neuron entry of a Loihi-exact layer: zero reset, parameters snapped to Loihi's grids.

    ``alpha = 0`` gives a plain LIF (Lava ``du = 4095``: no current memory); ``alpha > 0`` a CubaLIF.
    """
    for name, val in (("beta", beta), ("alpha", alpha)):
        if not 0.0 <= val < 1.0:
            raise ValueError(f"{name} must lie in [0, 1) for Loihi (decay = 4096*(1-{name})); got {val}")
    if not 0.0 < threshold <= VTH_MAX / TH_SCALE:
        raise ValueError(f"threshold must lie in (0, {VTH_MAX / TH_SCALE}] (vThMant = 64*threshold is 17-bit); "
                         f"got {threshold}")
    b, th = snap_beta(beta), snap_threshold(threshold)
    if alpha == 0.0:
        return {"type": "neuron", "neuron": "lif", "reset": "zero", "surrogate": surrogate,
                "params": {"beta": b, "threshold": th}}
    return {"type": "neuron", "neuron": "cubalif", "reset": "zero", "surrogate": surrogate,
            "params": {"alpha": snap_alpha(alpha), "beta": b, "threshold": th}}


def loihi_mlp_spec(n_in: int, hidden: list[int], n_out: int, *, beta: float = 0.9, alpha: float = 0.0,
                   threshold: float = 1.0, delay: bool = True, surrogate: str | dict = "atan",
                   max_delay: int | None = None, bias: bool = False, dropout: float = 0.0,
                   readout: str = "spikes", beta_out: float | None = None) -> dict:
    """ArchSpec of a Loihi-exact MLP: ``[qlinear -> delay(1) -> LIF/CubaLIF(reset='zero')] * L``.

    ``max_delay=K`` makes every synapse a ``qdelayed_linear`` (:class:`QDelayedLinear`: learnable per-synapse
    delays 0..K-1, ``K <= 63``), exported as netx ``delay`` / Lava ``DelayDense``.

    Every synapse is followed by a one-step :class:`neurosynth.layers.Delay` because Lava's ``Dense``
    delivers its output one step late; with it the trained model and the Lava network produce the same
    spikes at the same time steps. Inputs are binary spike trains ``[T, B, n_in]``. ``readout='spikes'``: the
    output layer spikes (read out by spike count, loss ``rate_ce`` or ``count_mse``); ``'voltage'``: a non-leaky
    integrator scored by its last membrane (as in :func:`loihi_rsnn_spec`). ``bias=True`` puts a learnable
    per-neuron :class:`QBias` (Loihi's neuron bias, netx ``bias``) after each hidden layer's one-step delay (needs
    ``alpha = 0`` and ``delay=True``); ``dropout > 0`` drops each hidden layer's output spikes while training (the
    export skips it).
    """
    sizes = [int(n_in), *[int(h) for h in hidden], int(n_out)]
    if any(s <= 0 for s in sizes):
        raise ValueError(f"layer sizes must be positive; got n_in={n_in}, hidden={hidden}, n_out={n_out}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1); got {dropout}")
    if bias and (alpha != 0.0 or not delay):
        raise ValueError("bias=True needs alpha=0 and delay=True: Loihi adds its neuron bias to the membrane from the "
                         "first step, which equals a trained bias only for a plain LIF after the synapse's delay")
    if readout not in ("spikes", "voltage"):
        raise ValueError(f"readout must be 'spikes' or 'voltage'; got {readout!r}")
    neuron = loihi_neuron_entry(beta=beta, alpha=alpha, threshold=threshold, surrogate=surrogate)
    if readout == "voltage":
        out = voltage_readout_entry(1.0 if beta_out is None else beta_out)
    elif beta_out is not None:
        out = loihi_neuron_entry(beta=beta_out, alpha=alpha, threshold=threshold, surrogate=surrogate)
    else:
        out = neuron
    layers: list[dict[str, Any]] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        hidden_layer = i < len(sizes) - 2
        if max_delay is None:
            layers.append({"type": "qlinear", "in_features": a, "out_features": b, "bias": False})
        else:
            layers.append({"type": "qdelayed_linear", "in_features": a, "out_features": b, "bias": False,
                           "max_delay": int(max_delay)})
        if delay:
            layers.append({"type": "delay", "steps": 1})
        if bias and hidden_layer:
            layers.append({"type": "qbias", "features": b})
        cell = neuron if hidden_layer else out
        layers.append({**cell, "params": dict(cell["params"]), "shape": [b]})
        if dropout > 0 and hidden_layer:
            layers.append({"type": "dropout", "p": float(dropout)})
    return {"format": FORMAT, "kind": "sequential", "target": TARGET, "input_shape": [int(n_in)],
            "layers": layers, "meta": {"family": "loihi", "weight_grid": "even ints in [-256,254] / 64",
                                       "delay_per_synapse": 1 if delay else 0,
                                       **({} if max_delay is None else {"learned_delays_max": int(max_delay) - 1})}}


def loihi_conv_spec(input_shape: tuple[int, int, int] | list[int], channels: list[int], n_out: int, *,
                    kernel_size: int = 3, stride: int = 2, padding: int = 1, beta: float = 0.9, alpha: float = 0.0,
                    threshold: float = 1.0, delay: bool = True, surrogate: str | dict = "atan") -> dict:
    """ArchSpec of a Loihi-exact conv net: ``[qconv2d(stride) -> delay -> neuron] * len(channels)``, ``flatten``,
    ``qlinear -> delay -> neuron``. Strided convolutions replace pooling (netx cannot load pooling layers)."""
    c, h, w = (int(v) for v in input_shape)
    neuron = loihi_neuron_entry(beta=beta, alpha=alpha, threshold=threshold, surrogate=surrogate)
    layers: list[dict[str, Any]] = []
    for ch in channels:
        layers.append({"type": "qconv2d", "in_channels": c, "out_channels": int(ch), "kernel_size": kernel_size,
                       "stride": stride, "padding": padding, "bias": False})
        if delay:
            layers.append({"type": "delay", "steps": 1})
        h = (h + 2 * padding - kernel_size) // stride + 1
        w = (w + 2 * padding - kernel_size) // stride + 1
        if h < 1 or w < 1:
            raise ValueError(f"input {tuple(input_shape)} is too small for {len(channels)} strided convolutions")
        c = int(ch)
        layers.append({**neuron, "params": dict(neuron["params"]), "shape": [c, h, w]})
    layers += [{"type": "flatten"}, {"type": "qlinear", "in_features": c * h * w, "out_features": int(n_out),
                                     "bias": False}]
    if delay:
        layers.append({"type": "delay", "steps": 1})
    layers.append({**neuron, "params": dict(neuron["params"]), "shape": [int(n_out)]})
    return {"format": FORMAT, "kind": "sequential", "target": TARGET,
            "input_shape": [int(v) for v in input_shape], "layers": layers,
            "meta": {"family": "loihi", "delay_per_synapse": 1 if delay else 0}}


def loihi_rsnn_spec(n_in: int, hidden: int, n_out: int, *, beta: float = 0.95, alpha: float = 0.0,
                    threshold: float = 1.0, beta_out: float | None = None, surrogate: str | dict = "atan",
                    layers: int = 1, readout: str = "spikes", bias: bool = False, dropout: float = 0.0) -> dict:
    """ArchSpec of a Loihi-exact recurrent network (the SHD example's ``--loihi`` model)::

        [qlinear(n, hidden) -> delay(1) -> qrecurrent(hidden, LIF/CubaLIF zero reset)] * layers   # netx dense_rec
        qlinear(hidden, n_out) -> delay(1) -> LIF(zero reset)  or  LI(beta=1)                     # netx dense

    ``readout='spikes'``: the output layer spikes (read out by spike count, loss ``rate_ce`` or ``count_mse``).
    ``readout='voltage'``: the output layer is a non-leaky integrator (``LI(beta=1)``, ``beta_out`` makes it leak),
    scored by its membrane after the last step (loss ``final_membrane_ce``); Loihi runs it as LIF neurons that
    never reach their threshold (``vThMant`` at its 17-bit maximum) whose ``v`` is read once at the end (see
    :mod:`neurosynth.hardware.lava.ir`). Every feed-forward synapse carries Lava's one-step delay; the recurrent
    one's is the ``s_{t-1}`` of :class:`QRecurrent`. ``bias=True`` puts a learnable per-neuron :class:`QBias`
    (``qbias``, Loihi's neuron bias, netx ``bias``) after each hidden layer's delay; it needs ``alpha = 0``.
    ``dropout > 0`` drops each hidden layer's output spikes with that probability while training (a ``dropout``
    entry after each ``qrecurrent``); it is the identity in eval mode and the export skips it, so the deployed
    network is the same with or without it.
    """
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1); got {dropout}")
    if bias and alpha != 0.0:
        raise ValueError("bias=True needs alpha=0: Loihi adds its neuron bias to the membrane, which equals a bias on "
                         "the input only for a plain LIF")
    if min(n_in, hidden, n_out) <= 0:
        raise ValueError(f"layer sizes must be positive; got n_in={n_in}, hidden={hidden}, n_out={n_out}")
    if int(layers) < 1:
        raise ValueError(f"layers must be at least 1; got {layers}")
    if readout not in ("spikes", "voltage"):
        raise ValueError(f"readout must be 'spikes' or 'voltage'; got {readout!r}")
    hid = loihi_neuron_entry(beta=beta, alpha=alpha, threshold=threshold, surrogate=surrogate)
    if readout == "voltage":
        out = voltage_readout_entry(1.0 if beta_out is None else beta_out)
    else:
        out = loihi_neuron_entry(beta=beta if beta_out is None else beta_out, threshold=threshold, surrogate=surrogate)
    rec = {k: v for k, v in hid.items() if k != "type"}
    spec_layers: list[dict[str, Any]] = []
    n = int(n_in)
    for _ in range(int(layers)):
        spec_layers += [{"type": "qlinear", "in_features": n, "out_features": int(hidden), "bias": False},
                        {"type": "delay", "steps": 1}]
        if bias:
            spec_layers.append({"type": "qbias", "features": int(hidden)})
        spec_layers.append({"type": "qrecurrent", "size": int(hidden), **rec, "params": dict(rec["params"]),
                            "shape": [int(hidden)]})
        if dropout > 0:
            spec_layers.append({"type": "dropout", "p": float(dropout)})
        n = int(hidden)
    layers = spec_layers + [{"type": "qlinear", "in_features": n, "out_features": int(n_out), "bias": False},
                            {"type": "delay", "steps": 1},
                            {**out, "shape": [int(n_out)]}]
    return {"format": FORMAT, "kind": "sequential", "target": TARGET, "input_shape": [int(n_in)],
            "layers": layers, "meta": {"family": "loihi", "delay_per_synapse": 1, "recurrent": "dense_rec"}}


def loihi_pooled_conv_spec(input_shape: tuple[int, int, int] | list[int], channels: list[int], hidden: int,
                           n_out: int, *, kernel_size: int = 3, pool: int = 2, beta: float = 0.9, alpha: float = 0.0,
                           threshold: float = 1.0, pool_threshold: float = 0.5, surrogate: str | dict = "atan") -> dict:
    """ArchSpec of a Loihi-exact conv net with pooling (the DVS example's ``--loihi`` model)::

        [qconv2d(k, pad k//2) -> delay -> LIF -> qsumpool(pool) -> delay -> LIF] * len(channels)
        flatten -> qlinear(hidden) -> delay -> LIF -> qlinear(n_out) -> delay -> LIF

    Pooling is a fixed depthwise strided convolution with weight 1 (:class:`SumPoolConv`, netx ``conv`` with
    ``groups = C``) followed by a LIF with threshold ``pool_threshold``: with the default 0.5 a pooling neuron
    fires when its window received at least one spike (plus what its leak carries over).
    """
    c, h, w = (int(v) for v in input_shape)
    neuron = loihi_neuron_entry(beta=beta, alpha=alpha, threshold=threshold, surrogate=surrogate)
    pool_neuron = loihi_neuron_entry(beta=beta, threshold=pool_threshold, surrogate=surrogate)
    layers: list[dict[str, Any]] = []
    for block, ch in enumerate(channels, 1):
        layers += [{"type": "qconv2d", "in_channels": c, "out_channels": int(ch), "kernel_size": kernel_size,
                    "padding": kernel_size // 2, "bias": False}, {"type": "delay", "steps": 1}]
        c = int(ch)
        h = h + 2 * (kernel_size // 2) - kernel_size + 1
        w = w + 2 * (kernel_size // 2) - kernel_size + 1
        layers.append({**neuron, "params": dict(neuron["params"]), "shape": [c, h, w]})
        if h < pool or w < pool:
            # an odd side is fine (floor: the last row/column is dropped identically in torch and Lava); a side
            # below the pooling window leaves the qsumpool layer without output
            raise ValueError(
                f"input {tuple(input_shape)}: the qsumpool layer of block {block} (layer {len(layers)}, kernel and "
                f"stride {pool}) receives a {h}x{w} map and would output nothing; use an input side of at least "
                f"{pool ** len(channels)} or fewer blocks (channels={list(channels)})")
        h, w = h // pool, w // pool
        layers += [{"type": "qsumpool", "channels": c, "kernel_size": pool, "stride": pool},
                   {"type": "delay", "steps": 1}, {**pool_neuron, "params": dict(pool_neuron["params"]),
                                                   "shape": [c, h, w]}]
    sizes = [c * h * w, int(hidden), int(n_out)]
    layers.append({"type": "flatten"})
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [{"type": "qlinear", "in_features": a, "out_features": b, "bias": False},
                   {"type": "delay", "steps": 1}, {**neuron, "params": dict(neuron["params"]), "shape": [b]}]
    return {"format": FORMAT, "kind": "sequential", "target": TARGET,
            "input_shape": [int(v) for v in input_shape], "layers": layers,
            "meta": {"family": "loihi", "delay_per_synapse": 1, "pooling": "fixed sum-pool conv + LIF"}}


def scale_synapses(model: nn.Module, gain: float) -> nn.Module:
    """Multiply the (trainable) weights of every QLinear/QConv2d/QRecurrent/QDelayedLinear synapse by ``gain`` (not
    the fixed sum-pooling convolutions): a larger initialisation keeps spikes flowing through deep Loihi networks,
    whose 8-bit grid rounds PyTorch's default small initial weights mostly to 0. Returns ``model``."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (QLinear, QConv2d, QDelayedLinear)) and not isinstance(m, SumPoolConv):
                m.weight.mul_(float(gain))
    return model


register_layers()
