"""The MSE-NAS search space: micro (neuron operation), meso (circuit motifs), macro (wiring of motifs).

A candidate is an ArchSpec (``"kind": "mse"``) that :func:`neurosynth.arch.build` rebuilds::

    {"format": "neurosynth.arch/1", "kind": "mse", "plugin": "snn_nas.mse.builder",
     "input_shape": [1, 8, 8] | [64], "num_classes": 10,
     "stem": {"width": 16, "neuron": "lif"},
     "cells": [                                   # macro: motif instances in order
        {"width": 16,                             # stage width (channels or units)
         "inputs": [0],                           # which earlier outputs feed it (0 = stem, k = cell k-1)
         "downsample": false,                     # 2x2 average pooling of the cell input (conv only)
         "motif": {                               # meso: a small DAG with typed edges
            "template": "ff_chain" | "lateral_inhibition" | "feedback" | "skip" | "composed",
            "nodes": [{"neuron": "lif", "sign": "exc", "kernel": 3}, ...],   # micro, nodes 1..n
            "edges": [[0, 1, "ff"], [1, 2, "ff"], [2, 1, "fb"], [1, 2, "lat"], [0, 2, "skip"]],
            "outputs": [2]}}, ...],
     "readout": "li"}

Node 0 of a motif is the cell input (sum of its adapted inputs); nodes 1..n are spiking neurons.

Edge types (``src -> dst``):
    ``ff``   feed-forward synapse ``src < dst``: conv k x k (k = dst's kernel) or linear, batch norm, then the
             source's sign: excitatory keeps the positive part, inhibitory contributes minus it (Dale's law).
    ``lat``  lateral inhibition between two neurons of the motif (``src, dst >= 1``, ``src < dst``): always
             inhibitory, whatever the source's sign.
    ``fb``   within-step feedback ``src > dst >= 1``: after ``src`` has fired, its (signed) synaptic output
             (kernel of ``src``) is added to ``dst``'s output in the same time step (BrainCog's ``*_back``).
    ``skip`` identity ``src < dst``, no weights.

The space itself is data (:class:`MSESpaceConfig`, a JSON-able frozen dataclass), sampled with an explicit
``numpy.random.Generator`` and validated on load.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..engine.space import SearchSpace
from .spec import EDGE_TYPES, FORMAT, PLUGIN, SIGNS, validate_spec
from .targets import TARGETS, get_target

__all__ = ["EDGE_TYPES", "FORMAT", "PLUGIN", "SIGNS", "TEMPLATES", "MSESpace", "MSESpaceConfig", "validate_spec"]
TEMPLATES = ("ff_chain", "lateral_inhibition", "feedback", "skip")


def spiking_neurons() -> list[str]:
    """Names of the registered spiking neurons (LIF, CubaLIF, ALIF, IF and any custom one)."""
    from neurosynth.neurons import NEURONS

    return [n for n in NEURONS.names() if getattr(NEURONS.get(n), "spiking", True)]


class _SpaceConfigJSON:
    """What every space config shares: ``conv`` (an image input), and the JSON round trip that refuses unknown
    fields (lists become tuples, so a config read from JSON equals the one written)."""

    NAME = "space"

    @property
    def conv(self) -> bool:
        return len(self.input_shape) == 3

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict):
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown {cls.NAME} fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})

    def check_input(self) -> None:
        """Refuse an input shape other than ``[features]`` / ``[C, H, W]`` of positive ints, or fewer than 2 classes."""
        if len(self.input_shape) not in (1, 3) or any(int(s) < 1 for s in self.input_shape):
            raise ValueError(f"input_shape must be [features] or [C, H, W] of positive ints; got {list(self.input_shape)}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2; got {self.num_classes}")


@dataclass(frozen=True)
class MSESpaceConfig(_SpaceConfigJSON):
    """The search space as data. ``input_shape`` of rank 1 gives dense networks, rank 3 (C, H, W) conv ones.

    ``neurons=None`` means every registered spiking neuron at construction time (stored explicitly).
    """

    input_shape: tuple[int, ...] = (1, 8, 8)
    num_classes: int = 10
    neurons: tuple[str, ...] | None = None
    signs: tuple[str, ...] = SIGNS
    kernels: tuple[int, ...] = (1, 3, 5)
    widths: tuple[int, ...] = (8, 16, 32)
    stem_widths: tuple[int, ...] = (8, 16)
    depth: tuple[int, int] = (2, 4)
    max_nodes: int = 4
    templates: tuple[str, ...] = TEMPLATES
    p_composed: float = 0.3
    max_inputs: int = 3
    max_downsample: int | None = None
    p_inhibitory: float = 0.25
    readout: str = "li"
    target: str = "float"
    max_layers: int | None = None  # deploy targets: at most this many spiking layers (stem + motif nodes + output)
    extra: dict = field(default_factory=dict)

    NAME = "MSE space"


def _downsample_limit(cfg: MSESpaceConfig) -> int:
    if not cfg.conv:
        return 0
    side = min(cfg.input_shape[1:])
    lim = max(0, int(math.floor(math.log2(max(side, 1)))) - 1)  # keep the feature map >= 2x2
    return lim if cfg.max_downsample is None else min(lim, int(cfg.max_downsample))


class MSESpace(SearchSpace):
    """Multi-scale search space (see module docstring). ``MSESpace(MSESpaceConfig(...))`` or ``MSESpace(dict)``."""

    name = "mse"

    def __init__(self, config: MSESpaceConfig | dict | None = None):
        if config is None:
            config = MSESpaceConfig()
        if isinstance(config, dict):
            config = MSESpaceConfig.from_dict(config)
        if config.target not in TARGETS:
            raise ValueError(f"target must be one of {list(TARGETS)}; got {config.target!r}")
        tgt = get_target(config.target)
        if config.neurons is None:
            config = MSESpaceConfig(**{**asdict(config), "neurons": tuple(tgt.neurons or spiking_neurons())})
        if tgt.lowers:  # a deployment target (float has no lowering)
            bad = [n for n in config.neurons if n not in tgt.neurons]
            if bad:
                raise ValueError(f"neurons {bad} cannot be deployed on target {tgt.name!r}; allowed: {list(tgt.neurons)}")
            # the target fixes what is not deployable: binary chains, signed weights, spiking readout
            config = MSESpaceConfig(**{**asdict(config), "signs": ("exc",), "templates": (), "p_composed": 1.0,
                                       "max_inputs": 1, "readout": "spiking"})
        self.cfg = config
        self.target = tgt
        self._check_config()

    # ------------------------------------------------------------------------------------------------
    def _check_config(self) -> None:
        c = self.cfg
        c.check_input()
        known = set(spiking_neurons())
        bad = [n for n in c.neurons if n not in known]
        if not c.neurons or bad:
            raise ValueError(f"neurons {bad or '[]'} are not registered spiking neurons; choose from {sorted(known)}")
        if not c.signs or set(c.signs) - set(SIGNS):
            raise ValueError(f"signs must be a non-empty subset of {list(SIGNS)}; got {list(c.signs)}")
        if not c.kernels or any(k < 1 or k % 2 == 0 for k in c.kernels):
            raise ValueError(f"kernels must be odd positive ints; got {list(c.kernels)}")
        if not c.widths or not c.stem_widths or min(c.widths + c.stem_widths) < 1:
            raise ValueError("widths and stem_widths must be non-empty lists of positive ints")
        if not (1 <= c.depth[0] <= c.depth[1]):
            raise ValueError(f"depth must be [min, max] with 1 <= min <= max; got {list(c.depth)}")
        if c.max_nodes < (1 if get_target(c.target).lowers else 2):
            raise ValueError(f"max_nodes must be >= {1 if get_target(c.target).lowers else 2}; got {c.max_nodes}")
        if set(c.templates) - set(TEMPLATES):
            raise ValueError(f"unknown templates {sorted(set(c.templates) - set(TEMPLATES))}; known: {list(TEMPLATES)}")
        if not c.templates and c.p_composed <= 0:
            raise ValueError("no templates and p_composed=0: the space has no motifs")
        if c.max_layers is not None and c.max_layers < 2 + c.depth[0]:
            raise ValueError(f"max_layers={c.max_layers} is below the smallest network of the space "
                             f"(stem + {c.depth[0]} cell(s) + output = {2 + c.depth[0]} layers)")
        if c.max_inputs < 1:
            raise ValueError(f"max_inputs must be >= 1; got {c.max_inputs}")
        if c.readout not in ("li", "spiking"):
            raise ValueError(f"readout must be 'li' or 'spiking'; got {c.readout!r}")

    def describe(self) -> dict:
        return {"name": self.name, **self.cfg.to_dict()}

    # ---- micro --------------------------------------------------------------------------------------
    def _node(self, rng: np.random.Generator, sign: str | None = None) -> dict:
        c = self.cfg
        if sign is None:
            sign = "inh" if ("inh" in c.signs and rng.random() < c.p_inhibitory) else "exc"
            if sign not in c.signs:
                sign = c.signs[0]
        return {"neuron": str(c.neurons[int(rng.integers(len(c.neurons)))]), "sign": sign,
                "kernel": int(c.kernels[int(rng.integers(len(c.kernels)))]) if c.conv else 1}

    # ---- meso ---------------------------------------------------------------------------------------
    def template(self, name: str, rng: np.random.Generator) -> dict:
        """A motif from the library with freshly drawn micro genes."""
        n = self._node
        if name == "ff_chain":
            nodes, edges, outs = [n(rng, "exc"), n(rng, "exc")], [[0, 1, "ff"], [1, 2, "ff"]], [2]
        elif name == "lateral_inhibition":
            nodes = [n(rng, "exc"), n(rng, "exc")]
            edges, outs = [[0, 1, "ff"], [0, 2, "ff"], [1, 2, "lat"]], [1, 2]
        elif name == "feedback":
            nodes = [n(rng, "exc"), n(rng, "inh" if "inh" in self.cfg.signs else "exc")]
            edges, outs = [[0, 1, "ff"], [1, 2, "ff"], [2, 1, "fb"]], [1]
        elif name == "skip":
            nodes, edges, outs = [n(rng, "exc"), n(rng, "exc")], [[0, 1, "ff"], [1, 2, "ff"], [0, 2, "skip"]], [2]
        else:
            raise ValueError(f"unknown motif template {name!r}; known: {list(TEMPLATES)}")
        for nd in nodes:
            if nd["sign"] not in self.cfg.signs:
                nd["sign"] = self.cfg.signs[0]
        return {"template": name, "nodes": nodes, "edges": edges, "outputs": outs}

    def composed(self, rng: np.random.Generator) -> dict:
        """A motif composed by the search: a random DAG of 2..max_nodes neurons with typed edges."""
        k = int(rng.integers(2, self.cfg.max_nodes + 1))
        nodes = [self._node(rng) for _ in range(k)]
        edges = []
        for dst in range(1, k + 1):
            srcs = [s for s in range(dst) if rng.random() < 0.5]
            if not srcs:
                srcs = [int(rng.integers(dst))]
            for s in srcs:
                etype = "skip" if (s == 0 and dst > 1 and rng.random() < 0.2) else "ff"
                if s >= 1 and rng.random() < 0.25:
                    etype = "lat"
                edges.append([s, dst, etype])
            if dst >= 2 and rng.random() < 0.3:
                edges.append([dst, int(rng.integers(1, dst)), "fb"])
        motif = {"template": "composed", "nodes": nodes, "edges": edges, "outputs": []}
        motif["outputs"] = _sinks(motif)
        return _repair_motif(motif)

    def chain(self, nodes: list[dict]) -> dict:
        """A chain motif ``0 -> 1 -> ... -> n`` (the only motif a deployment target allows)."""
        n = len(nodes)
        return {"template": "chain", "nodes": [{**nd, "sign": "exc"} for nd in nodes],
                "edges": [[k - 1, k, "ff"] for k in range(1, n + 1)], "outputs": [n]}

    @property
    def deploy(self) -> bool:
        return self.target.lowers

    def random_motif(self, rng: np.random.Generator) -> dict:
        c = self.cfg
        if self.deploy:
            return self.chain([self._node(rng, "exc") for _ in range(int(rng.integers(1, c.max_nodes + 1)))])
        if not c.templates or rng.random() < c.p_composed:
            return self.composed(rng)
        return self.template(str(c.templates[int(rng.integers(len(c.templates)))]), rng)

    # ---- macro --------------------------------------------------------------------------------------
    def _inputs(self, i: int, rng: np.random.Generator) -> list[int]:
        """Inputs of cell i: always the previous output (i), plus long-range skips from earlier ones."""
        ins = {i}
        for j in range(i):
            if len(ins) < self.cfg.max_inputs and rng.random() < 0.3:
                ins.add(j)
        return sorted(ins)

    def sample(self, rng: np.random.Generator) -> dict:
        c = self.cfg
        depth = int(rng.integers(c.depth[0], c.depth[1] + 1))
        ds_lim = _downsample_limit(c)
        ds = set()
        if ds_lim:
            n_ds = int(rng.integers(0, min(ds_lim, depth) + 1))
            ds = set(int(p) for p in rng.choice(depth, size=n_ds, replace=False))
        cells = [{"width": int(c.widths[int(rng.integers(len(c.widths)))]), "inputs": self._inputs(i, rng),
                  "downsample": i in ds, "motif": self.random_motif(rng)} for i in range(depth)]
        spec = self.make_spec(int(c.stem_widths[int(rng.integers(len(c.stem_widths)))]), cells,
                              stem_neuron=str(c.neurons[int(rng.integers(len(c.neurons)))]))
        return self.repair(spec) if self.deploy and c.max_layers else spec

    def make_spec(self, stem_width: int, cells: list[dict], stem_neuron: str = "lif") -> dict:
        c = self.cfg
        spec = {"format": FORMAT, "kind": "mse", "plugin": PLUGIN, "input_shape": list(c.input_shape),
                "num_classes": int(c.num_classes), "stem": {"width": int(stem_width), "neuron": stem_neuron},
                "cells": cells, "readout": c.readout}
        if self.deploy:
            spec["target"] = self.target.name
        return spec

    # ---- validation ---------------------------------------------------------------------------------
    def validate(self, spec: dict) -> dict:
        """Structural validation (:func:`validate_spec`) plus membership of this space's choices."""
        validate_spec(spec)
        c = self.cfg
        if c.max_layers and spec.get("target", "float") != "float" and n_layers(spec) > c.max_layers:
            raise ValueError(f"spec has {n_layers(spec)} spiking layers; the space allows max_layers={c.max_layers} "
                             "(with one step of synaptic delay per layer, a deeper network's output stays silent "
                             "for most of the T steps)")
        if spec.get("target", "float") != c.target:
            raise ValueError(f"spec target {spec.get('target', 'float')!r} != space target {c.target!r}")
        if list(spec["input_shape"]) != list(c.input_shape):
            raise ValueError(f"spec input_shape {spec['input_shape']} != space input_shape {list(c.input_shape)}")
        if spec["num_classes"] != c.num_classes:
            raise ValueError(f"spec num_classes {spec['num_classes']} != space num_classes {c.num_classes}")
        if not (c.depth[0] <= len(spec["cells"]) <= c.depth[1]):
            raise ValueError(f"spec has {len(spec['cells'])} cells; the space allows {list(c.depth)}")
        if sum(bool(cell["downsample"]) for cell in spec["cells"]) > _downsample_limit(c):
            raise ValueError(f"spec downsamples more than {_downsample_limit(c)} times for input {list(c.input_shape)}")
        for i, cell in enumerate(spec["cells"]):
            if len(cell["inputs"]) > c.max_inputs:
                raise ValueError(f"cells[{i}].inputs has {len(cell['inputs'])} entries; max_inputs is {c.max_inputs}")
            for j, nd in enumerate(cell["motif"]["nodes"]):
                if nd["neuron"] not in c.neurons:
                    raise ValueError(f"cells[{i}].motif.nodes[{j}].neuron {nd['neuron']!r} not in {list(c.neurons)}")
        return spec

    # ---- evolutionary operators ---------------------------------------------------------------------
    def mutate(self, spec: dict, rng: np.random.Generator) -> dict:
        """One mutation at a randomly chosen scale: micro (a node's neuron/sign/kernel), meso (swap the motif,
        add/remove/retype an edge) or macro (width, an input connection, downsampling, depth)."""
        s = _clone(spec)
        cells = s["cells"]
        scale = ("micro", "meso", "macro")[int(rng.integers(3))]
        i = int(rng.integers(len(cells)))
        cell = cells[i]
        c = self.cfg
        if scale == "micro":
            nd = cell["motif"]["nodes"][int(rng.integers(len(cell["motif"]["nodes"])))]
            what = int(rng.integers(3 if c.conv else 2))
            if what == 0:
                nd["neuron"] = str(c.neurons[int(rng.integers(len(c.neurons)))])
            elif what == 1:
                nd["sign"] = str(c.signs[int(rng.integers(len(c.signs)))])
            else:
                nd["kernel"] = int(c.kernels[int(rng.integers(len(c.kernels)))])
        elif scale == "meso" and self.deploy:  # grow or shrink the chain, or draw a new one
            nodes = cell["motif"]["nodes"]
            r = rng.random()
            if r < 0.4 and len(nodes) < c.max_nodes:
                nodes.insert(int(rng.integers(len(nodes) + 1)), self._node(rng, "exc"))
            elif r < 0.8 and len(nodes) > 1:
                del nodes[int(rng.integers(len(nodes)))]
            else:
                nodes = self.random_motif(rng)["nodes"]
            cell["motif"] = self.chain(nodes)
        elif scale == "meso":
            if rng.random() < 0.5:
                cell["motif"] = self.random_motif(rng)
            else:
                cell["motif"] = _mutate_edges(cell["motif"], rng)
        else:
            what = int(rng.integers(4))
            if what == 0:
                cell["width"] = int(c.widths[int(rng.integers(len(c.widths)))])
            elif what == 1 and i > 0:
                j = int(rng.integers(i))  # toggle a long-range skip from output j
                ins = set(cell["inputs"])
                if j in ins:
                    ins.discard(j)
                elif len(ins) < c.max_inputs:
                    ins.add(j)
                cell["inputs"] = sorted(ins | {i}) if len(ins) == 0 else sorted(ins)
            elif what == 2 and _downsample_limit(c):
                cell["downsample"] = not cell["downsample"]
            else:
                if len(cells) < c.depth[1] and (rng.random() < 0.5 or len(cells) <= c.depth[0]):
                    k = int(rng.integers(len(cells) + 1))
                    cells.insert(k, {"width": int(c.widths[int(rng.integers(len(c.widths)))]), "inputs": [k],
                                     "downsample": False, "motif": self.random_motif(rng)})
                    _shift_inputs(cells, k, +1)
                elif len(cells) > c.depth[0]:
                    k = int(rng.integers(len(cells)))
                    del cells[k]
                    _shift_inputs(cells, k, -1)
        return self.repair(s)

    def crossover(self, a: dict, b: dict, rng: np.random.Generator) -> dict:
        """One-point crossover on the cell list (macro) with uniform exchange of motifs (meso), then repair."""
        ca, cb = a["cells"], b["cells"]
        ka = int(rng.integers(1, len(ca) + 1))
        kb = int(rng.integers(0, len(cb)))
        cells = [_clone(c) for c in ca[:ka] + cb[kb:]]
        lo, hi = self.cfg.depth
        cells = cells[:hi]
        while len(cells) < lo:
            cells.append(_clone(cb[len(cells) % len(cb)]))
        for i, cell in enumerate(cells):  # inputs of transplanted cells index the other parent: keep valid ones
            cell["inputs"] = sorted({j for j in cell["inputs"] if j <= i} | {i})[-self.cfg.max_inputs:]
            if i in range(min(len(ca), len(cb))) and rng.random() < 0.2:
                cell["motif"] = _clone((cb if rng.random() < 0.5 else ca)[i]["motif"])
        stem = a["stem"] if rng.random() < 0.5 else b["stem"]
        s = self.make_spec(stem["width"], cells, stem.get("neuron", "lif"))
        return self.repair(s)

    def repair(self, spec: dict) -> dict:
        """Make a spec valid for this space (input indices, downsample budget, motif DAG)."""
        s = _clone(spec)
        lim = _downsample_limit(self.cfg)
        n_ds = 0
        for i, cell in enumerate(s["cells"]):
            ins = sorted({int(j) for j in cell["inputs"] if 0 <= int(j) <= i})
            if i not in ins:
                ins.append(i)
            ins = sorted(ins)
            if len(ins) > self.cfg.max_inputs:
                ins = ins[-self.cfg.max_inputs:]
            cell["inputs"] = ins
            if cell["downsample"]:
                n_ds += 1
                if n_ds > lim:
                    cell["downsample"] = False
            cell["motif"] = _repair_motif(cell["motif"])
            if self.deploy:
                cell["motif"] = self.chain(cell["motif"]["nodes"][: self.cfg.max_nodes])
        if self.deploy:
            s["target"], s["readout"] = self.target.name, "spiking"
            lim = self.cfg.max_layers
            while lim and n_layers(s) > lim:  # drop a node of the longest chain, else the last cell
                cells = s["cells"]
                longest = max(range(len(cells)), key=lambda i: len(cells[i]["motif"]["nodes"]))
                if len(cells[longest]["motif"]["nodes"]) > 1:
                    cells[longest]["motif"] = self.chain(cells[longest]["motif"]["nodes"][:-1])
                elif len(cells) > self.cfg.depth[0]:
                    cells.pop()
                else:
                    break
        return s

    def cost(self, spec: dict) -> float:
        """Parameter count of the built model (the second objective of NSGA-II by default)."""
        from neurosynth.arch import build  # resolves the spec's plugin (snn_nas.mse.builder): no import cycle

        return float(sum(p.numel() for p in build(spec).parameters() if p.requires_grad))


# ---------------------------------------------------------------------------------------------------------
def n_layers(spec: dict) -> int:
    """Spiking layers of a deployable spec: the stem, every motif node and the output layer."""
    return 2 + sum(len(c["motif"]["nodes"]) for c in spec["cells"])


def _clone(obj):
    """Deep copy through JSON: never aliases (deepcopy would keep a cell listed twice shared)."""
    return json.loads(json.dumps(obj))


def _shift_inputs(cells: list[dict], k: int, delta: int) -> None:
    """After inserting (+1) / deleting (-1) cell k, renumber references to outputs > k."""
    for i, cell in enumerate(cells):
        if delta > 0 and i == k:
            continue
        new = []
        for j in cell["inputs"]:
            if delta > 0:
                new.append(j + 1 if j > k or (j == k and i > k) else j)
            else:
                new.append(j - 1 if j > k else j)
        cell["inputs"] = new


def _sinks(motif: dict) -> list[int]:
    n = len(motif["nodes"])
    has_out = {s for s, d, t in motif["edges"] if t in ("ff", "skip", "lat") and s < d}
    sinks = [v for v in range(1, n + 1) if v not in has_out]
    return sinks or [n]


def _repair_motif(motif: dict) -> dict:
    """Drop invalid edges, make every neuron reachable from the input, keep outputs valid."""
    m = _clone(motif)
    n = len(m["nodes"])
    seen, edges = set(), []
    for e in m["edges"]:
        s, d, t = int(e[0]), int(e[1]), str(e[2])
        ok = (t in ("ff", "skip") and 0 <= s < d <= n) or (t == "lat" and 1 <= s < d <= n) or \
             (t == "fb" and 1 <= d < s <= n)
        if ok and (s, d, t) not in seen:
            seen.add((s, d, t))
            edges.append([s, d, t])
    # reachability through forward (ff/skip) edges
    for d in range(1, n + 1):
        if not any(e[1] == d and e[2] in ("ff", "skip") for e in edges):
            edges.append([d - 1, d, "ff"])
    edges.sort(key=lambda e: (e[1], e[0], e[2]))
    m["edges"] = edges
    outs = sorted({int(o) for o in m.get("outputs", []) if 1 <= int(o) <= n})
    m["outputs"] = outs or _sinks(m)
    return m


def _mutate_edges(motif: dict, rng: np.random.Generator) -> dict:
    m = _clone(motif)
    n = len(m["nodes"])
    op = int(rng.integers(3))
    if op == 0 and len(m["edges"]) > 1:  # remove
        del m["edges"][int(rng.integers(len(m["edges"])))]
    elif op == 1:  # add
        t = EDGE_TYPES[int(rng.integers(len(EDGE_TYPES)))]
        if t == "fb" and n >= 2:
            s = int(rng.integers(2, n + 1))
            m["edges"].append([s, int(rng.integers(1, s)), "fb"])
        elif t == "lat" and n >= 2:
            s = int(rng.integers(1, n))
            m["edges"].append([s, int(rng.integers(s + 1, n + 1)), "lat"])
        else:
            d = int(rng.integers(1, n + 1))
            m["edges"].append([int(rng.integers(d)), d, "ff" if t in ("fb", "lat") else t])
    else:  # retype a forward edge between neurons (ff <-> lat) or from the input (ff <-> skip)
        e = m["edges"][int(rng.integers(len(m["edges"])))]
        if e[2] == "ff":
            e[2] = "lat" if e[0] >= 1 else "skip"
        elif e[2] in ("lat", "skip"):
            e[2] = "ff"
    m["template"] = "composed"
    m["outputs"] = [o for o in m["outputs"] if 1 <= o <= n] or _sinks(m)
    return _repair_motif(m)




# =========================================================================================================
# The chain family: the networks users write by hand, as a search space
# =========================================================================================================
CHAIN_NEURONS = ("lif", "cubalif", "alif", "adlif")  # the spiking neurons a chain layer may use, when registered


def chain_neurons() -> tuple[str, ...]:
    """The chain family's neuron choices: LIF, CubaLIF, ALIF and adLIF, each only if registered (adLIF is added
    by name, so the space offers it as soon as a ``@register_neuron("adlif")`` is imported)."""
    from neurosynth.neurons import NEURONS

    return tuple(n for n in CHAIN_NEURONS if n in NEURONS)


@dataclass(frozen=True)
class ChainSpaceConfig(_SpaceConfigJSON):
    """The chain family as data (see :func:`snn_nas.mse.spec.validate_chain_spec` for the spec it samples).

    ``blocks`` / ``hidden``: ``[min, max]`` numbers of conv blocks (image inputs only) and of dense hidden layers;
    ``widths`` / ``kernels`` / ``pools``: a conv block's genes; ``hidden_widths`` / ``recurrent``: a dense
    layer's; ``neurons`` and ``betas`` (membrane decays, ``exp(-dt/tau)``, snapped to the target's grid): every
    spiking layer's; ``readouts`` / ``readout_betas``: the readout's. ``neurons=None``: :func:`chain_neurons`.
    """

    input_shape: tuple[int, ...] = (1, 28, 28)
    num_classes: int = 10
    blocks: tuple[int, int] = (1, 3)
    widths: tuple[int, ...] = (8, 16, 24, 32)
    kernels: tuple[int, ...] = (3, 5)
    pools: tuple[str, ...] = ("max", "avg")
    hidden: tuple[int, int] = (0, 2)
    hidden_widths: tuple[int, ...] = (64, 128, 256)
    recurrent: tuple[bool, ...] = (False,)
    neurons: tuple[str, ...] | None = None
    betas: tuple[float, ...] = (0.5, 0.7, 0.9)
    readouts: tuple[str, ...] = ("li",)
    readout_betas: tuple[float, ...] = (0.5, 0.9)
    batchnorm: bool = True
    surrogate: str = "atan"
    target: str = "float"
    family: str = "chain"

    NAME = "chain space"


class ChainSpace(SearchSpace):
    """The chain family (``"kind": "chain"`` specs): conv -> BN -> spiking -> pool blocks, dense or recurrent
    spiking layers, a readout; the family of ``apps/recipes/csnn.py`` and ``examples/train_shd.py``, so the
    hand-designed networks are points of it (:func:`fashion_space`, :func:`spoken_digits_space`).

    Operators: mutation changes one gene of one layer (width, kernel, pool, neuron, beta, recurrence), the readout,
    or adds / removes a block or a hidden layer; crossover is one-point on the block list and on the hidden list.
    Both end in :meth:`repair`, so every child is a member of the space."""

    name = "chain"

    def __init__(self, config: ChainSpaceConfig | dict | None = None):
        if config is None:
            config = ChainSpaceConfig()
        if isinstance(config, dict):
            config = ChainSpaceConfig.from_dict(config)
        tgt = get_target(config.target)
        if tgt.lowers:
            raise ValueError(f"the chain family is a float family (batch norm, graded pooling, any neuron); target "
                             f"{tgt.name!r} needs the 'mse' family, which is deployable by construction")
        if config.neurons is None:
            config = ChainSpaceConfig(**{**asdict(config), "neurons": chain_neurons()})
        snap = [float(tgt.snap("beta", b)) for b in config.betas]
        config = ChainSpaceConfig(**{**asdict(config), "betas": tuple(snap),
                                     "readout_betas": tuple(float(tgt.snap("beta", b)) for b in config.readout_betas)})
        self.cfg, self.target = config, tgt
        self._check_config()

    def _check_config(self) -> None:
        c = self.cfg
        c.check_input()
        lo, hi = c.blocks
        if c.conv and not (1 <= lo <= hi):
            raise ValueError(f"blocks must be [min, max] with 1 <= min <= max for an image input; got {list(c.blocks)}")
        if not (0 <= c.hidden[0] <= c.hidden[1]):
            raise ValueError(f"hidden must be [min, max] with 0 <= min <= max; got {list(c.hidden)}")
        if not c.conv and c.hidden[1] < 1:
            raise ValueError("a dense (1-D) input needs at least one hidden layer: set hidden to [1, n]")
        known = set(spiking_neurons())
        bad = [n for n in c.neurons if n not in known]
        if not c.neurons or bad:
            raise ValueError(f"neurons {bad or '[]'} are not registered spiking neurons; choose from {sorted(known)}")
        for name, vals in (("widths", c.widths), ("hidden_widths", c.hidden_widths)):
            if not vals or min(vals) < 1:
                raise ValueError(f"{name} must be a non-empty list of positive ints; got {list(vals)}")
        if c.conv and (not c.kernels or any(k < 1 or k % 2 == 0 for k in c.kernels)):
            raise ValueError(f"kernels must be odd positive ints; got {list(c.kernels)}")
        if c.conv and (not c.pools or set(c.pools) - {"max", "avg", "none"}):
            raise ValueError(f"pools must be a non-empty subset of ['max', 'avg', 'none']; got {list(c.pools)}")
        for name, vals in (("betas", c.betas), ("readout_betas", c.readout_betas)):
            if not vals or not all(0.0 < b <= 1.0 for b in vals):
                raise ValueError(f"{name} must be membrane decays in (0, 1]; got {list(vals)}")
        if not c.recurrent or any(not isinstance(r, bool) for r in c.recurrent):
            raise ValueError(f"recurrent must be a non-empty list of true/false; got {list(c.recurrent)}")
        if not c.readouts or set(c.readouts) - {"li", "spiking"}:
            raise ValueError(f"readouts must be a non-empty subset of ['li', 'spiking']; got {list(c.readouts)}")

    def describe(self) -> dict:
        return {"name": self.name, **self.cfg.to_dict()}

    # ---- genes --------------------------------------------------------------------------------------
    @staticmethod
    def _pick(vals, rng: np.random.Generator):
        v = vals[int(rng.integers(len(vals)))]
        return v.item() if hasattr(v, "item") else v

    def _block(self, rng: np.random.Generator) -> dict:
        c, p = self.cfg, self._pick
        return {"width": int(p(c.widths, rng)), "kernel": int(p(c.kernels, rng)), "pool": str(p(c.pools, rng)),
                "neuron": str(p(c.neurons, rng)), "beta": float(p(c.betas, rng))}

    def _hidden(self, rng: np.random.Generator) -> dict:
        c, p = self.cfg, self._pick
        return {"width": int(p(c.hidden_widths, rng)), "neuron": str(p(c.neurons, rng)),
                "beta": float(p(c.betas, rng)), "recurrent": bool(p(c.recurrent, rng))}

    def make_spec(self, blocks: list[dict], hidden: list[dict], readout: str = "li", readout_beta: float = 0.5) -> dict:
        c = self.cfg
        return {"format": FORMAT, "kind": "chain", "plugin": PLUGIN, "input_shape": [int(v) for v in c.input_shape],
                "num_classes": int(c.num_classes), "blocks": blocks, "hidden": hidden, "readout": readout,
                "readout_beta": float(readout_beta), "batchnorm": bool(c.batchnorm), "surrogate": c.surrogate}

    def sample(self, rng: np.random.Generator) -> dict:
        c = self.cfg
        nb = int(rng.integers(c.blocks[0], c.blocks[1] + 1)) if c.conv else 0
        nh = int(rng.integers(max(c.hidden[0], 0 if c.conv else 1), c.hidden[1] + 1))
        blocks = [self._block(rng) for _ in range(nb)]
        hidden = [self._hidden(rng) for _ in range(nh)]
        return self.repair(self.make_spec(blocks, hidden, str(self._pick(c.readouts, rng)),
                                          float(self._pick(c.readout_betas, rng))))

    # ---- validation ---------------------------------------------------------------------------------
    def validate(self, spec: dict) -> dict:
        """:func:`validate_chain_spec` plus membership of every gene in this space's choices."""
        from .spec import validate_chain_spec

        validate_chain_spec(spec)
        c = self.cfg
        if list(spec["input_shape"]) != list(c.input_shape):
            raise ValueError(f"spec input_shape {spec['input_shape']} != space input_shape {list(c.input_shape)}")
        if spec["num_classes"] != c.num_classes:
            raise ValueError(f"spec num_classes {spec['num_classes']} != space num_classes {c.num_classes}")
        nb, nh = len(spec["blocks"]), len(spec["hidden"])
        if c.conv and not (c.blocks[0] <= nb <= c.blocks[1]):
            raise ValueError(f"spec has {nb} conv blocks; the space allows {list(c.blocks)}")
        if not (c.hidden[0] <= nh <= c.hidden[1]):
            raise ValueError(f"spec has {nh} hidden layers; the space allows {list(c.hidden)}")
        genes = [("blocks", b, {"width": c.widths, "kernel": c.kernels, "pool": c.pools, "neuron": c.neurons,
                                "beta": c.betas}) for b in spec["blocks"]]
        genes += [("hidden", h, {"width": c.hidden_widths, "neuron": c.neurons, "beta": c.betas,
                                 "recurrent": c.recurrent}) for h in spec["hidden"]]
        seen: dict[str, int] = {}
        for where, layer, choices in genes:
            i = seen[where] = seen.get(where, -1) + 1
            for k, vals in choices.items():
                if layer[k] not in vals:
                    raise ValueError(f"spec.{where}[{i}].{k} = {layer[k]!r} is not one of the space's {list(vals)}")
        if spec["readout"] not in c.readouts or spec["readout_beta"] not in c.readout_betas:
            raise ValueError(f"spec readout {spec['readout']!r} / readout_beta {spec['readout_beta']} not in the space's "
                             f"{list(c.readouts)} / {list(c.readout_betas)}")
        if bool(spec.get("batchnorm", True)) != c.batchnorm or spec.get("surrogate", "atan") != c.surrogate:
            raise ValueError(f"spec batchnorm/surrogate must be {c.batchnorm}/{c.surrogate!r} in this space")
        return spec

    # ---- evolutionary operators ---------------------------------------------------------------------
    def mutate(self, spec: dict, rng: np.random.Generator) -> dict:
        """One gene of one layer, the readout, or the depth (add / remove a conv block or a hidden layer)."""
        s = _clone(spec)
        c = self.cfg
        blocks, hidden = s["blocks"], s["hidden"]
        what = int(rng.integers(4))
        if what == 0 and blocks:  # a conv block's gene
            b = blocks[int(rng.integers(len(blocks)))]
            key = ("width", "kernel", "pool", "neuron", "beta")[int(rng.integers(5))]
            b[key] = self._block(rng)[key]
        elif what <= 1 and hidden:  # a hidden layer's gene
            h = hidden[int(rng.integers(len(hidden)))]
            key = ("width", "neuron", "beta", "recurrent")[int(rng.integers(4))]
            h[key] = self._hidden(rng)[key]
        elif what == 2:  # depth
            grow = rng.random() < 0.5
            lst, lo, hi, new = ((blocks, c.blocks[0], c.blocks[1], self._block) if c.conv and rng.random() < 0.5
                                else (hidden, max(c.hidden[0], 0 if c.conv else 1), c.hidden[1], self._hidden))
            if (grow or len(lst) <= lo) and len(lst) < hi:
                lst.insert(int(rng.integers(len(lst) + 1)), new(rng))
            elif len(lst) > lo:
                del lst[int(rng.integers(len(lst)))]
        else:  # the readout
            if len(c.readouts) > 1 and rng.random() < 0.5:
                s["readout"] = str(self._pick(c.readouts, rng))
            else:
                s["readout_beta"] = float(self._pick(c.readout_betas, rng))
        out = self.repair(s)
        if canonical(out) == canonical(spec):  # a no-op draw (same value re-drawn): try once more, from the child
            return self.repair(self.mutate(out, rng)) if rng.random() < 0.9 else out
        return out

    def crossover(self, a: dict, b: dict, rng: np.random.Generator) -> dict:
        """One-point crossover of the block list and of the hidden list; the readout from either parent."""
        def one_point(x: list, y: list) -> list:
            i = int(rng.integers(0, len(x) + 1))
            j = int(rng.integers(0, len(y) + 1))
            return _clone(x[:i] + y[j:])

        s = self.make_spec(one_point(a["blocks"], b["blocks"]), one_point(a["hidden"], b["hidden"]),
                           *((a["readout"], a["readout_beta"]) if rng.random() < 0.5 else (b["readout"], b["readout_beta"])))
        return self.repair(s, rng)

    def repair(self, spec: dict, rng: np.random.Generator | None = None) -> dict:
        """Bring the numbers of blocks / hidden layers into range (pad with the first choices or with random layers
        when ``rng`` is given; drop from the end) and keep the feature map at least 1x1."""
        s = _clone(spec)
        c = self.cfg
        fill_b = (lambda: self._block(rng)) if rng is not None else (lambda: self._block(np.random.default_rng(0)))
        fill_h = (lambda: self._hidden(rng)) if rng is not None else (lambda: self._hidden(np.random.default_rng(0)))
        if c.conv:
            s["blocks"] = s["blocks"][: c.blocks[1]]
            while len(s["blocks"]) < c.blocks[0]:
                s["blocks"].append(fill_b())
            side = min(c.input_shape[1:])
            for b in s["blocks"]:  # keep the feature map >= 1x1: a pool that would empty it is dropped
                if b["pool"] != "none" and side // 2 < 1:
                    b["pool"] = "none"
                side //= 1 if b["pool"] == "none" else 2
        else:
            s["blocks"] = []
        lo = max(c.hidden[0], 0 if c.conv else 1)
        s["hidden"] = s["hidden"][: c.hidden[1]]
        while len(s["hidden"]) < lo:
            s["hidden"].append(fill_h())
        return s

    def cost(self, spec: dict) -> float:
        """Parameter count of the built network."""
        from neurosynth.arch import build

        return float(sum(p.numel() for p in build(spec).parameters() if p.requires_grad))


def canonical(spec: dict) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


# ---- the registry of space families: one entry per family, built from a JSON dict ---------------------------
SPACE_FAMILIES = {"mse": (MSESpace, MSESpaceConfig), "chain": (ChainSpace, ChainSpaceConfig)}


def make_space(config: dict | None = None) -> SearchSpace:
    """The search space a JSON dict describes: ``{"family": "chain", ...}`` (:class:`ChainSpace`) or the MSE
    motif space (``"family": "mse"`` or no ``family``; :class:`MSESpace`). Unknown fields raise ``ValueError``."""
    d = dict(config or {})
    fam = d.pop("family", "mse")
    if fam not in SPACE_FAMILIES:
        raise ValueError(f"space family must be one of {sorted(SPACE_FAMILIES)}; got {fam!r}")
    cls, cfg_cls = SPACE_FAMILIES[fam]
    return cls(cfg_cls.from_dict(d))


# ---- presets: the spaces of the evidence benchmark ---------------------------------------------------------
#: the Fashion-MNIST chain space: the CPU recipe (apps/recipes/csnn.py: conv16-BN-LIF-maxpool, conv32-BN-LIF-maxpool,
#: FC 256 LIF, LI readout, beta 0.5, 3x3) is the point ``FASHION_RECIPE_POINT`` of it
FASHION_SPACE = {"family": "chain", "blocks": [1, 3], "widths": [8, 16, 24, 32], "kernels": [3, 5],
                 "pools": ["max", "avg"], "hidden": [0, 2], "hidden_widths": [64, 128, 256], "recurrent": [False],
                 "betas": [0.5, 0.7, 0.9], "readouts": ["li"], "readout_betas": [0.5, 0.9]}
#: the spoken-digits / SHD chain space: 1-2 dense layers, each recurrent or not, of any of the chain neurons, at
#: membrane time constants of 5-50 steps (beta = exp(-1/tau): 0.8, 0.9, 0.95, 0.98), and the readout type;
#: examples/train_shd.py's default network (Linear -> recurrent LIF 128, beta 0.95 -> Linear -> LI 0.95) is a point
SPOKEN_DIGITS_SPACE = {"family": "chain", "blocks": [0, 0], "hidden": [1, 2], "hidden_widths": [64, 128, 256],
                       "recurrent": [False, True], "betas": [0.8, 0.9, 0.95, 0.98], "readouts": ["li", "spiking"],
                       "readout_betas": [0.9, 0.95]}


def fashion_space(input_shape=(1, 28, 28), num_classes: int = 10, **overrides) -> ChainSpace:
    """The Fashion-MNIST chain space (:data:`FASHION_SPACE`)."""
    return make_space({**FASHION_SPACE, "input_shape": list(input_shape), "num_classes": num_classes, **overrides})


def spoken_digits_space(n_in: int = 140, num_classes: int = 20, **overrides) -> ChainSpace:
    """The spoken-digits / SHD chain space (:data:`SPOKEN_DIGITS_SPACE`) for ``n_in`` input channels."""
    return make_space({**SPOKEN_DIGITS_SPACE, "input_shape": [int(n_in)], "num_classes": num_classes, **overrides})


def fashion_recipe_point(space: ChainSpace) -> dict:
    """The CPU Fashion-MNIST recipe's network (``apps/recipes/csnn.py``, preset ``cpu``) as a point of ``space``."""
    lif = {"neuron": "lif", "beta": 0.5}
    return space.validate(space.make_spec(
        [{"width": 16, "kernel": 3, "pool": "max", **lif}, {"width": 32, "kernel": 3, "pool": "max", **lif}],
        [{"width": 256, **lif, "recurrent": False}], "li", 0.5))


def train_shd_point(space: ChainSpace, hidden: int = 128) -> dict:
    """``examples/train_shd.py``'s default network (recurrent LIF, beta 0.95, LI readout 0.95) as a point."""
    return space.validate(space.make_spec([], [{"width": hidden, "neuron": "lif", "beta": 0.95, "recurrent": True}],
                                          "li", 0.95))
