"""NIR -> model: :func:`from_nir` and the importer registry :data:`NIR_IMPORTERS` (NIR node type name -> function).

The time discretisation and reset conventions are in :mod:`neurosynth.hardware.nir.common`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from neurosynth.registry import Registry

from .common import DEFAULT_DT, _decay, _nir, _pair, read_nir

NIR_IMPORTERS: Registry[Callable] = Registry("NIR node type")


@dataclasses.dataclass(frozen=True)
class ImportContext:
    dt: float
    name: str



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


_core_registered = False


def _ensure_core() -> None:
    global _core_registered
    if not _core_registered:
        _register_core_importers()
        _core_registered = True


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

