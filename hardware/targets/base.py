r"""A hardware target as data: what it runs, on which number grids, at what cost, and how a spec is lowered for it.

One module per target (:mod:`.float_`, :mod:`.loihi`, :mod:`.nir`) adds one frozen :class:`Target` to
:data:`TARGETS`. The search space (``snn_nas.mse``), the exporters and the energy command read these entries;
target names come from ``TARGETS.names()``, never from string literals elsewhere.

This package stays light: importing it imports neither torch, Lava nor NIR (``neurosynth --help`` builds its
``--target`` choices from it, and ``snn_nas`` may import it, see ``.importlinter``). A target's layer types
(e.g. Loihi's ``qconv2d``/``qlinear``) are registered in ``neurosynth.arch.LAYERS`` by its ``register_layers``
hook, which ``neurosynth.arch.build`` calls for a spec naming ``"target": <name>`` through the
``neurosynth.targets`` entry-point group (``pyproject.toml``), so a saved spec names the target, not a module.

A lowered spec (the plain sequential ArchSpec an exporter reads) is built from three steps a target describes:
a synapse (``synapse`` layer types, followed by ``synapse_delay`` one-step :class:`~neurosynth.layers.Delay`
layers), a downsampling (``downsample``) and a neuron on the target's grids (``snap``), see
:func:`synapse_layers`, :func:`downsample_layers`, :func:`neuron_entry` and :func:`sequential_spec`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from neurosynth.registry import Registry

#: neuron parameters of the deployable family (zero reset), snapped to the target's grid by ``Target.snap``
DEPLOY_PARAMS = (("alpha", 0.5), ("beta", 0.9), ("threshold", 1.0))
DOWNSAMPLES = ("avgpool", "strided_conv", "sumpool")


def _identity(name: str, value: float) -> float:
    return float(value)


@dataclass(frozen=True)
class Target:
    """What a deployment target allows and how a candidate is lowered for it.

    ``neurons``: the neurons it runs (``None``: any registered one); ``edge_types`` / ``multi_output`` /
    ``max_inputs`` / ``readouts`` / ``input``: the graph features it runs (read by the search space);
    ``lowers``: whether a spec has a sequential lowering (``float`` has none: it is not exported);
    ``synapse``: the (conv, linear) layer types of the lowering, ``synapse_delay`` the steps each synapse delays;
    ``downsample``: ``"avgpool" | "strided_conv" | "sumpool"``; ``snap(param, value)``: the neuron parameter grid;
    ``quantize(weight tensor)``: the weight grid (``None``: float weights); ``resources(seq_spec) -> dict``: its
    resource model (``None``: none); ``cost_model``: the energy cost model's name
    (``neurosynth.hardware.energy.COST_MODELS``; ``None``: the energy command's default); ``exporter``: the
    ``neurosynth export <name>`` command that deploys it (``None``: not exportable); ``register_layers``: registers
    the layer types its lowered specs use (``None``: only core layer types).
    """

    name: str
    description: str
    neurons: tuple[str, ...] | None = None
    edge_types: tuple[str, ...] = ("ff", "lat", "fb", "skip")
    multi_output: bool = True
    max_inputs: int | None = None
    readouts: tuple[str, ...] = ("li", "spiking")
    input: str = "any"  # "any" | "spikes"
    lowers: bool = True
    synapse: tuple[str, str] = ("conv2d", "linear")
    synapse_delay: int = 0
    downsample: str = "avgpool"
    snap: Callable[[str, float], float] = _identity
    quantize: Callable | None = None
    resources: Callable[[dict], dict] | None = None
    cost_model: str | None = None
    exporter: str | None = None
    register_layers: Callable[[], object] | None = None

    @property
    def layers(self) -> tuple[str, ...]:
        """The ArchSpec layer types a lowered spec of this target may hold (``()``: no lowering)."""
        if not self.lowers:
            return ()
        pool = {"sumpool": ("sumpool2d",), "avgpool": ("avgpool2d",), "strided_conv": ()}[self.downsample]
        return (*self.synapse, *pool, *(("delay",) if self.synapse_delay else ()), "neuron", "flatten")

    def __post_init__(self):
        if self.downsample not in DOWNSAMPLES:
            raise ValueError(f"target {self.name!r}: downsample must be one of {list(DOWNSAMPLES)}; got {self.downsample!r}")
        if self.input not in ("any", "spikes"):
            raise ValueError(f"target {self.name!r}: input must be 'any' or 'spikes'; got {self.input!r}")


TARGETS: Registry[Target] = Registry("hardware target")


def get_target(name: str | Target) -> Target:
    """The registered target ``name`` (a :class:`Target` passes through); unknown -> ``ValueError`` listing them."""
    return name if isinstance(name, Target) else TARGETS.get(name)


def target_of(spec: dict) -> Target:
    """The target an ArchSpec names (``"target"``, or an old module path mapped by ``neurosynth.arch.upgrade``);
    ``float`` when it names none."""
    from neurosynth.arch import upgrade

    return get_target(upgrade(spec).get("target", "float"))


def exporters() -> dict[str, list[str]]:
    """``{export command: [targets it deploys]}`` over the registered targets."""
    out: dict[str, list[str]] = {}
    for name, t in TARGETS.items():
        if t.exporter:
            out.setdefault(t.exporter, []).append(name)
    return out


def exporter_for(spec: dict) -> str | None:
    """The ``neurosynth export`` command that deploys the target ``spec`` names (``None``: not exportable)."""
    return target_of(spec).exporter


def register_layers(target: str | Target) -> None:
    """Register the layer types ``target``'s lowered specs use (idempotent; nothing for core-only targets)."""
    t = get_target(target)
    if t.register_layers is not None:
        t.register_layers()


# ----------------------------------------------------------------------------- lowering steps (pure)
def neuron_entry(target: str | Target, name: str, shape: list[int]) -> dict:
    """ArchSpec neuron layer of the deployable family on ``target``'s grid: zero reset, ``DEPLOY_PARAMS`` snapped."""
    t = get_target(target)
    if t.neurons is not None and name not in t.neurons:
        raise ValueError(f"neuron {name!r} does not run on target {t.name!r} (allowed: {list(t.neurons)})")
    if name not in ("lif", "cubalif"):
        raise ValueError(f"neuron {name!r} is not in the deployable family (lif, cubalif)")
    wanted = ("alpha", "beta", "threshold") if name == "cubalif" else ("beta", "threshold")
    params = {k: t.snap(k, v) for k, v in DEPLOY_PARAMS if k in wanted}
    return {"type": "neuron", "neuron": name, "reset": "zero", "surrogate": "atan", "params": params,
            "shape": [int(s) for s in shape]}


def synapse_layers(target: str | Target, shape: list[int], out: int, kernel: int = 1,
                   stride: int = 1) -> tuple[list[dict], list[int]]:
    """The layers of one bias-free synapse from ``shape`` (``[C, H, W]``: a same-padded conv, ``[N]``: a linear
    layer) to ``out`` channels/features, then ``synapse_delay`` one-step delays. Returns ``(layers, out shape)``."""
    t = get_target(target)
    conv_t, lin_t = t.synapse
    if len(shape) == 3:
        pad = kernel // 2
        layers = [{"type": conv_t, "in_channels": int(shape[0]), "out_channels": int(out), "kernel_size": int(kernel),
                   "stride": int(stride), "padding": pad, "bias": False}]
        new = [int(out), (shape[1] + 2 * pad - kernel) // stride + 1, (shape[2] + 2 * pad - kernel) // stride + 1]
    else:
        layers = [{"type": lin_t, "in_features": int(shape[0]), "out_features": int(out), "bias": False}]
        new = [int(out)]
    layers += [{"type": "delay", "steps": 1}] * t.synapse_delay
    return layers, new


def downsample_layers(target: str | Target, shape: list[int]) -> tuple[list[dict], list[int], int]:
    """How ``target`` halves a ``[C, H, W]`` map: ``(layers to insert, their out shape, stride of the next conv)``
    (``sumpool``: a 2x2 sum pooling; ``strided_conv``: no layer, the next convolution uses stride 2)."""
    t = get_target(target)
    if t.downsample == "sumpool":
        return ([{"type": "sumpool2d", "kernel_size": 2, "stride": 2, "padding": 0}],
                [shape[0], shape[1] // 2, shape[2] // 2], 1)
    if t.downsample == "strided_conv":
        return [], list(shape), 2
    return ([{"type": "avgpool2d", "kernel_size": 2}], [shape[0], shape[1] // 2, shape[2] // 2], 1)


def sequential_spec(target: str | Target, input_shape: list[int], layers: list[dict], **meta) -> dict:
    """The lowered ArchSpec: ``{"format": neurosynth.arch/2, "kind": "sequential", "target": <name>, ...}``."""
    from neurosynth.arch import FORMAT

    t = get_target(target)
    return {"format": FORMAT, "kind": "sequential", "target": t.name, "input_shape": [int(s) for s in input_shape],
            "layers": layers, "meta": {"family": t.name, "target": t.name, "delay_per_synapse": t.synapse_delay,
                                       **meta}}
