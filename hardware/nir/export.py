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

from neurosynth.delays import DelayedLinear
from neurosynth.registry import TypeRegistry

from .common import DEFAULT_DT, DEFAULT_FORM, DISCRETISATION, NIR_FORMS, PRODUCER, NirForm, _nir, _pair, _tau

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
    from neurosynth.delays import DelayedLinear
    from neurosynth.hardware.targets.loihi_qat import QBias
    from neurosynth.layers import Delay, Recurrent, SumPool2d
    from neurosynth.neurons import ALIF, IF, LI, LIF, AdLIF, CubaLIF, SEAdLIF

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

    @NIR_EXPORTERS.register(DelayedLinear)
    def _export_delayed_linear(m, ctx: ExportContext):
        return _delay_expansion(m, ctx)

    @NIR_EXPORTERS.register(QBias)
    def _export_neuron_bias(m, ctx: ExportContext):
        return _neuron_bias(m, ctx)

    @NIR_EXPORTERS.register(ALIF)
    def _export_alif(m, ctx: ExportContext):
        raise ValueError(f"layer {ctx.name}: ALIF (adaptive threshold) has no NIR primitive; use LIF or CubaLIF")

    @NIR_EXPORTERS.register(AdLIF, SEAdLIF)
    def _export_adlif(m, ctx: ExportContext):
        raise ValueError(f"layer {ctx.name}: {type(m).__name__} (adaptive LIF, its adaptation current w coupled to the "
                         "membrane) has no NIR primitive: NIR's neurons (LIF, CubaLIF, LI, IF) have no adaptation; "
                         "train with --neuron cubalif (or lif) for NIR")


def _neuron_bias(m: nn.Module, ctx: ExportContext):
    """A per-neuron bias layer (the Loihi neuron bias ``QBias``: ``x + b`` on its grid) as an ``Affine`` with the
    identity matrix and the bias it computes with. NIR has no bias-only node; every reader runs an ``Affine``, and
    ``I x + b`` is ``x + b`` exactly in float arithmetic. The bias is not a neuron's ``v_leak``: a LIF's ``v_leak``
    is scaled by ``dt/tau`` and readers discretise it differently, while this form is the model's own arithmetic
    (``metadata["neurosynth_layer"] = "neuron_bias"``)."""
    nir = _nir()
    n = int(m.features)
    if tuple(ctx.input_shape) != (n,):
        raise ValueError(f"layer {ctx.name} ({type(m).__name__}, {n} neurons) receives input of shape "
                         f"{ctx.input_shape}")
    with torch.no_grad():
        b = m.effective_bias()
    return nir.Affine(weight=np.eye(n, dtype=np.float32), bias=_np32(b), metadata={"neurosynth_layer": "neuron_bias"})


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


def _delay_expansion(m: nn.Module, ctx: ExportContext):
    """A :class:`~neurosynth.delays.DelayedLinear` (its rounded, one-tap delays: the eval/export form) as a NIR
    subgraph. NIR's ``Delay`` is element-wise (one delay per channel), so per-synapse delays are expanded: for each
    delay value ``d`` in use, ``Delay(d dt)`` on the ``N_in`` inputs, then a ``Linear`` holding the weights of the
    synapses with that delay; all branches sum into the output::

        input -> delay_<d> -> w_<d> -> output      (d = 0: input -> w_0 -> output)

    Delays are in seconds (``d * dt``), with ``dt`` and the steps ``d`` in the node metadata. The bias, if any, sits
    on the first branch (an ``Affine``). No NIR reader other than :func:`~.importer.from_nir` executes ``Delay``
    (``docs/nir_interop.md``)."""
    nir = _nir()
    n_in, n_out = int(m.in_features), int(m.out_features)
    if tuple(ctx.input_shape) != (n_in,):
        raise ValueError(f"layer {ctx.name} (DelayedLinear, {n_in} inputs) receives input of shape {ctx.input_shape}")
    w = _np32(_weight(m))
    d = m.hard_delays().cpu().numpy()
    values = [int(v) for v in np.unique(d)]
    width = len(str(max(values)))
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array([n_in])}),
                             "output": nir.Output(output_type={"output": np.array([n_out])})}
    edges: list[tuple[str, str]] = []
    for i, v in enumerate(values):
        key = f"{v:0{width}d}"
        wv = np.where(d == v, w, 0).astype(np.float32)
        if i == 0 and m.bias is not None:
            nodes[f"w_{key}"] = nir.Affine(weight=wv, bias=_np32(m.bias))
        else:
            nodes[f"w_{key}"] = nir.Linear(weight=wv)
        if v == 0:
            edges.append(("input", f"w_{key}"))
        else:
            nodes[f"delay_{key}"] = nir.Delay(delay=np.full((n_in,), v * ctx.dt, dtype=np.float64),
                                              metadata={"dt": float(ctx.dt), "steps": v})
            edges += [("input", f"delay_{key}"), (f"delay_{key}", f"w_{key}")]
        edges.append((f"w_{key}", "output"))
    meta = {"neurosynth_layer": "delayed_linear", "dt": float(ctx.dt), **m.config()}
    meta = {k: v for k, v in meta.items() if v is not None}  # sigma_init=None: the default K/2
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


# ----------------------------------------------------------------------------- the folded form (r = 1)
def _neuron_gain(node) -> np.ndarray | None:
    """The factor ``r = tau/dt`` a LIF/LI node multiplies its input by, which the folded form moves into the
    weights; ``None`` for IF (``r = 1`` already) and CubaLIF, whose ``r``/``w_in`` every reader measured honours
    (Norse included; snnTorch refuses a CubaLIF with ``r != tau_mem/dt``)."""
    if type(node).__name__ in ("LIF", "LI"):
        return np.asarray(node.r, dtype=np.float64)
    return None


def _with_unit_gain(node):
    d = {k: v for k, v in node.to_dict().items() if k != "type"}
    meta = dict(d.pop("metadata", None) or {})
    meta["gain_folded"] = 1
    if "r" in d:
        d["r"] = np.ones_like(np.asarray(d["r"], dtype=np.float64))
    return type(node)(**d, metadata=meta)


def _scaled(node, gain: np.ndarray, name: str):
    """``node`` (Affine/Linear/Conv2d) with its output rows multiplied by ``gain`` (per output neuron); the unscaled
    weights stay in ``metadata`` (``neurosynth_weight``/``neurosynth_bias``) so that our importer restores them
    bit for bit."""
    nir = _nir()
    kind = type(node).__name__
    w = np.asarray(node.weight)
    bias = np.asarray(node.bias) if kind != "Linear" else np.zeros(w.shape[0], dtype=np.float32)
    meta = dict(getattr(node, "metadata", None) or {})
    if kind == "Conv2d":
        per_channel = gain.reshape(gain.shape[0], -1)
        if not np.all(per_channel == per_channel[:, :1]):
            raise ValueError(f"node {name}: the folded form needs one time constant per channel after a Conv2d")
        g = per_channel[:, 0]
    else:
        g = gain.reshape(-1)
    shape = (-1,) + (1,) * (w.ndim - 1)
    meta.update({"neurosynth_weight": w, "neurosynth_bias": bias, "bias": int(meta.get("bias", kind != "Linear"))})
    wf = (w.astype(np.float64) * g.reshape(shape)).astype(np.float32)
    bf = (bias.astype(np.float64) * g).astype(np.float32)
    if kind == "Conv2d":
        return nir.Conv2d(input_shape=node.input_shape, weight=wf, stride=node.stride, padding=node.padding,
                          dilation=node.dilation, groups=node.groups, bias=bf, metadata=meta)
    return nir.Affine(weight=wf, bias=bf, metadata=meta)


_WEIGHTS = ("Affine", "Linear", "Conv2d")


def _apply_form(named: list[tuple[str, Any]], form: NirForm) -> list[tuple[str, Any]]:
    """Rewrite the snnTorch-form node chain into ``form``: fold each LIF/LI node's ``r = tau/dt`` into the weights
    before it (through ``Delay`` nodes, which commute with a per-neuron scale)."""
    nir = _nir()
    out = list(named)
    if form.fold != "none":
        for i, (name, node) in enumerate(out):
            sub = isinstance(node, nir.NIRGraph)
            neuron = node.nodes.get("lif") if sub else node  # a delay expansion subgraph has no neuron
            gain = _neuron_gain(neuron) if neuron is not None else None
            if gain is None or not np.all(np.isfinite(gain)) or (
                    form.fold == "uniform" and not np.all(gain == gain.flat[0])):
                continue  # beta = 1 (tau = inf) has no finite factor to fold: it keeps r = tau/dt
            j = i - 1
            while j >= 0 and type(out[j][1]).__name__ == "Delay":
                j -= 1
            if j < 0 or type(out[j][1]).__name__ not in _WEIGHTS:
                if form.fold == "uniform":
                    continue  # nothing to fold into: keep r = tau/dt
                prev = type(out[j][1]).__name__ if j >= 0 else "the input"
                raise ValueError(f"layer {name}: the '{form.name}' form folds the neuron's r = tau/dt into the "
                                 f"weights before it, but it follows {prev}; export with the default form")
            out[j] = (out[j][0], _scaled(out[j][1], gain, out[j][0]))
            if sub:
                nodes = dict(node.nodes)
                nodes["lif"] = _with_unit_gain(neuron)
                nodes["w_rec"] = _scaled(nodes["w_rec"], gain, f"{name}.w_rec")
                out[i] = (name, nir.NIRGraph(nodes=nodes, edges=node.edges, metadata=node.metadata))
            else:
                out[i] = (name, _with_unit_gain(neuron))
    return out


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
        if isinstance(m, (nn.Linear, DelayedLinear)):
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
           allow_nonstandard_reset: bool = False, form: str = DEFAULT_FORM):
    """Export a sequential model (``neurosynth.SNN`` / ``nn.Sequential``) to a ``nir.NIRGraph``.

    ``input_shape`` is the per-sample shape without ``[T, B]`` (default: the model's ArchSpec ``input_shape``,
    else the first Linear's ``in_features``). Nodes are named by their position in the model (``"0"``,
    ``"1"``... counting exported nodes, zero-padded from 10 nodes on: ``"00"``, ``"01"``...; Dropout/Identity are
    skipped), chained ``input -> ... -> output``. Raises ``ValueError`` naming the layer for anything NIR
    cannot express (ALIF, subtract reset unless ``allow_nonstandard_reset``, unsupported module types).

    ``form`` (a name in :data:`~neurosynth.hardware.nir.common.NIR_FORMS`) picks where the discrete step's factor
    ``tau/dt`` goes: ``"portable"`` (default) folds it into the preceding weights (``r = 1``) for layers with one
    ``tau`` and keeps ``r = tau/dt`` where ``tau`` varies; ``"snntorch"`` never folds; ``"norse"`` always folds
    (and refuses a LIF/LI with no Linear/Conv2d before it). Every form reads back into an identical model with
    :func:`from_nir`; :func:`identical_readers` says which other readers run the result identically.
    """
    nir = _nir()
    _ensure_core()
    nir_form = NIR_FORMS.get(form)
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
        if isinstance(m, DelayedLinear):  # a [T, B, N] layer: _out_shape cannot call it on one step
            shape = (int(m.out_features),)
        elif not is_neuron and not isinstance(node, nir.NIRGraph):  # neurons and recurrent layers keep the shape
            shape = _out_shape(m, shape)
        if node is SKIP:
            continue
        exported.append((name, node))
    exported = [node for _, node in _apply_form(exported, nir_form)]
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
    meta = {"producer": PRODUCER, "dt": float(dt), "discretisation": DISCRETISATION, "form": nir_form.name,
            "reset_convention": "v_reset after a spike (neurosynth reset='zero'); see node metadata 'reset'"}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)




# ----------------------------------------------------------------------------- which readers run a graph identically
def _all_nodes(graph):
    for name, node in graph.nodes.items():
        if type(node).__name__ == "NIRGraph":
            yield from ((f"{name}.{k}", v) for k, v in _all_nodes(node))
        else:
            yield name, node


def _uniform(a) -> bool:
    a = np.asarray(a)
    return a.size == 0 or bool(np.all(a == a.flat[0]))


def _snntorch_problem(graph) -> str | None:
    """Why snnTorch 1.0.0's ``import_from_nir`` would not run ``graph`` as we do (``None``: it does, measured in
    ``benchmarks/nir_interop.py``). Its importer hard-codes dt = 1e-4, maps IF to a subtract-reset Leaky, has no LI
    or Delay, takes one threshold per layer and divides it by one value of ``r dt/tau`` per layer."""
    dt = float(np.asarray((graph.metadata or {}).get("dt", DEFAULT_DT)))
    if not math.isclose(dt, 1e-4, rel_tol=1e-9):
        return f"dt = {dt:g} (snnTorch assumes 1e-4)"
    for name, node in _all_nodes(graph):
        kind = type(node).__name__
        if kind in ("IF", "LI", "Delay"):
            return f"node {name} is {kind}, which snnTorch does not import as NIR defines it"
        if kind in ("LIF", "CubaLIF") and not _uniform(node.v_threshold):
            return f"node {name} has per-neuron thresholds"
        if kind == "LIF":
            gain = np.asarray(node.r, np.float64) * dt / np.asarray(node.tau, np.float64)
            if not (np.allclose(gain, 1.0, rtol=1e-6) or _uniform(gain)):
                return f"node {name} has r = 1 with per-neuron tau (snnTorch rescales by one value per layer)"
        if kind == "CubaLIF" and not np.allclose(np.asarray(node.r) * dt, node.tau_mem, rtol=1e-6):
            return f"node {name} is a CubaLIF with r != tau_mem/dt"
    return None


def _norse_problem(graph) -> str | None:
    """Why Norse 1.1.0's ``norse.torch.from_nir(graph, dt=...)`` would not run ``graph`` as we do: it ignores ``r`` on
    LIF and has no AvgPool2d (dropped silently), LI or Delay."""
    for name, node in _all_nodes(graph):
        kind = type(node).__name__
        if kind in ("AvgPool2d", "LI", "Delay"):
            return f"node {name} is {kind}, which Norse does not import"
        if kind == "IF":
            return f"node {name} is IF, which the matrix has not measured in Norse"
        if kind == "LIF" and not np.allclose(node.r, 1.0):
            return f"node {name} has r != 1 (Norse ignores r on LIF)"
    return None


READER_CHECKS = {"snnTorch 1.0.0": _snntorch_problem, "Norse 1.1.0": _norse_problem}


def identical_readers(graph) -> dict[str, str | None]:
    """For each foreign reader measured in ``docs/nir_interop.md``: ``None`` if it runs ``graph`` with spikes
    identical to ours, else the reason it does not. Sinabs 3.1, Rockpool 3.1 and Spyx 1.0 run none of the measured
    networks identically and are not listed."""
    return {reader: check(graph) for reader, check in READER_CHECKS.items()}
