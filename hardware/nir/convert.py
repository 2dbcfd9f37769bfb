r"""NeuroSynth models <-> NIR graphs (Neuromorphic Intermediate Representation, Pedersen et al.,
Nat. Commun. 2024, https://www.nature.com/articles/s41467-024-52259-9).

Supported layers: ``nn.Linear`` (``nir.Affine`` with bias, ``nir.Linear`` without), ``nn.Conv2d`` (groups=1),
``nn.Flatten``, ``neurosynth.layers.SumPool2d`` / ``nn.AvgPool2d``, ``neurosynth.layers.Delay`` (``nir.Delay`` of
``steps * dt``), the neurons ``LIF``, ``CubaLIF``, ``LI``, ``IF``, and ``neurosynth.layers.Recurrent`` (LIF/CubaLIF/IF)
as NIR's recurrent subgraph ``input -> lif -> output``, ``lif <-> w_rec`` (snnTorch's RLeaky/RSynaptic structure).
:func:`from_nir` also reads the flat form ``<name>.lif <-> <name>.w_rec`` that snnTorch's ``export_to_nir`` writes.
Dropout/Identity are skipped. Both directions are registries (:data:`NIR_EXPORTERS` keyed by module type,
looked up along the MRO; :data:`NIR_IMPORTERS` keyed by NIR node type name), so a new layer is one decorated
function each way.

Time discretisation
-------------------
NIR neurons are continuous-time (``tau dv/dt = (v_leak - v) + R I``); ours are discrete-time
(``h[t] = beta v[t-1] + x[t]``). We use the forward-Euler mapping that snnTorch's NIR import/export uses,
with a step ``dt`` (default ``1e-4`` s, the value snnTorch hard-codes)::

    LIF / LI:  tau = dt / (1 - beta),      r = tau / dt,       v_leak = 0
    CubaLIF:   tau_syn = dt / (1 - alpha), w_in = tau_syn / dt,
               tau_mem = dt / (1 - beta),  r = tau_mem / dt,   v_leak = 0
    IF:        r = 1 (``v[t] = v[t-1] + x[t]``: the discrete reading snnTorch's importer assumes)

so that one Euler step of the NIR equation equals one step of our neuron exactly
(``v + dt/tau (-v + r I) = (1 - dt/tau) v + I``). Note this is *not* ``NeuronModel.from_tau``'s
``beta = exp(-dt/tau)``: the two agree only to first order in ``dt/tau``.

Reset
-----
NIR resets to ``v_reset`` (we write 0) after a spike: our ``reset="zero"``. Reset-by-subtraction and no-reset
have no NIR primitive: :func:`to_nir` refuses them unless ``allow_nonstandard_reset=True``, in which case the
node still says ``v_reset = 0`` (what every other NIR consumer will do) and our convention is kept in the node's
``metadata["reset"]`` so :func:`from_nir` restores it. ``dt``, the reset and the discretisation are recorded in
the graph's and every neuron node's ``metadata``.

Exactness: weights are written as float32 arrays, time constants as float64. A graph written by
:func:`to_nir` reads back into an identical model, and that model exports to an identical graph (the
NIR -> model -> NIR round trip is exact for every graph whose parameters are float32-representable in our
discrete form; arbitrary float64 time constants come back to float32 precision).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from neurosynth.registry import Registry

DEFAULT_DT = 1e-4
DISCRETISATION = "forward-euler: beta = 1 - dt/tau, r = tau/dt (snnTorch convention)"
PRODUCER = "neurosynth"


def _nir():
    try:
        import nir
    except ImportError as e:  # pragma: no cover - nir is a declared extra
        from neurosynth.errors import MissingExtraError

        raise MissingExtraError("nir", "nir", "NIR export/import") from e
    return nir


# ----------------------------------------------------------------------------- registries
class TypeRegistry:
    """Module type -> function, looked up along the MRO (most specific class first)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[type, Callable] = {}

    def register(self, *types: type):
        def deco(fn):
            for t in types:
                self._entries[t] = fn
            return fn

        return deco

    def lookup(self, obj: Any) -> Callable | None:
        for cls in type(obj).__mro__:
            if cls in self._entries:
                return self._entries[cls]
        return None

    def names(self) -> list[str]:
        return sorted(t.__name__ for t in self._entries)


NIR_EXPORTERS = TypeRegistry("NIR exporter")
NIR_IMPORTERS: Registry[Callable] = Registry("NIR node type")
SKIP = object()  # an exporter returns SKIP for layers that are the identity at inference (Dropout)


@dataclasses.dataclass(frozen=True)
class ExportContext:
    """What an exporter may need besides the module: the per-sample input shape (no T, B) and dt."""

    input_shape: tuple[int, ...]
    dt: float
    allow_nonstandard_reset: bool
    name: str


@dataclasses.dataclass(frozen=True)
class ImportContext:
    dt: float
    name: str


# ----------------------------------------------------------------------------- helpers
def _np32(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy().copy()


def _weight(m: nn.Module) -> torch.Tensor:
    """The weight a synapse computes with: ``m.effective_weight()`` when the layer quantises (QLinear/QConv2d of
    :mod:`neurosynth.hardware.lava.qat`), else ``m.weight``."""
    fn = getattr(m, "effective_weight", None)
    with torch.no_grad():
        return fn() if callable(fn) else m.weight


def _pair(v) -> tuple[int, int]:
    if isinstance(v, np.ndarray):
        v = v.reshape(-1).tolist()
    if isinstance(v, (tuple, list)):
        if len(v) == 1:
            return int(v[0]), int(v[0])
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _per_neuron(module: nn.Module, name: str, shape: tuple[int, ...]) -> np.ndarray:
    value = getattr(module, name).detach().cpu().to(torch.float32)
    try:
        return value.expand(shape).numpy().copy()
    except RuntimeError as e:
        raise ValueError(f"{type(module).__name__}.{name} has shape {tuple(value.shape)}, which does not fit the "
                         f"layer's input shape {shape}") from e


def _tau(decay: np.ndarray, dt: float) -> np.ndarray:
    d = decay.astype(np.float64)
    with np.errstate(divide="ignore"):
        return dt / (1.0 - d)


def _decay(tau: np.ndarray, dt: float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 1.0 - dt / np.asarray(tau, dtype=np.float64)


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


@NIR_EXPORTERS.register(nn.Dropout, nn.Identity)
def _export_skip(m, ctx):
    return SKIP


_core_registered = False


def _ensure_core() -> None:
    global _core_registered
    if not _core_registered:
        _register_core_layers()
        _register_core_importers()
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
        exporter = NIR_EXPORTERS.lookup(m)
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


# ----------------------------------------------------------------------------- importers
def _meta(node) -> dict:
    return dict(getattr(node, "metadata", None) or {})


def _meta_str(meta: dict, key: str, default: str) -> str:
    v = meta.get(key, default)
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, np.ndarray):
        v = v.item()
    return str(v.decode() if isinstance(v, bytes) else v)


def _close(a, b) -> bool:
    return bool(np.allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=1e-6, atol=0))


def _f32(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float32).copy())


def _reset_of(node, ctx: ImportContext) -> dict:
    meta = _meta(node)
    reset = _meta_str(meta, "reset", "zero")
    v_reset = getattr(node, "v_reset", None)
    if reset == "zero" and v_reset is not None and not np.allclose(v_reset, 0):
        raise ValueError(f"node {ctx.name}: v_reset != 0 is not supported (neurosynth neurons reset to zero)")
    kw = {"reset": reset}
    if int(np.asarray(meta.get("reset_delay", 0))):
        kw["reset_delay"] = True
    return kw


def _node_dt(node, ctx: ImportContext) -> float:
    meta = _meta(node)
    return float(np.asarray(meta["dt"])) if "dt" in meta else ctx.dt


def _check_leak(node, ctx: ImportContext) -> None:
    if not np.allclose(node.v_leak, 0):
        raise ValueError(f"node {ctx.name} ({type(node).__name__}): v_leak != 0 is not supported; fold the leak into a bias")


def _register_core_importers() -> None:
    from neurosynth.layers import Delay, SumPool2d
    from neurosynth.neurons import IF, LI, LIF, CubaLIF

    @NIR_IMPORTERS.register("Delay")
    def _import_delay(node, ctx: ImportContext):
        steps = np.asarray(node.delay, dtype=np.float64) / _node_dt(node, ctx)
        if steps.size == 0 or not np.allclose(steps, steps.flat[0]) or abs(steps.flat[0] - round(steps.flat[0])) > 1e-6:
            raise ValueError(f"node {ctx.name}: Delay must be the same whole number of time steps for every neuron; "
                             f"got delays/dt = {np.unique(steps)[:4]}")
        return Delay(int(round(steps.flat[0])))

    @NIR_IMPORTERS.register("LIF")
    def _import_lif(node, ctx: ImportContext):
        _check_leak(node, ctx)
        dt = _node_dt(node, ctx)
        if not _close(node.r * dt, node.tau):
            raise ValueError(f"node {ctx.name}: LIF with r != tau/dt scales its input (r*dt/tau = "
                             f"{np.unique(node.r * dt / node.tau)[:3]}); scale the incoming weights instead")
        beta = _decay(node.tau, dt)
        return LIF(beta=_f32(beta), threshold=_f32(node.v_threshold), shape=tuple(beta.shape), **_reset_of(node, ctx))

    @NIR_IMPORTERS.register("IF")
    def _import_if(node, ctx: ImportContext):
        if not np.allclose(node.r, 1):
            raise ValueError(f"node {ctx.name}: IF with r != 1 is not supported (neurosynth IF integrates v += x)")
        shape = tuple(np.asarray(node.v_threshold).shape)
        return IF(threshold=_f32(node.v_threshold), shape=shape, **_reset_of(node, ctx))

    @NIR_IMPORTERS.register("CubaLIF")
    def _import_cubalif(node, ctx: ImportContext):
        _check_leak(node, ctx)
        dt = _node_dt(node, ctx)
        if not _close(node.r * dt, node.tau_mem) or not _close(node.w_in * dt, node.tau_syn):
            raise ValueError(f"node {ctx.name}: CubaLIF needs r = tau_mem/dt and w_in = tau_syn/dt (dt={dt}); other "
                             "values scale the input, which neurosynth's CubaLIF does not model")
        alpha, beta = _decay(node.tau_syn, dt), _decay(node.tau_mem, dt)
        return CubaLIF(alpha=_f32(alpha), beta=_f32(beta), threshold=_f32(node.v_threshold),
                       shape=tuple(beta.shape), **_reset_of(node, ctx))

    @NIR_IMPORTERS.register("LI")
    def _import_li(node, ctx: ImportContext):
        _check_leak(node, ctx)
        dt = _node_dt(node, ctx)
        if not _close(node.r * dt, node.tau):
            raise ValueError(f"node {ctx.name}: LI needs r = tau/dt (dt={dt})")
        beta = _decay(node.tau, dt)
        return LI(beta=_f32(beta), shape=tuple(beta.shape))

    @NIR_IMPORTERS.register("SumPool2d")
    def _import_sumpool(node, ctx: ImportContext):
        k, s, p = (_pair(np.asarray(a).tolist()) for a in (node.kernel_size, node.stride, node.padding))
        if k[0] != k[1] or s[0] != s[1] or p[0] != p[1]:
            raise ValueError(f"node {ctx.name}: non-square SumPool2d {k}/{s}/{p} is not supported")
        return SumPool2d(k[0], s[0], p[0])


@NIR_IMPORTERS.register("Affine")
def _import_affine(node, ctx: ImportContext):
    w = np.asarray(node.weight)
    m = nn.Linear(w.shape[1], w.shape[0], bias=True)
    with torch.no_grad():
        m.weight.copy_(_f32(w))
        m.bias.copy_(_f32(node.bias))
    return m


@NIR_IMPORTERS.register("Linear")
def _import_linear(node, ctx: ImportContext):
    w = np.asarray(node.weight)
    m = nn.Linear(w.shape[1], w.shape[0], bias=False)
    with torch.no_grad():
        m.weight.copy_(_f32(w))
    return m


@NIR_IMPORTERS.register("Conv2d")
def _import_conv2d(node, ctx: ImportContext):
    w = np.asarray(node.weight)
    if w.ndim != 4:
        raise ValueError(f"node {ctx.name}: Conv2d weight must be [C_out, C_in/groups, kH, kW]; got {w.shape}")
    if isinstance(node.padding, str):
        raise ValueError(f"node {ctx.name}: Conv2d padding '{node.padding}' is not supported; use integers")
    has_bias = bool(int(np.asarray(_meta(node).get("bias", 1))))
    groups = int(node.groups)
    m = nn.Conv2d(w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]), stride=_pair(node.stride),
                  padding=_pair(node.padding), dilation=_pair(node.dilation), groups=groups, bias=has_bias)
    with torch.no_grad():
        m.weight.copy_(_f32(w))
        if has_bias:
            m.bias.copy_(_f32(node.bias))
        elif not np.allclose(node.bias, 0):
            raise ValueError(f"node {ctx.name}: metadata says no bias but the bias is non-zero")
    return m


@NIR_IMPORTERS.register("Flatten")
def _import_flatten(node, ctx: ImportContext):
    start, end = int(node.start_dim), int(node.end_dim)
    return nn.Flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end)


@NIR_IMPORTERS.register("AvgPool2d")
def _import_avgpool(node, ctx: ImportContext):
    k, s, p = (_pair(np.asarray(a).tolist()) for a in (node.kernel_size, node.stride, node.padding))
    return nn.AvgPool2d(k, s, p)


_NEURON_NODES = ("LIF", "CubaLIF", "IF")
_WEIGHT_NODES = ("Linear", "Affine")


def _fold_recurrent_cycles(graph):
    """Replace every flat recurrent cycle ``a -> w -> a`` (``a`` a LIF/CubaLIF/IF node, ``w`` a Linear/Affine whose
    only edges are these two) by NIR's recurrent subgraph node, as snnTorch's importer does. snnTorch's
    ``export_to_nir`` writes ``RLeaky``/``RSynaptic`` this way (nodes ``<name>.lif`` and ``<name>.w_rec``); the
    subgraph is named ``<name>``. Returns a new graph (or the same one when there is no such cycle)."""
    nir = _nir()
    edges = [tuple(e) for e in graph.edges]
    nodes = dict(graph.nodes)
    changed = False
    for a, w in list(edges):
        if (w, a) not in edges or a not in nodes or w not in nodes:
            continue
        if type(nodes[a]).__name__ not in _NEURON_NODES or type(nodes[w]).__name__ not in _WEIGHT_NODES:
            continue
        if sorted(e for e in edges if w in e) != sorted([(a, w), (w, a)]):
            continue
        prefix = a.rsplit(".", 1)[0] if "." in a else a
        key = prefix if prefix == a or prefix not in nodes else a
        n = int(np.asarray(nodes[w].weight).shape[0])
        sub = nir.NIRGraph(
            nodes={"input": nir.Input(input_type={"input": np.array([n])}), "lif": nodes[a], "w_rec": nodes[w],
                   "output": nir.Output(output_type={"output": np.array([n])})},
            edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
        edges = [(key if x == a else x, key if y == a else y) for x, y in edges if (x, y) not in ((a, w), (w, a))]
        nodes = {(key if k == a else k): (sub if k == a else v) for k, v in nodes.items() if k != w}
        changed = True
    if not changed:
        return graph
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(getattr(graph, "metadata", None) or {}))


def _import_recurrent(graph, ctx: ImportContext) -> nn.Module:
    """NIR's recurrent subgraph (``input -> lif -> output``, ``lif <-> w_rec``) -> ``neurosynth.layers.Recurrent``."""
    from neurosynth.layers import Recurrent

    kinds = {k: type(v).__name__ for k, v in graph.nodes.items()}
    by = {t: [k for k, v in kinds.items() if v in ts] for t, ts in
          (("in", ("Input",)), ("out", ("Output",)), ("neuron", _NEURON_NODES), ("w", _WEIGHT_NODES))}
    ok = len(graph.nodes) == 4 and all(len(v) == 1 for v in by.values())
    if ok:
        i, o, a, w = (by[t][0] for t in ("in", "out", "neuron", "w"))
        ok = sorted(tuple(e) for e in graph.edges) == sorted([(i, a), (a, w), (w, a), (a, o)])
    if not ok:
        raise ValueError(
            f"node '{ctx.name}' is a subgraph that is not one recurrent layer (from_nir reads subgraphs of exactly "
            f"input -> LIF/CubaLIF/IF -> output with a Linear/Affine from the neuron back to itself); got nodes "
            f"{kinds} and edges {sorted(tuple(e) for e in graph.edges)}")
    weight = np.asarray(graph.nodes[w].weight)
    n = weight.shape[0]
    if weight.shape != (n, n):
        raise ValueError(f"node '{ctx.name}': recurrent weight must be square; got {weight.shape}")
    neuron = NIR_IMPORTERS.get(kinds[a])(graph.nodes[a], ImportContext(ctx.dt, f"{ctx.name}.{a}"))
    rec = NIR_IMPORTERS.get(kinds[w])(graph.nodes[w], ImportContext(ctx.dt, f"{ctx.name}.{w}"))
    layer = Recurrent(n, neuron, bias=rec.bias is not None)
    with torch.no_grad():
        layer.rec.weight.copy_(rec.weight)
        if rec.bias is not None:
            layer.rec.bias.copy_(rec.bias)
    return layer


def _chain(graph) -> list[str]:
    """The node names of a feed-forward chain input -> ... -> output, or a ValueError."""
    succ: dict[str, list[str]] = {}
    pred: dict[str, int] = {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
        pred[b] = pred.get(b, 0) + 1
    starts = [k for k in graph.nodes if pred.get(k, 0) == 0]
    if len(starts) != 1:
        raise ValueError(f"from_nir supports a single-input feed-forward chain; graph has entry nodes {starts}")
    order = [starts[0]]
    while succ.get(order[-1]):
        nxt = succ[order[-1]]
        if len(nxt) != 1 or pred.get(nxt[0], 0) != 1:
            raise ValueError(f"from_nir supports feed-forward chains of layers only; node '{order[-1]}' -> {nxt} "
                             "branches or merges (residual graphs are not supported; recurrent layers are read as "
                             "NIR recurrent subgraphs or LIF <-> Linear cycles)")
        if nxt[0] in order:
            raise ValueError(f"graph has a cycle through node '{nxt[0]}' that is not one recurrent layer (a LIF/CubaLIF/"
                             "IF node and a Linear/Affine connected only to it, both ways)")
        order.append(nxt[0])
    if len(order) != len(graph.nodes):
        missing = sorted(set(graph.nodes) - set(order))
        raise ValueError(f"graph nodes {missing} are not on the input -> output chain")
    return order


def from_nir(graph, *, dt: float | None = None) -> nn.Module:
    """Build a ``neurosynth.SNN`` from a ``nir.NIRGraph`` (or a path to a ``.nir`` file).

    ``dt`` (seconds) maps continuous time constants to decays (``beta = 1 - dt/tau``); default: the node's
    or graph's ``metadata["dt"]``, else :data:`DEFAULT_DT` (snnTorch's 1e-4).
    """
    from neurosynth.layers import SNN

    _nir()
    _ensure_core()
    if isinstance(graph, (str, Path)):
        graph = read_nir(graph)
    graph = _fold_recurrent_cycles(graph)
    gmeta = dict(getattr(graph, "metadata", None) or {})
    base_dt = float(dt) if dt is not None else float(np.asarray(gmeta.get("dt", DEFAULT_DT)))
    layers: list[nn.Module] = []
    input_shape = None
    for name in _chain(graph):
        node = graph.nodes[name]
        kind = type(node).__name__
        if kind == "Input":
            input_shape = [int(s) for s in np.asarray(node.input_type["input"]).tolist()]
            continue
        if kind == "Output":
            continue
        if kind == "NIRGraph":
            lif = next((v for v in node.nodes.values() if type(v).__name__ in _NEURON_NODES), None)
            node_dt = _node_dt(lif, ImportContext(base_dt, name)) if lif is not None else base_dt
            layers.append(_import_recurrent(node, ImportContext(dt=base_dt if dt is not None else node_dt, name=name)))
            continue
        importer = NIR_IMPORTERS.get(kind)
        ctx = ImportContext(dt=base_dt if dt is not None else _node_dt(node, ImportContext(base_dt, name)), name=name)
        layers.append(importer(node, ctx))
    model = SNN(*layers)
    if input_shape is not None:
        model.nir_input_shape = input_shape
        try:  # an ArchSpec lets RunDir.save_model store the imported model (and to_nir find its input shape)
            from neurosynth.arch import to_spec

            model.arch_spec = to_spec(model, input_shape)
        except ValueError:
            pass
    return model


# ----------------------------------------------------------------------------- files
def write_nir(graph, path: str | Path) -> Path:
    """Write a NIR graph to ``path`` atomically (temp file + rename)."""
    nir = _nir()
    from neurosynth.io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        nir.write(tmp, graph)
    return path


def read_nir(path: str | Path):
    """Read a ``.nir`` file, turning a missing or corrupt file into a clear ``ValueError``."""
    nir = _nir()
    path = Path(path)
    if not path.exists():
        raise ValueError(f"NIR file {path} does not exist")
    try:
        return nir.read(path)
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"{path} is not a readable NIR file ({e}); re-export it with `neurosynth export nir`") from e
