r"""Operation counts per inference, with NeuroBench's definitions.

NeuroBench (Yik et al., "The neurobench framework for benchmarking neuromorphic computing algorithms and
systems", Nat. Commun. 2025, arXiv:2304.04640; metric docs in ``NeuroBench/neurobench`` ``docs/metrics``):

- **Synaptic operations** of a connection layer (Linear, Conv): *Dense* counts every (input, weight) pair of
  the layer every time it runs, zeros included; *Effective* counts only pairs whose input activation **and**
  weight are non-zero. A layer whose inputs are all in {0, 1, -1} (spikes) performs accumulates (**ACs**),
  otherwise multiply-accumulates (**MACs**). Biases are not synaptic operations. For a spiking input,
  effective ACs = Σ_spikes fan-out, i.e. "spikes × fan-out".
- **Activation sparsity**: zero outputs / all outputs of the spiking neuron layers, over time steps and samples.
- **Connection sparsity**: zero weights / all weights of the connection layers.
- **Footprint**: bytes of parameters and buffers.

Added here (not NeuroBench metrics): **neuron updates** (every neuron's state is updated every time step:
``T x neurons``), **spikes**, and **ANN MACs**: the dense operations of one time step, i.e. the MACs of the
same network run once as an ANN.

Counting runs forward hooks on the modules that have a rule in :data:`COUNT_RULES` (keyed by module type,
looked up along the MRO). A rule sees ``(module, input, output)`` and returns a :class:`LayerCounts` for that
call. All counts are exact integers summed over the batch; :class:`OpCounts` divides by the number of samples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from neurosynth.registry import TypeRegistry


@dataclasses.dataclass(frozen=True)
class LayerCounts:
    """Counts for one layer, summed over every call and every sample of the batch(es)."""

    name: str
    type: str
    kind: str  # "synapse" | "neuron" | "readout"
    calls: int = 0
    ac_ops: int = 0  # effective ops whose inputs were binary (spike-triggered accumulates)
    mac_ops: int = 0  # effective ops whose inputs were real-valued
    dense_ops: int = 0  # every (input, weight) pair, every call
    dense_ops_per_step: int = 0  # dense ops for one sample and one time step (the ANN's MACs for this layer)
    neuron_updates: int = 0
    spikes: int = 0
    activations: int = 0  # spiking-neuron outputs (denominator of activation sparsity)
    weights: int = 0
    zero_weights: int = 0

    def merge(self, other: LayerCounts) -> LayerCounts:
        if (other.name, other.type, other.kind) != (self.name, self.type, self.kind):
            raise ValueError(f"cannot merge counts of {self.name} with {other.name}")
        return dataclasses.replace(
            self, calls=self.calls + other.calls, ac_ops=self.ac_ops + other.ac_ops,
            mac_ops=self.mac_ops + other.mac_ops, dense_ops=self.dense_ops + other.dense_ops,
            dense_ops_per_step=max(self.dense_ops_per_step, other.dense_ops_per_step),
            neuron_updates=self.neuron_updates + other.neuron_updates, spikes=self.spikes + other.spikes,
            activations=self.activations + other.activations, weights=max(self.weights, other.weights),
            zero_weights=max(self.zero_weights, other.zero_weights))


@dataclasses.dataclass(frozen=True)
class OpCounts:
    """Per-layer counts for ``samples`` inputs of ``timesteps`` steps; properties are **per sample**."""

    samples: int
    timesteps: int
    layers: tuple[LayerCounts, ...]
    param_bytes: int

    def _sum(self, field: str) -> int:
        return sum(getattr(layer, field) for layer in self.layers)

    @property
    def syn_ops(self) -> float:
        """Effective synaptic operations triggered by spikes (NeuroBench Effective_ACs) per sample."""
        return self._sum("ac_ops") / self.samples

    @property
    def eff_macs(self) -> float:
        """Effective MACs (real-valued inputs, e.g. an analog first layer) per sample."""
        return self._sum("mac_ops") / self.samples

    @property
    def dense_ops(self) -> float:
        """NeuroBench Dense synaptic operations per sample (all T steps)."""
        return self._sum("dense_ops") / self.samples

    @property
    def ann_macs(self) -> int:
        """MACs of the equivalent ANN: dense operations of one time step, per sample."""
        return self._sum("dense_ops_per_step")

    @property
    def neuron_updates(self) -> float:
        return self._sum("neuron_updates") / self.samples

    @property
    def spikes(self) -> float:
        return self._sum("spikes") / self.samples

    @property
    def activation_sparsity(self) -> float:
        n = self._sum("activations")
        return 1.0 - self._sum("spikes") / n if n else float("nan")

    @property
    def connection_sparsity(self) -> float:
        n = self._sum("weights")
        return self._sum("zero_weights") / n if n else float("nan")

    def merge(self, other: OpCounts) -> OpCounts:
        if self.timesteps != other.timesteps or len(self.layers) != len(other.layers):
            raise ValueError("cannot merge counts of different networks or sequence lengths")
        return OpCounts(self.samples + other.samples, self.timesteps,
                        tuple(a.merge(b) for a, b in zip(self.layers, other.layers)), self.param_bytes)

    def summary(self) -> dict:
        return {"samples": self.samples, "timesteps": self.timesteps, "syn_ops": self.syn_ops,
                "eff_macs": self.eff_macs, "dense_ops": self.dense_ops, "ann_macs": self.ann_macs,
                "neuron_updates": self.neuron_updates, "spikes": self.spikes,
                "activation_sparsity": self.activation_sparsity, "connection_sparsity": self.connection_sparsity,
                "param_bytes": self.param_bytes}

    def to_dict(self) -> dict:
        return {**self.summary(), "per_sample": True, "layers": [dataclasses.asdict(layer) for layer in self.layers]}


# ----------------------------------------------------------------------------- rules
CountRule = Callable[[str, nn.Module, torch.Tensor, torch.Tensor], LayerCounts]


COUNT_RULES: TypeRegistry[CountRule] = TypeRegistry("op-count rule")


def is_binary(x: torch.Tensor) -> bool:
    """NeuroBench's spike test: every value is 0, 1 or -1."""
    return bool(((x == 0) | (x == 1) | (x == -1)).all())


def _weight_stats(w: torch.Tensor) -> tuple[int, int]:
    return w.numel(), int((w == 0).sum())


def _weight(m: nn.Module) -> torch.Tensor:
    """The weight the layer computes with (``effective_weight()`` of quantising layers, else ``weight``)."""
    fn = getattr(m, "effective_weight", None)
    return fn() if callable(fn) else m.weight


def _synapse(name, m, x, ac: int, dense: int, per_step: int, w: torch.Tensor) -> LayerCounts:
    n_w, zeros = _weight_stats(w)
    binary = is_binary(x)
    return LayerCounts(name, type(m).__name__, "synapse", calls=1, ac_ops=ac if binary else 0,
                       mac_ops=0 if binary else ac, dense_ops=dense, dense_ops_per_step=per_step,
                       weights=n_w, zero_weights=zeros)


@COUNT_RULES.register(nn.Linear)
def _count_linear(name: str, m: nn.Linear, x: torch.Tensor, y: torch.Tensor) -> LayerCounts:
    rows = x.reshape(-1, m.in_features)
    nz_per_input = (rows != 0).sum(0).to(torch.int64)  # how often each input was active
    w = _weight(m)
    fanout = (w != 0).sum(0).to(torch.int64)  # non-zero synapses leaving each input
    effective = int((nz_per_input * fanout).sum())
    per_step = m.in_features * m.out_features
    return _synapse(name, m, x, effective, rows.shape[0] * per_step, per_step, w)


def _conv_counts(conv: Callable, m: nn.Module, x: torch.Tensor) -> tuple[int, int, int]:
    w_nz = (_weight(m) != 0).to(torch.float64)
    kw = {"stride": m.stride, "padding": m.padding, "dilation": m.dilation, "groups": m.groups}
    with torch.no_grad():
        effective = conv((x != 0).to(torch.float64), w_nz, **kw).sum()
        one = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
        per_step = conv(one, torch.ones_like(w_nz), **kw).sum()  # padded positions are not operations
    per_step_i = int(round(float(per_step)))
    return int(round(float(effective))), x.shape[0] * per_step_i, per_step_i


@COUNT_RULES.register(nn.Conv2d)
def _count_conv2d(name, m: nn.Conv2d, x, y) -> LayerCounts:
    if m.padding_mode != "zeros" or isinstance(m.padding, str):
        raise ValueError(f"layer {name}: counting supports Conv2d with integer zero padding only")
    return _synapse(name, m, x, *_conv_counts(F.conv2d, m, x), _weight(m))


@COUNT_RULES.register(nn.Conv1d)
def _count_conv1d(name, m: nn.Conv1d, x, y) -> LayerCounts:
    if m.padding_mode != "zeros" or isinstance(m.padding, str):
        raise ValueError(f"layer {name}: counting supports Conv1d with integer zero padding only")
    return _synapse(name, m, x, *_conv_counts(F.conv1d, m, x), _weight(m))


def _count_neuron(name, m, x, y) -> LayerCounts:
    spiking = bool(getattr(m, "spiking", True))
    updates = x.numel()  # [T, B, ...]: every neuron updated every step
    if not spiking:
        return LayerCounts(name, type(m).__name__, "readout", calls=1, neuron_updates=updates)
    return LayerCounts(name, type(m).__name__, "neuron", calls=1, neuron_updates=updates,
                       spikes=int((y != 0).sum()), activations=y.numel())


def _count_delayed_linear(name: str, m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> LayerCounts:
    """A :class:`~neurosynth.delays.DelayedLinear` in eval mode (one tap per synapse, the deployed form) does what a
    Linear does: every input spike is delivered once through each non-zero synapse, only later (Loihi's
    ``DelayDense`` accumulates it into the delay slot at once). Counted on the ``[T, B, in]`` input like a Linear."""
    return _count_linear(name, m, x, y)


def _register_core_rules() -> None:
    from neurosynth.delays import DelayedLinear
    from neurosynth.layers import Recurrent
    from neurosynth.neurons import NeuronModel

    COUNT_RULES.register(DelayedLinear)(_count_delayed_linear)
    COUNT_RULES.register(NeuronModel)(_count_neuron)
    # Recurrent calls its neuron's step() (no forward hook fires there) and its `rec` Linear (counted by the
    # Linear rule), so the parent counts the neuron updates and spikes
    COUNT_RULES.register(Recurrent)(_count_neuron)


_core_done = False


def _ensure_core() -> None:
    global _core_done
    if not _core_done:
        _register_core_rules()
        _core_done = True


def param_bytes(model: nn.Module) -> int:
    """NeuroBench footprint: bytes of all parameters and buffers (zeros included)."""
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


def count_ops(model: nn.Module, x: torch.Tensor, *, time_first: bool = True,
              rules: TypeRegistry[CountRule] | None = None) -> OpCounts:
    """Run ``model`` on ``x [T, B, ...]`` (no gradients) and count operations per layer.

    ``time_first=False`` counts a model that takes ``[B, ...]`` (an ANN; ``timesteps`` is then 1).
    Layers without a rule (pooling, Flatten, Dropout, containers) are not counted; a model with no counted
    layer raises ``ValueError``. Returns :class:`OpCounts` whose properties are per sample.
    """
    from neurosynth.utils import check_time_first

    _ensure_core()
    rules = rules or COUNT_RULES
    if time_first:
        check_time_first(x, "count_ops input")
        T, B = int(x.shape[0]), int(x.shape[1])
    else:
        if not isinstance(x, torch.Tensor) or x.dim() < 2:
            raise ValueError(f"count_ops(time_first=False) needs a batch [B, ...]; got {getattr(x, 'shape', x)}")
        T, B = 1, int(x.shape[0])
    found: dict[str, LayerCounts] = {}
    order: list[str] = []
    handles = []

    def make_hook(name: str, rule: CountRule):
        def hook(mod, inputs, output):
            inp = inputs[0] if isinstance(inputs, tuple) else inputs
            out = output[0] if isinstance(output, tuple) else output
            c = rule(name, mod, inp.detach(), out.detach())
            if name in found:
                found[name] = found[name].merge(c)
            else:
                found[name] = c
                order.append(name)

        return hook

    for name, mod in model.named_modules():
        rule = rules.lookup(mod)
        if rule is not None:
            handles.append(mod.register_forward_hook(make_hook(name or type(mod).__name__, rule)))
    if not handles:
        raise ValueError(f"{type(model).__name__} has no layer with a counting rule; rules exist for "
                         f"{', '.join(rules.names())}")
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return OpCounts(samples=B, timesteps=T, layers=tuple(found[n] for n in order), param_bytes=param_bytes(model))


def count_ops_loader(model: nn.Module, loader, max_samples: int | None = None, progress: bool = False) -> OpCounts:
    """:func:`count_ops` over the batches of ``loader`` (yielding ``x`` or ``(x, y, ...)``), up to ``max_samples``."""
    from tqdm.auto import tqdm

    total: OpCounts | None = None
    seen = 0
    bar = tqdm(total=max_samples, desc="counting", unit="sample", disable=not progress, leave=False)
    for batch in loader:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if max_samples is not None:
            x = x[:, : max_samples - seen]
        if x.shape[1] == 0:
            break
        c = count_ops(model, x)
        total = c if total is None else total.merge(c)
        seen += x.shape[1]
        bar.update(x.shape[1])
        if max_samples is not None and seen >= max_samples:
            break
    bar.close()
    if total is None:
        raise ValueError("the loader yielded no samples")
    return total
