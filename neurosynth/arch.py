"""ArchSpec: a JSON document that rebuilds a model without running code.

``{"format": "neurosynth.arch/2", "kind": "sequential", "input_shape": [64], "layers": [...]}`` where each layer
is ``{"type": <registered type>, ...constructor fields}``; ``{"type": "neuron", "neuron": "lif", "params": {...}}``
builds any registered neuron. :func:`build` validates and builds; :func:`to_spec` inverts it for the layer
types registered here (and for models that provide ``to_spec()``).

Other whole-model kinds (e.g. the MSE-NAS DAG) register a builder in :data:`ARCH_KINDS`; their specs name the
module that registers it in ``"plugin"``. Only modules of registered plugin packages are importable that way:
``neurosynth`` itself, packages that call :func:`register_plugin_package` (``snn_nas`` does on import), and
installed distributions that declare the package under the ``neurosynth.plugins`` entry-point group (as
this project's ``pyproject.toml`` does for ``snn_nas``). The core names no package above it.

Format 2 (``neurosynth.arch/2``) lets a spec name its hardware target, ``"target": "loihi"``, instead of the
module that registers the target's layer types: :func:`build` calls the ``register_layers`` function that the
``neurosynth.targets`` entry-point group declares under that name (``pyproject.toml`` declares ``loihi``; targets of
other distributions declare theirs), else that of this distribution's own target of that name
(:data:`BUILTIN_TARGETS`).
Format 1 specs still build: :func:`upgrade` maps the module paths release 0.1.0 wrote (:data:`LEGACY_PLUGINS`,
the one table old -> new) to their new homes.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from typing import Any

from torch import nn

from .delays import SIGMA_FINAL, DelayedLinear
from .layers import SNN, Delay, MeanOverTime, Recurrent, SumPool2d
from .neurons import NeuronModel, build_neuron
from .registry import Registry

FORMAT = "neurosynth.arch/2"
FORMATS = ("neurosynth.arch/1", FORMAT)  # formats this version reads (1: see LEGACY_PLUGINS)
PLUGIN_ENTRY_POINTS = "neurosynth.plugins"  # entry-point group: value = a top-level package name
TARGET_ENTRY_POINTS = "neurosynth.targets"  # entry-point group: name = target, value = its register_layers function
#: "plugin" module paths written by earlier releases -> the fields that replace them (read by :func:`upgrade`)
LEGACY_PLUGINS: dict[str, dict[str, str]] = {
    "neurosynth.hardware.lava.qat": {"target": "loihi"},  # release 0.1.0: Loihi QAT layers (qlinear, qconv2d, ...)
}
#: the package of this distribution's own targets (``hardware/targets/``), asked when no entry point names a target:
#: the one place the core names a package above it, as the module of a plugin (never imported at import time)
BUILTIN_TARGETS = "neurosynth.hardware.targets"
_TARGETS_LOADED: set[str] = set()
_PLUGIN_PACKAGES: set[str] = {"neurosynth"}

LAYERS: Registry[Callable[[dict], nn.Module]] = Registry("layer type")
ARCH_KINDS: Registry[Callable[[dict], nn.Module]] = Registry("architecture kind")
# module class -> function(module) -> layer dict
SPEC_OF: dict[type, Callable[[nn.Module], dict]] = {}


def layer_type(name: str, cls: type | None = None, to_dict: Callable[[nn.Module], dict] | None = None):
    """Register a builder ``fn(cfg) -> module`` for layer ``type`` ``name`` (and its inverse for ``cls``)."""

    def deco(fn):
        LAYERS.register(name)(fn)
        if cls is not None and to_dict is not None:
            SPEC_OF[cls] = lambda m: {"type": name, **to_dict(m)}
        return fn

    return deco


def _fields(cfg: dict, required: tuple[str, ...], optional: dict[str, Any]) -> dict:
    kind = cfg.get("type")
    missing = [k for k in required if k not in cfg]
    if missing:
        raise ValueError(f"layer type '{kind}' needs fields {list(required)}; missing {missing} in {cfg}")
    extra = set(cfg) - set(required) - set(optional) - {"type", "name"}
    if extra:
        raise ValueError(f"layer type '{kind}' has no fields {sorted(extra)}; allowed: {list(required) + list(optional)}")
    return {**optional, **{k: cfg[k] for k in cfg if k not in ("type", "name")}}


@layer_type("linear", nn.Linear, lambda m: {"in_features": m.in_features, "out_features": m.out_features,
                                             "bias": m.bias is not None})
def _linear(cfg):
    f = _fields(cfg, ("in_features", "out_features"), {"bias": True})
    return nn.Linear(int(f["in_features"]), int(f["out_features"]), bias=bool(f["bias"]))


def _conv_dict(m: nn.Conv2d) -> dict:
    return {"in_channels": m.in_channels, "out_channels": m.out_channels, "kernel_size": list(m.kernel_size),
            "stride": list(m.stride), "padding": list(m.padding), "dilation": list(m.dilation), "groups": m.groups,
            "bias": m.bias is not None}


@layer_type("conv2d", nn.Conv2d, _conv_dict)
def _conv2d(cfg):
    f = _fields(cfg, ("in_channels", "out_channels", "kernel_size"),
                {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True})
    def tup(v):
        return (tuple(v) if isinstance(v, (list, tuple)) else int(v))
    return nn.Conv2d(int(f["in_channels"]), int(f["out_channels"]), tup(f["kernel_size"]), stride=tup(f["stride"]),
                     padding=tup(f["padding"]), dilation=tup(f["dilation"]), groups=int(f["groups"]), bias=bool(f["bias"]))


@layer_type("flatten", nn.Flatten, lambda m: {})
def _flatten(cfg):
    _fields(cfg, (), {})
    return nn.Flatten()


@layer_type("avgpool2d", nn.AvgPool2d, lambda m: {"kernel_size": m.kernel_size, "stride": m.stride})
def _avgpool(cfg):
    f = _fields(cfg, ("kernel_size",), {"stride": None})
    return nn.AvgPool2d(f["kernel_size"], f["stride"])


@layer_type("maxpool2d", nn.MaxPool2d, lambda m: {"kernel_size": m.kernel_size, "stride": m.stride})
def _maxpool(cfg):
    f = _fields(cfg, ("kernel_size",), {"stride": None})
    return nn.MaxPool2d(f["kernel_size"], f["stride"])


@layer_type("sumpool2d", SumPool2d, lambda m: {"kernel_size": m.kernel_size, "stride": m.stride, "padding": m.padding})
def _sumpool(cfg):
    f = _fields(cfg, ("kernel_size",), {"stride": None, "padding": 0})
    return SumPool2d(f["kernel_size"], f["stride"], f["padding"])


@layer_type("dropout", nn.Dropout, lambda m: {"p": m.p})
def _dropout(cfg):
    return nn.Dropout(float(_fields(cfg, (), {"p": 0.5})["p"]))


@layer_type("batchnorm1d", nn.BatchNorm1d, lambda m: {"num_features": m.num_features})
def _bn1(cfg):
    return nn.BatchNorm1d(int(_fields(cfg, ("num_features",), {})["num_features"]))


@layer_type("batchnorm2d", nn.BatchNorm2d, lambda m: {"num_features": m.num_features})
def _bn2(cfg):
    return nn.BatchNorm2d(int(_fields(cfg, ("num_features",), {})["num_features"]))


@layer_type("relu", nn.ReLU, lambda m: {})
def _relu(cfg):
    _fields(cfg, (), {})
    return nn.ReLU()


@layer_type("delay", Delay, lambda m: {"steps": m.steps})
def _delay(cfg):
    return Delay(int(_fields(cfg, (), {"steps": 1})["steps"]))


@layer_type("delayed_linear", DelayedLinear, lambda m: m.config())
def _delayed_linear(cfg):
    f = _fields(cfg, ("in_features", "out_features"),
                {"max_delay": 25, "bias": False, "sigma_init": None, "sigma_final": SIGMA_FINAL,
                 "anneal_fraction": 0.25})
    return DelayedLinear(int(f["in_features"]), int(f["out_features"]), max_delay=int(f["max_delay"]),
                         bias=bool(f["bias"]), sigma_init=None if f["sigma_init"] is None else float(f["sigma_init"]),
                         sigma_final=float(f["sigma_final"]), anneal_fraction=float(f["anneal_fraction"]))


@layer_type("mean_over_time", MeanOverTime, lambda m: {})
def _mean(cfg):
    return MeanOverTime()


@layer_type("recurrent", Recurrent, lambda m: {"size": m.size, "bias": m.rec.bias is not None, **m.neuron.config()})
def _recurrent(cfg):
    cfg = dict(cfg)
    cfg.pop("type")
    size = cfg.pop("size")
    bias = cfg.pop("bias", False)
    name = cfg.pop("neuron", "lif")
    return Recurrent(int(size), build_neuron(name, **cfg), bias=bias)


@layer_type("neuron")
def _neuron(cfg):
    cfg = dict(cfg)
    cfg.pop("type")
    cfg.pop("name", None)
    if "neuron" not in cfg:
        raise ValueError(f"a 'neuron' layer needs a 'neuron' field naming a registered neuron; got {cfg}")
    return build_neuron(cfg.pop("neuron"), **cfg)


def _layer_dict(m: nn.Module) -> dict:
    if isinstance(m, NeuronModel):
        return {"type": "neuron", **m.config()}
    fn = SPEC_OF.get(type(m))
    if fn is None:
        raise ValueError(f"no ArchSpec layer type for {type(m).__name__}; known: {sorted(c.__name__ for c in SPEC_OF)}")
    return fn(m)


def validate(spec: Any) -> dict:
    """Check the top-level structure; raise ``ValueError`` naming the problem."""
    if not isinstance(spec, dict):
        raise ValueError(f"an ArchSpec must be a JSON object; got {type(spec).__name__}")
    if spec.get("format") not in FORMATS:
        raise ValueError(f"unsupported ArchSpec format {spec.get('format')!r}; expected one of {list(FORMATS)}")
    kind = spec.get("kind", "sequential")
    if kind == "sequential":
        layers = spec.get("layers")
        if not isinstance(layers, list) or not layers:
            raise ValueError("a sequential ArchSpec needs a non-empty 'layers' list")
        for i, layer in enumerate(layers):
            if not isinstance(layer, dict) or "type" not in layer:
                raise ValueError(f"layer {i} must be an object with a 'type' field; got {layer!r}")
            LAYERS.get(layer["type"])
    return spec


def register_plugin_package(package: str) -> None:
    """Allow ArchSpec ``"plugin"`` modules under ``package`` (a top-level package name, e.g. ``"my_nas"``)."""
    if not isinstance(package, str) or not package.isidentifier():
        raise ValueError(f"a plugin package is a top-level package name like 'my_nas'; got {package!r}")
    _PLUGIN_PACKAGES.add(package)


def plugin_packages() -> list[str]:
    """The packages whose modules an ArchSpec may name as its ``"plugin"``."""
    from importlib.metadata import entry_points

    found = set(_PLUGIN_PACKAGES)
    try:
        found |= {ep.value.split(":")[0].split(".")[0] for ep in entry_points(group=PLUGIN_ENTRY_POINTS)}
    except Exception:  # pragma: no cover - broken metadata of some unrelated distribution
        pass
    return sorted(found)


def upgrade(spec: dict) -> dict:
    """``spec`` in the current format: an old ``"plugin"`` module path (:data:`LEGACY_PLUGINS`) becomes the fields
    that replace it (e.g. ``"target": "loihi"``) and the format becomes ``neurosynth.arch/2``. A spec that needs no
    change is returned as is (the same object); otherwise a copy."""
    if not isinstance(spec, dict) or spec.get("plugin") not in LEGACY_PLUGINS:
        return spec
    new = {k: v for k, v in spec.items() if k != "plugin"}
    new.update(LEGACY_PLUGINS[spec["plugin"]])
    new["format"] = FORMAT
    return new


def _import_target(spec: dict) -> None:
    """Register the layer types of the spec's ``"target"`` (entry-point group ``neurosynth.targets``); a target
    without an entry point (e.g. one registered in-process) needs nothing here."""
    name = spec.get("target")
    if not isinstance(name, str) or name in _TARGETS_LOADED:
        return
    from importlib.metadata import entry_points

    try:
        eps = [ep for ep in entry_points(group=TARGET_ENTRY_POINTS) if ep.name == name]
    except Exception:  # pragma: no cover - broken metadata of some unrelated distribution
        eps = []
    for ep in eps:
        try:
            ep.load()()
        except ModuleNotFoundError as e:
            from .errors import UserError

            raise UserError(f"ArchSpec target {name!r} needs {ep.value!r}, which is not importable ({e})") from e
    if not eps:  # this distribution's own targets, also when its entry-point metadata is stale (an old egg-info)
        try:
            builtin = importlib.import_module(BUILTIN_TARGETS)
        except ModuleNotFoundError:
            builtin = None
        if builtin is not None and name in builtin.TARGETS:
            builtin.register_layers(name)
    _TARGETS_LOADED.add(name)


def _import_plugin(spec: dict) -> None:
    plugin = spec.get("plugin")
    if not plugin:
        return
    allowed = plugin_packages()
    if not isinstance(plugin, str) or plugin.split(".")[0] not in allowed:
        raise ValueError(f"ArchSpec plugin {plugin!r} is not a module of this project or of a registered plugin "
                         f"package ({', '.join(p + '.*' for p in allowed)}); see neurosynth.arch.register_plugin_package")
    try:
        importlib.import_module(plugin)
    except ModuleNotFoundError as e:
        from .errors import UserError

        raise UserError(f"ArchSpec needs module {plugin!r}, which is not importable ({e})") from e


def build(spec: dict) -> nn.Module:
    """Build a model from an ArchSpec dict (see module docstring)."""
    if isinstance(spec, dict):
        spec = upgrade(spec)
        _import_target(spec)  # a target registers the layer types of its lowered specs
        _import_plugin(spec)  # a plugin may register the layer types the spec uses
    validate(spec)
    kind = spec.get("kind", "sequential")
    if kind != "sequential":
        model = ARCH_KINDS.get(kind)(spec)
    else:
        model = SNN(*[LAYERS.get(layer["type"])(layer) for layer in spec["layers"]])
    model.arch_spec = copy.deepcopy(spec)
    return model


def to_spec(model: nn.Module, input_shape: list[int] | tuple[int, ...] | None = None, **extra) -> dict:
    """The ArchSpec of a model (an :class:`SNN` of registered layer types, or any model with ``to_spec()``)."""
    if hasattr(model, "to_spec"):
        spec = model.to_spec()
    else:
        layers = [_layer_dict(m) for m in model.children()] if isinstance(model, nn.Sequential) else [_layer_dict(model)]
        spec = {"format": FORMAT, "kind": "sequential", "layers": layers}
    if input_shape is not None:
        spec["input_shape"] = list(input_shape)
    spec.update(extra)
    return spec


def mlp_spec(n_in: int, hidden: list[int], n_out: int, neuron: str = "lif", readout: str = "spiking",
             neuron_params: dict | None = None, per_neuron: bool = False, **neuron_kw) -> dict:
    """A spiking MLP: Linear + neuron per hidden layer, then Linear + spiking neuron (``readout='spiking'``) or an
    ``LI`` membrane readout (``readout='li'``). ``per_neuron``: one parameter value per neuron (needed to learn
    them per neuron); ``neuron_kw`` (reset, surrogate, learn, ...) goes to every spiking neuron."""
    neuron_params = neuron_params or {}
    layers: list[dict] = []
    sizes = [n_in, *hidden]

    def neuron_layer(size: int) -> dict:
        d = {"type": "neuron", "neuron": neuron, "params": dict(neuron_params), **neuron_kw}
        if per_neuron:
            d["shape"] = [size]
        return d

    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [{"type": "linear", "in_features": a, "out_features": b}, neuron_layer(b)]
    layers.append({"type": "linear", "in_features": sizes[-1], "out_features": n_out})
    if readout == "li":
        layers.append({"type": "neuron", "neuron": "li", "params": {"beta": neuron_params.get("beta", 0.9)}})
    elif readout == "spiking":
        layers.append(neuron_layer(n_out))
    else:
        raise ValueError(f"readout must be 'spiking' or 'li'; got {readout!r}")
    return {"format": FORMAT, "kind": "sequential", "input_shape": [n_in], "layers": layers}


def csnn_spec(input_shape: tuple[int, int, int] | list[int], channels: list[int], n_out: int, hidden: list[int] = (),
              neuron: str = "lif", neuron_params: dict | None = None, readout: str = "li", pool: str = "max",
              batchnorm: bool = True, kernel_size: int = 3, dropout: float = 0.0, **neuron_kw) -> dict:
    """A convolutional SNN: per entry of ``channels`` one block conv(k x k, same padding, no bias when followed
    by BN) -> BatchNorm2d -> spiking neuron -> 2x2 pool (``pool='max'`` or ``'avg'``), then Flatten, a Linear +
    neuron per ``hidden`` size (with ``dropout`` before each Linear when > 0) and a Linear readout to ``n_out``
    (``readout='li'``: leaky-integrator membranes, score them with ``mean_membrane_ce``; ``'spiking'``: the
    neuron, score spike counts with ``rate_ce``). ``input_shape`` is ``[C, H, W]``; ``H`` and ``W`` must be
    divisible by ``2 ** len(channels)``. BatchNorm normalises over time and batch together (the ``[T*B]`` view)."""
    c, h, w = (int(v) for v in input_shape)
    if not channels:
        raise ValueError("csnn_spec needs at least one conv block (channels=[...])")
    if h % 2 ** len(channels) or w % 2 ** len(channels):
        raise ValueError(f"input {h}x{w} is not divisible by 2**{len(channels)} (one 2x2 pooling per block)")
    if pool not in ("max", "avg"):
        raise ValueError(f"pool must be 'max' or 'avg'; got {pool!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd (same padding); got {kernel_size}")
    neuron_params = dict(neuron_params or {})

    def neuron_layer() -> dict:
        return {"type": "neuron", "neuron": neuron, "params": dict(neuron_params), **neuron_kw}

    layers: list[dict] = []
    for ch in channels:
        layers.append({"type": "conv2d", "in_channels": c, "out_channels": int(ch), "kernel_size": kernel_size,
                       "padding": kernel_size // 2, "bias": not batchnorm})
        if batchnorm:
            layers.append({"type": "batchnorm2d", "num_features": int(ch)})
        layers += [neuron_layer(), {"type": f"{pool}pool2d", "kernel_size": 2}]
        c, h, w = int(ch), h // 2, w // 2
    layers.append({"type": "flatten"})
    n = c * h * w
    for size in hidden:
        if dropout > 0:
            layers.append({"type": "dropout", "p": float(dropout)})
        layers += [{"type": "linear", "in_features": n, "out_features": int(size)}, neuron_layer()]
        n = int(size)
    if dropout > 0:
        layers.append({"type": "dropout", "p": float(dropout)})
    layers.append({"type": "linear", "in_features": n, "out_features": n_out})
    if readout == "li":
        layers.append({"type": "neuron", "neuron": "li", "params": {"beta": neuron_params.get("beta", 0.9)}})
    elif readout == "spiking":
        layers.append(neuron_layer())
    else:
        raise ValueError(f"readout must be 'spiking' or 'li'; got {readout!r}")
    return {"format": FORMAT, "kind": "sequential", "input_shape": [int(v) for v in input_shape], "layers": layers}
