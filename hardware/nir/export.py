"""Model -> NIR: :func:`to_nir` and the exporter registry :data:`NIR_EXPORTERS` (module type -> function).

The time discretisation and reset conventions are in :mod:`neurosynth.hardware.nir.common`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from neurosynth.registry import TypeRegistry

from .common import DEFAULT_DT, DISCRETISATION, PRODUCER, _nir, _pair, _tau

NIR_EXPORTERS = TypeRegistry("NIR exporter")
SKIP = object()  # an exporter returns SKIP for layers that are the identity at inference (Dropout)


@dataclasses.dataclass(frozen=True)
class ExportContext:
    """What an exporter may need besides the module: the per-sample input shape (no T, B) and dt."""

    input_shape: tuple[int, ...]
    dt: float
    allow_nonstandard_reset: bool
    name: str


# ----------------------------------------------------------------------------- helpers
def _np32(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy().copy()


def _weight(m: nn.Module) -> torch.Tensor:
    """The weight a synapse computes with: ``m.effective_weight()`` when the layer quantises (QLinear/QConv2d of
    :mod:`neurosynth.hardware.targets.loihi_qat`), else ``m.weight``."""
    fn = getattr(m, "effective_weight", None)
    with torch.no_grad():
        return fn() if callable(fn) else m.weight


def _per_neuron(module: nn.Module, name: str, shape: tuple[int, ...]) -> np.ndarray:
    value = getattr(module, name).detach().cpu().to(torch.float32)
    try:
        return value.expand(shape).numpy().copy()
    except RuntimeError as e:
        raise ValueError(f"{type(module).__name__}.{name} has shape {tuple(value.shape)}, which does not fit the "
                         f"layer's input shape {shape}") from e


def _check_reset(module: nn.Module, ctx: ExportContext) -> dict:
    reset = getattr(module, "reset", "zero")
    meta = {"reset": reset, "dt": float(ctx.dt), "neurosynth_neuron": getattr(module, "neuron_name", "")}
    if getattr(module, "reset_delay", False):
        meta["reset_delay"] = 1
    if reset != "zero" and not ctx.allow_nonstandard_reset:
        raise ValueError(
            f"layer {ctx.name} ({type(module).__name__}) uses reset='{reset}', which NIR cannot express (NIR neurons "
            "reset to v_reset, i.e. reset='zero'); other NIR tools (snnTorch, Lava, Norse) would silently reset to "
            "zero. Retrain with reset='zero', or pass allow_nonstandard_reset=True (CLI: --allow-nonstandard-reset) "
            "to keep the convention in node metadata, which only neurosynth's from_nir honours."
        )
    return meta


# ----------------------------------------------------------------------------- exporters
@NIR_EXPORTERS.register(nn.Linear)
def _export_linear(m: nn.Linear, ctx: ExportContext):
    nir = _nir()
    if m.bias is not None:
        return nir.Affine(weight=_np32(_weight(m)), bias=_np32(m.bias))
    return nir.Linear(weight=_np32(_weight(m)))


@NIR_EXPORTERS.register(nn.Conv2d)
def _export_conv2d(m: nn.Conv2d, ctx: ExportContext):
    nir = _nir()
    if m.padding_mode != "zeros":
        raise ValueError(f"layer {ctx.name}: Conv2d padding_mode='{m.padding_mode}' has no NIR equivalent; use 'zeros'")
    if isinstance(m.padding, str):
        raise ValueError(f"layer {ctx.name}: Conv2d padding='{m.padding}' is not exported; give integer padding")
    if m.groups != 1:
        raise ValueError(f"layer {ctx.name}: grouped Conv2d (groups={m.groups}) is not exported: nir 1.0.8 infers its "
                         "input channels as C_in/groups and rejects the graph; use groups=1")
    if len(ctx.input_shape) != 3:
        raise ValueError(f"layer {ctx.name}: Conv2d needs a [C, H, W] input, got per-sample shape {ctx.input_shape}")
    bias = _np32(m.bias) if m.bias is not None else np.zeros(m.out_channels, dtype=np.float32)
    return nir.Conv2d(
        input_shape=tuple(int(s) for s in ctx.input_shape[1:]), weight=_np32(_weight(m)), stride=_pair(m.stride),
        padding=_pair(m.padding), dilation=_pair(m.dilation), groups=int(m.groups), bias=bias,
        metadata={"bias": int(m.bias is not None)},
    )


@NIR_EXPORTERS.register(nn.Flatten)
def _export_flatten(m: nn.Flatten, ctx: ExportContext):
    nir = _nir()
    # torch dims count the (T*B) batch axis; NIR's are per sample
    start = m.start_dim - 1 if m.start_dim > 0 else m.start_dim
    end = m.end_dim - 1 if m.end_dim > 0 else m.end_dim
    if m.start_dim == 0 or m.end_dim == 0:
        raise ValueError(f"layer {ctx.name}: Flatten must not flatten the batch axis (start_dim >= 1)")
    return nir.Flatten(input_type={"input": np.array(ctx.input_shape)}, start_dim=start, end_dim=end)


@NIR_EXPORTERS.register(nn.AvgPool2d)
def _export_avgpool(m: nn.AvgPool2d, ctx: ExportContext):
    nir = _nir()
    if m.ceil_mode or m.divisor_override is not None or (not m.count_include_pad and _pair(m.padding) != (0, 0)):
        raise ValueError(f"layer {ctx.name}: AvgPool2d with ceil_mode, divisor_override or count_include_pad=False "
                         "has no NIR equivalent; use the defaults")
    stride = m.stride if m.stride is not None else m.kernel_size
    return nir.AvgPool2d(kernel_size=np.array(_pair(m.kernel_size)), stride=np.array(_pair(stride)),
                         padding=np.array(_pair(m.padding)))


def _register_core_layers() -> None:
    from neurosynth.layers import Delay, Recurrent, SumPool2d
    from neurosynth.neurons import ALIF, IF, LI, LIF, CubaLIF

    @NIR_EXPORTERS.register(Delay)
    def _export_delay(m, ctx: ExportContext):
        nir = _nir()
        if m.steps == 0:
            return SKIP
        return nir.Delay(delay=np.full(ctx.input_shape, m.steps * ctx.dt, dtype=np.float64),
                         metadata={"dt": float(ctx.dt), "steps": int(m.steps)})

    @NIR_EXPORTERS.register(SumPool2d)
    def _export_sumpool(m, ctx: ExportContext):
        nir = _nir()
        return nir.SumPool2d(kernel_size=np.array(_pair(m.kernel_size)), stride=np.array(_pair(m.stride)),
                             padding=np.array(_pair(m.padding)))

    @NIR_EXPORTERS.register(LIF)
    def _export_lif(m, ctx: ExportContext):
        nir = _nir()
        meta = _check_reset(m, ctx)
        beta = _per_neuron(m, "beta", ctx.input_shape)
        tau = _tau(beta, ctx.dt)
        return nir.LIF(tau=tau, r=tau / ctx.dt, v_leak=np.zeros_like(tau),
                       v_threshold=_per_neuron(m, "threshold", ctx.input_shape),
                       v_reset=np.zeros(ctx.input_shape, dtype=np.float32), metadata=meta)

    @NIR_EXPORTERS.register(IF)
    def _export_if(m, ctx: ExportContext):
        nir = _nir()
        meta = _check_reset(m, ctx)
        if not bool((m.beta == 1).all()):
            return _export_lif(m, ctx)  # an IF built with beta != 1 is a LIF
        shape = ctx.input_shape
        return nir.IF(r=np.ones(shape, dtype=np.float64), v_threshold=_per_neuron(m, "threshold", shape),
                      v_reset=np.zeros(shape, dtype=np.float32), metadata=meta)

    @NIR_EXPORTERS.register(CubaLIF)
    def _export_cubalif(m, ctx: ExportContext):
        nir = _nir()
        meta = _check_reset(m, ctx)
        shape = ctx.input_shape
        tau_syn = _tau(_per_neuron(m, "alpha", shape), ctx.dt)
        tau_mem = _tau(_per_neuron(m, "beta", shape), ctx.dt)
        return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / ctx.dt, v_leak=np.zeros_like(tau_mem),
                           v_threshold=_per_neuron(m, "threshold", shape),
                           v_reset=np.zeros(shape, dtype=np.float32), w_in=tau_syn / ctx.dt, metadata=meta)

    @NIR_EXPORTERS.register(LI)
    def _export_li(m, ctx: ExportContext):
        nir = _nir()
        tau = _tau(_per_neuron(m, "beta", ctx.input_shape), ctx.dt)
        return nir.LI(tau=tau, r=tau / ctx.dt, v_leak=np.zeros_like(tau),
                      metadata={"dt": float(ctx.dt), "neurosynth_neuron": "li"})

    @NIR_EXPORTERS.register(Recurrent)
    def _export_recurrent(m, ctx: ExportContext):
        return _recurrent_subgraph(m, ctx)

    @NIR_EXPORTERS.register(ALIF)
    def _export_alif(m, ctx: ExportContext):
        raise ValueError(f"layer {ctx.name}: ALIF (adaptive threshold) has no NIR primitive; use LIF or CubaLIF")


def _recurrent_subgraph(m: nn.Module, ctx: ExportContext):
    """A ``Recurrent`` layer as NIR's recurrent subgraph, the structure snnTorch's ``RLeaky``/``RSynaptic`` use::

        input -> lif -> output,   lif -> w_rec -> lif

    ``lif`` is the neuron node (``LIF``/``CubaLIF``/``IF``), ``w_rec`` a ``Linear`` (``Affine`` with a bias). NIR
    executes the edge ``w_rec -> lif`` with the previous step's output (nirtorch's recurrent state), which is our
    ``x_t + W_rec s_{t-1}``.
    """
    nir = _nir()
    n = int(m.size)
    if tuple(ctx.input_shape) != (n,):
        raise ValueError(f"layer {ctx.name} (Recurrent, size {n}) receives input of shape {ctx.input_shape}")
    sub = ExportContext((n,), ctx.dt, ctx.allow_nonstandard_reset, f"{ctx.name}.neuron")
    neuron_exporter = NIR_EXPORTERS.lookup(m.neuron)
    if neuron_exporter is None or getattr(m.neuron, "neuron_name", None) not in ("lif", "if", "cubalif"):
        raise ValueError(f"layer {ctx.name}: a Recurrent layer with a {type(m.neuron).__name__} neuron has no NIR "
                         "recurrent subgraph (NIR tools take LIF, IF or CubaLIF there)")
    lif = neuron_exporter(m.neuron, sub)
    w_rec = _export_linear(m.rec, ExportContext((n,), ctx.dt, ctx.allow_nonstandard_reset, f"{ctx.name}.rec"))
    shape = {"input": np.array([n])}
    return nir.NIRGraph(
        nodes={"input": nir.Input(input_type=shape), "lif": lif, "w_rec": w_rec,
               "output": nir.Output(output_type={"output": np.array([n])})},
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
        metadata={"neurosynth_layer": "recurrent"})


def _custom_neuron_exporter(m: nn.Module, name: str):
    """A custom (plugin) neuron maps onto a NIR primitive only where it says its dynamics are those of a built-in
    neuron (class attribute ``nir_primitive = "lif"`` | ``"if"`` | ``"cubalif"`` | ``"li"``): its own ``charge``
    has no NIR form, and exporting it as its base class would silently change the model."""
    from neurosynth.neurons import NEURONS, NeuronModel

    if not isinstance(m, NeuronModel) or type(m) in NIR_EXPORTERS._entries or type(m).__module__.startswith(
            "neurosynth."):
        return None
    label = getattr(m, "neuron_name", type(m).__name__)
    primitive = getattr(type(m), "nir_primitive", None)
    if primitive is None:
        raise ValueError(f"layer {name}: the custom neuron {label!r} ({type(m).__name__}) has no NIR primitive (NIR "
                         "has LIF, IF, CubaLIF and LI; its charge() is its own). If its dynamics equal one of them, "
                         "declare it on the class, e.g. nir_primitive = \"lif\"")
    base = NEURONS.get(primitive) if primitive in NEURONS else None
    exporter = NIR_EXPORTERS._entries.get(base) if base is not None else None
    if exporter is None:
        raise ValueError(f"layer {name}: the custom neuron {label!r} declares nir_primitive={primitive!r}; choose one "
                         "of 'lif', 'if', 'cubalif', 'li'")
    missing = [k for k in base.defaults if not hasattr(m, k)]
    if missing:
        raise ValueError(f"layer {name}: the custom neuron {label!r} declares nir_primitive={primitive!r} but lacks "
                         f"its parameters {missing}")
    return exporter


@NIR_EXPORTERS.register(nn.Dropout, nn.Identity)
def _export_skip(m, ctx):
    return SKIP



_core_registered = False


def _ensure_core() -> None:
    global _core_registered
    if not _core_registered:
        _register_core_layers()
        _core_registered = True


# ----------------------------------------------------------------------------- to_nir
def _flatten_layers(model: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    if isinstance(model, nn.Sequential):
        out: list[tuple[str, nn.Module]] = []
        for name, child in model.named_children():
            out += _flatten_layers(child, f"{prefix}{name}.")
        return out
    return [(prefix.rstrip(".") or type(model).__name__.lower(), model)]


def _infer_input_shape(model: nn.Module, layers) -> tuple[int, ...]:
    spec = getattr(model, "arch_spec", None)
    if isinstance(spec, dict) and spec.get("input_shape"):
        return tuple(int(s) for s in spec["input_shape"])
    if getattr(model, "nir_input_shape", None):
        return tuple(int(s) for s in model.nir_input_shape)
    for _, m in layers:
        if isinstance(m, nn.Linear):
            return (m.in_features,)
        if getattr(m, "shape", None):
            return tuple(m.shape)
        break
    raise ValueError("cannot infer the model's per-sample input shape (no arch_spec input_shape and the first "
                     "layer is not Linear); pass input_shape=(C, H, W) or (N,) to to_nir")


def _out_shape(m: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    with torch.no_grad():
        p = next(iter(m.parameters()), None)
        dtype = p.dtype if p is not None else torch.float32
        y = m(torch.zeros(1, *shape, dtype=dtype, device=p.device if p is not None else "cpu"))
    return tuple(int(s) for s in y.shape[1:])


def to_nir(model: nn.Module, input_shape: tuple[int, ...] | list[int] | None = None, *, dt: float = DEFAULT_DT,
           allow_nonstandard_reset: bool = False):
    """Export a sequential model (``neurosynth.SNN`` / ``nn.Sequential``) to a ``nir.NIRGraph``.

    ``input_shape`` is the per-sample shape without ``[T, B]`` (default: the model's ArchSpec ``input_shape``,
    else the first Linear's ``in_features``). Nodes are named by their position in the model (``"0"``,
    ``"1"``... counting exported nodes, zero-padded from 10 nodes on: ``"00"``, ``"01"``...; Dropout/Identity are
    skipped), chained ``input -> ... -> output``. Raises ``ValueError`` naming the layer for anything NIR
    cannot express (ALIF, subtract reset unless ``allow_nonstandard_reset``, unsupported module types).
    """
    nir = _nir()
    _ensure_core()
    if not (dt > 0 and math.isfinite(dt)):
        raise ValueError(f"dt must be a positive number of seconds; got {dt}")
    layers = _flatten_layers(model)
    shape = tuple(int(s) for s in input_shape) if input_shape is not None else _infer_input_shape(model, layers)
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(shape)})}
    exported: list = []
    for name, m in layers:
        exporter = _custom_neuron_exporter(m, name) or NIR_EXPORTERS.lookup(m)
        if exporter is None:
            raise ValueError(f"layer {name} ({type(m).__name__}) has no NIR exporter; supported: "
                             f"{', '.join(NIR_EXPORTERS.names())}")
        node = exporter(m, ExportContext(shape, float(dt), allow_nonstandard_reset, name))
        is_neuron = getattr(m, "neuron_name", None) is not None and hasattr(m, "defaults")
        if not is_neuron and not isinstance(node, nir.NIRGraph):  # neurons and recurrent layers keep the shape
            shape = _out_shape(m, shape)
        if node is SKIP:
            continue
        exported.append(node)
    # keys: position among exported nodes (stable under NIR -> model -> NIR), zero-padded so that sorted names
    # are in layer order: nir.read returns nodes sorted by name, and nirtorch (snnTorch's importer) fails on a
    # recurrent subgraph it meets before the node feeding it
    width = len(str(max(len(exported) - 1, 0)))
    chain = ["input"]
    for i, node in enumerate(exported):
        key = f"{i:0{width}d}"
        nodes[key] = node
        chain.append(key)
    nodes["output"] = nir.Output(output_type={"output": np.array(shape)})
    chain.append("output")
    edges = list(zip(chain[:-1], chain[1:]))
    meta = {"producer": PRODUCER, "dt": float(dt), "discretisation": DISCRETISATION,
            "reset_convention": "v_reset after a spike (neurosynth reset='zero'); see node metadata 'reset'"}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


