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
        beta = _decay(node.tau, dt)
        return LIF(beta=_f32(beta), threshold=_f32(node.v_threshold), shape=tuple(beta.shape), **_reset_of(node, ctx))

    @NIR_IMPORTERS.register("IF")
    def _import_if(node, ctx: ImportContext):
        shape = tuple(np.asarray(node.v_threshold).shape)
        return IF(threshold=_f32(node.v_threshold), shape=shape, **_reset_of(node, ctx))

    @NIR_IMPORTERS.register("CubaLIF")
    def _import_cubalif(node, ctx: ImportContext):
        _check_leak(node, ctx)
        dt = _node_dt(node, ctx)
        alpha, beta = _decay(node.tau_syn, dt), _decay(node.tau_mem, dt)
        return CubaLIF(alpha=_f32(alpha), beta=_f32(beta), threshold=_f32(node.v_threshold),
                       shape=tuple(beta.shape), **_reset_of(node, ctx))

    @NIR_IMPORTERS.register("LI")
    def _import_li(node, ctx: ImportContext):
        _check_leak(node, ctx)
        dt = _node_dt(node, ctx)
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
    has_bias = bool(int(np.asarray(_meta(node).get("bias", 1))))  # 0: a bias-free layer written as Affine
    if not has_bias and not np.allclose(node.bias, 0):
        raise ValueError(f"node {ctx.name}: metadata says no bias but the bias is non-zero")
    m = nn.Linear(w.shape[1], w.shape[0], bias=has_bias)
    with torch.no_grad():
        m.weight.copy_(_f32(w))
        if has_bias:
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


def _input_gain(node, dt: float) -> np.ndarray | None:
    """How much more than our neuron a NIR neuron node scales its input by, per neuron: ``r dt/tau`` (LIF, LI),
    ``(r dt/tau_mem)(w_in dt/tau_syn)`` (CubaLIF), ``r`` (IF); ``None`` when that is 1 (the snnTorch form)."""
    kind = type(node).__name__
    f64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
    def ratio(r, tau):  # r dt / tau, with r = tau = inf (beta = 1, no leak) meaning 1
        r, tau = f64(r), f64(tau)
        with np.errstate(invalid="ignore"):
            return np.where(np.isinf(r) & np.isinf(tau), 1.0, r * dt / tau)

    if kind in ("LIF", "LI"):
        gain = ratio(node.r, node.tau)
    elif kind == "CubaLIF":
        gain = ratio(node.r, node.tau_mem) * ratio(node.w_in, node.tau_syn)
    elif kind == "IF":
        gain = f64(node.r)
    else:
        return None
    return None if _close(gain, 1.0) else gain


def _unfold_into(layer: nn.Module, source, gain: np.ndarray, name: str) -> None:
    """Multiply ``gain`` (per output neuron) into ``layer`` (Linear/Conv2d imported from NIR node ``source``): the
    neuron after it scaled its input by ``gain``, ours do not. When ``source`` carries our exporter's unscaled
    weights (the folded form) and they agree with the scaled ones, those are restored exactly instead."""
    w = layer.weight
    if isinstance(layer, nn.Conv2d):
        per_channel = gain.reshape(w.shape[0], -1)
        if not np.all(per_channel == per_channel[:, :1]):
            raise ValueError(f"node {name}: r varies within a channel after a Conv2d; cannot fold it into the conv")
        g = per_channel[:, 0]
    else:
        g = gain.reshape(-1)
    shape = (-1,) + (1,) * (w.ndim - 1)
    meta = _meta(source)
    scaled_w = np.asarray(source.weight, dtype=np.float64) * g.reshape(shape)
    orig_w = meta.get("neurosynth_weight")
    exact = orig_w is not None and np.asarray(orig_w).shape == w.shape and np.allclose(
        scaled_w, np.asarray(orig_w, dtype=np.float64), rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        w.copy_(_f32(orig_w if exact else scaled_w))
        if layer.bias is not None:
            b = meta["neurosynth_bias"] if exact else np.asarray(source.bias, dtype=np.float64) * g
            layer.bias.copy_(_f32(b))


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
    gain = _input_gain(graph.nodes[a], ctx.dt)
    if gain is not None:
        _unfold_into(rec, graph.nodes[w], gain, f"{ctx.name}.{w}")
    layer = Recurrent(n, neuron, bias=rec.bias is not None)
    with torch.no_grad():
        layer.rec.weight.copy_(rec.weight)
        if rec.bias is not None:
            layer.rec.bias.copy_(rec.bias)
    return layer


def _is_delay_expansion(graph) -> bool:
    meta = _meta(graph)
    return _meta_str(meta, "neurosynth_layer", "") == "delayed_linear" or (
        any(type(v).__name__ == "Delay" for v in graph.nodes.values())
        and all(type(v).__name__ in ("Input", "Output", "Delay", "Linear", "Affine") for v in graph.nodes.values()))


def _import_delayed_linear(graph, ctx: ImportContext) -> nn.Module:
    """The delay expansion :func:`~.export._delay_expansion` writes (``input [-> Delay(d dt)] -> Linear -> output``
    per delay value, all branches summed) -> :class:`~neurosynth.delays.DelayedLinear` with those integer delays.
    Refuses a graph in which one synapse has weights on two branches (that is not one delay per synapse)."""
    from neurosynth.delays import DelayedLinear

    kinds = {k: type(v).__name__ for k, v in graph.nodes.items()}
    succ: dict[str, list[str]] = {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
    inputs = [k for k, v in kinds.items() if v == "Input"]
    outputs = [k for k, v in kinds.items() if v == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"node '{ctx.name}': a delay subgraph needs one Input and one Output; got {kinds}")
    branches: list[tuple[int, object]] = []  # (steps, weight node)
    for first in succ.get(inputs[0], []):
        steps, node_name = 0, first
        if kinds[first] == "Delay":
            node = graph.nodes[first]
            s = np.asarray(node.delay, dtype=np.float64) / _node_dt(node, ctx)
            if s.size == 0 or not np.allclose(s, s.flat[0]) or abs(s.flat[0] - round(s.flat[0])) > 1e-6:
                raise ValueError(f"node '{ctx.name}.{first}': a Delay of a delay subgraph must be one whole number of "
                                 f"steps for every input; got delays/dt = {np.unique(s)[:4]}")
            steps = int(round(s.flat[0]))
            nxt = succ.get(first, [])
            node_name = nxt[0] if len(nxt) == 1 else None
        if node_name is None or kinds.get(node_name) not in _WEIGHT_NODES or succ.get(node_name) != outputs:
            raise ValueError(f"node '{ctx.name}' is a subgraph that is not a delay expansion (branches input [-> "
                             f"Delay] -> Linear/Affine -> output); got nodes {kinds} and edges {list(graph.edges)}")
        branches.append((steps, graph.nodes[node_name]))
    if not branches or len(graph.edges) != sum(2 + (s > 0) for s, _ in branches):
        raise ValueError(f"node '{ctx.name}': unexpected edges {list(graph.edges)} in a delay subgraph")
    ws = [np.asarray(n.weight, dtype=np.float32) for _, n in branches]
    n_out, n_in = ws[0].shape
    if any(w.shape != (n_out, n_in) for w in ws):
        raise ValueError(f"node '{ctx.name}': the branches of a delay subgraph have different weight shapes")
    used = np.stack([w != 0 for w in ws]).sum(0)
    if int(used.max()) > 1:
        i, j = (int(v) for v in np.argwhere(used > 1)[0])
        raise ValueError(f"node '{ctx.name}': synapse ({i}, {j}) has weights on {int(used[i, j])} delay branches; "
                         "a DelayedLinear has one delay per synapse")
    weight = np.sum(ws, axis=0)
    delays = np.zeros((n_out, n_in), dtype=np.int64)
    for (steps, _), w in zip(branches, ws):
        delays[w != 0] = steps
    biases = [np.asarray(n.bias, dtype=np.float32) for _, n in branches if type(n).__name__ == "Affine"]
    meta = _meta(graph)
    K = int(np.asarray(meta.get("max_delay", int(delays.max()) + 1)))
    if int(delays.max()) >= K:
        raise ValueError(f"node '{ctx.name}': delays up to {int(delays.max())} steps exceed its max_delay {K}")
    kw = {k: float(np.asarray(meta[k])) for k in ("sigma_init", "sigma_final", "anneal_fraction") if k in meta}
    layer = DelayedLinear(n_in, n_out, max_delay=K, bias=bool(biases), **kw)
    with torch.no_grad():
        layer.weight.copy_(_f32(weight))
        layer.delay.copy_(torch.as_tensor(delays, dtype=layer.delay.dtype))
        if biases:
            layer.bias.copy_(_f32(np.sum(biases, axis=0)))
    return layer.eval()


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
    sources: list = []  # the NIR node each layer came from
    input_shape = None
    for name in _chain(graph):
        node = graph.nodes[name]
        kind = type(node).__name__
        if kind == "Input":
            input_shape = [int(s) for s in np.asarray(node.input_type["input"]).tolist()]
            continue
        if kind == "Output":
            continue
        if kind == "NIRGraph" and _is_delay_expansion(node):
            neuron = None
            ctx = ImportContext(dt=base_dt, name=name)
            layers.append(_import_delayed_linear(node, ctx))
        elif kind == "NIRGraph":
            neuron = next((v for v in node.nodes.values() if type(v).__name__ in _NEURON_NODES), None)
            node_dt = _node_dt(neuron, ImportContext(base_dt, name)) if neuron is not None else base_dt
            ctx = ImportContext(dt=base_dt if dt is not None else node_dt, name=name)
            layers.append(_import_recurrent(node, ctx))
        else:
            neuron = node
            ctx = ImportContext(dt=base_dt if dt is not None else _node_dt(node, ImportContext(base_dt, name)),
                                name=name)
            layers.append(NIR_IMPORTERS.get(kind)(node, ctx))
        gain = _input_gain(neuron, ctx.dt) if neuron is not None else None
        if gain is not None:  # r (w_in) other than tau/dt: fold the extra input gain into the weights before it
            j = len(layers) - 2
            while j >= 0 and type(sources[j]).__name__ == "Delay":
                j -= 1
            if j < 0 or not isinstance(layers[j], (nn.Linear, nn.Conv2d)):
                raise ValueError(f"node {name} ({type(neuron).__name__}) scales its input by r*dt/tau = "
                                 f"{np.unique(gain)[:3]} (not 1) and no Linear/Affine/Conv2d precedes it to fold "
                                 "that factor into")
            _unfold_into(layers[j], sources[j], gain, name)
        sources.append(node)
    model = SNN(*layers)
    first = layers[0] if layers else None
    if input_shape is not None and len(input_shape) == 2 and input_shape[0] == 1 and isinstance(first, nn.Linear) \
            and first.in_features == input_shape[1]:
        input_shape = input_shape[1:]  # a writer that kept the sample batch axis in the Input type (Norse)
    if input_shape is not None:
        model.nir_input_shape = input_shape
        try:  # an ArchSpec lets RunDir.save_model store the imported model (and to_nir find its input shape)
            from neurosynth.arch import to_spec

            model.arch_spec = to_spec(model, input_shape)
        except ValueError:
            pass
    return model

