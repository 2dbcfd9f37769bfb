"""Structural validation of an MSE-NAS ArchSpec (``"kind": "mse"``).

Its own module so that the space (:mod:`.space`) and the builder (:mod:`.builder`) both depend on it and
not on each other (no import cycle).
"""

from __future__ import annotations

from neurosynth.arch import FORMAT, FORMATS
from neurosynth.hardware.targets import TARGETS

from ..engine.space import canonical_json

PLUGIN = "snn_nas.mse.builder"
EDGE_TYPES = ("ff", "lat", "fb", "skip")
SIGNS = ("exc", "inh")


def _need(d: dict, key: str, where: str, types) -> object:
    if not isinstance(d, dict) or key not in d:
        raise ValueError(f"{where} is missing the field '{key}'")
    v = d[key]
    if not isinstance(v, types) or (isinstance(v, bool) and types is not bool):
        raise ValueError(f"{where}.{key} must be {types.__name__}, got {type(v).__name__} {v!r}")
    return v


def validate_spec(spec: dict) -> dict:
    """Structural validation of an MSE ArchSpec; raises ``ValueError`` naming the bad field and the fix."""
    from neurosynth.neurons import NEURONS

    if not isinstance(spec, dict):
        raise ValueError(f"an MSE spec must be a JSON object; got {type(spec).__name__}")
    if spec.get("format") not in FORMATS:  # neurosynth.arch/1 (release 0.1.0) reads unchanged
        raise ValueError(f"spec.format must be {FORMAT!r}; got {spec.get('format')!r}")
    if spec.get("kind") != "mse":
        raise ValueError(f"spec.kind must be 'mse'; got {spec.get('kind')!r}")
    shape = _need(spec, "input_shape", "spec", list)
    if len(shape) not in (1, 3) or not all(isinstance(v, int) and v >= 1 for v in shape):
        raise ValueError(f"spec.input_shape must be [features] or [C, H, W]; got {shape}")
    ncls = _need(spec, "num_classes", "spec", int)
    if ncls < 2:
        raise ValueError(f"spec.num_classes must be >= 2; got {ncls}")
    stem = _need(spec, "stem", "spec", dict)
    if _need(stem, "width", "spec.stem", int) < 1:
        raise ValueError("spec.stem.width must be >= 1")
    if stem.get("neuron", "lif") not in NEURONS:
        raise ValueError(f"spec.stem.neuron {stem.get('neuron')!r} is not registered; known: {NEURONS.names()}")
    if spec.get("target", "float") not in TARGETS:
        raise ValueError(f"spec.target must be one of {TARGETS.names()}; got {spec.get('target')!r}")
    if spec.get("readout", "li") not in ("li", "spiking"):
        raise ValueError(f"spec.readout must be 'li' or 'spiking'; got {spec.get('readout')!r}")
    cells = _need(spec, "cells", "spec", list)
    if not cells:
        raise ValueError("spec.cells must hold at least one cell")
    side = min(shape[1:]) if len(shape) == 3 else None
    for i, cell in enumerate(cells):
        w = f"spec.cells[{i}]"
        if _need(cell, "width", w, int) < 1:
            raise ValueError(f"{w}.width must be >= 1")
        ins = _need(cell, "inputs", w, list)
        if not ins or not all(isinstance(j, int) and 0 <= j <= i for j in ins) or len(set(ins)) != len(ins):
            raise ValueError(f"{w}.inputs must be distinct indices of earlier outputs in [0, {i}] "
                             f"(0 = stem, k = cell k-1); got {ins}")
        ds = _need(cell, "downsample", w, bool)
        if ds:
            if side is None:
                raise ValueError(f"{w}.downsample is true but the network is dense (1-D input); set it to false")
            side //= 2
            if side < 1:
                raise ValueError(f"{w}.downsample shrinks the feature map below 1x1; remove a downsampling")
        m = _need(cell, "motif", w, dict)
        nodes = _need(m, "nodes", f"{w}.motif", list)
        if not nodes:
            raise ValueError(f"{w}.motif.nodes must hold at least one neuron")
        for j, nd in enumerate(nodes):
            wn = f"{w}.motif.nodes[{j}]"
            if _need(nd, "neuron", wn, str) not in NEURONS or not getattr(NEURONS.get(nd["neuron"]), "spiking", True):
                raise ValueError(f"{wn}.neuron {nd['neuron']!r} is not a registered spiking neuron; "
                                 f"known: {[n for n in NEURONS.names() if getattr(NEURONS.get(n), 'spiking', True)]}")
            if _need(nd, "sign", wn, str) not in SIGNS:
                raise ValueError(f"{wn}.sign must be one of {list(SIGNS)}; got {nd['sign']!r}")
            k = _need(nd, "kernel", wn, int)
            if k < 1 or k % 2 == 0:
                raise ValueError(f"{wn}.kernel must be an odd positive int; got {k}")
        n = len(nodes)
        edges = _need(m, "edges", f"{w}.motif", list)
        for e in edges:
            if not (isinstance(e, list) and len(e) == 3 and isinstance(e[0], int) and isinstance(e[1], int)
                    and e[2] in EDGE_TYPES):
                raise ValueError(f"{w}.motif.edges entry {e!r} must be [src, dst, type] with type in {list(EDGE_TYPES)}")
            s, d, t = e
            ok = (t in ("ff", "skip") and 0 <= s < d <= n) or (t == "lat" and 1 <= s < d <= n) or \
                 (t == "fb" and 1 <= d < s <= n)
            if not ok:
                raise ValueError(f"{w}.motif edge {e!r} is invalid: ff/skip need 0 <= src < dst <= {n}, lat needs "
                                 f"1 <= src < dst, fb needs 1 <= dst < src (within-step feedback)")
        for d in range(1, n + 1):
            if not any(e[1] == d and e[2] in ("ff", "skip") for e in edges):
                raise ValueError(f"{w}.motif node {d} has no ff/skip input; every neuron must be fed")
        outs = _need(m, "outputs", f"{w}.motif", list)
        if not outs or not all(isinstance(o, int) and 1 <= o <= n for o in outs):
            raise ValueError(f"{w}.motif.outputs must list neuron indices in [1, {n}]; got {outs}")
    if spec.get("target", "float") != "float":
        from .targets import check_deployable

        check_deployable(spec, spec["target"])
    canonical_json(spec)
    return spec


# ---------------------------------------------------------------------------------------------------------
# The chain family (``"kind": "chain"``): the networks users write by hand -- conv -> batch norm -> spiking
# neuron -> pool blocks, then dense (optionally recurrent) spiking layers, then a readout. A chain spec is a
# compact genome; :func:`snn_nas.mse.builder.expand_chain` expands it into the plain sequential ArchSpec.
# ---------------------------------------------------------------------------------------------------------
CHAIN_KIND = "chain"
POOLS = ("max", "avg", "none")
READOUTS = ("li", "spiking")


def _spiking_names() -> list[str]:
    from neurosynth.neurons import NEURONS

    return [n for n in NEURONS.names() if getattr(NEURONS.get(n), "spiking", True)]


def _need_num(d: dict, key: str, where: str, lo: float, hi: float) -> float:
    v = d.get(key) if isinstance(d, dict) else None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (lo < float(v) <= hi):
        raise ValueError(f"{where}.{key} must be a number in ({lo}, {hi}]; got {v!r}")
    return float(v)


def validate_chain_spec(spec: dict) -> dict:
    """Structural validation of a chain ArchSpec (``"kind": "chain"``); ``ValueError`` names the bad field::

        {"format": ..., "kind": "chain", "plugin": "snn_nas.mse.builder", "input_shape": [1, 28, 28] | [140],
         "num_classes": 10,
         "blocks": [{"width": 16, "kernel": 3, "pool": "max", "neuron": "lif", "beta": 0.5}, ...],  # conv only
         "hidden": [{"width": 256, "neuron": "lif", "beta": 0.5, "recurrent": false}, ...],
         "readout": "li" | "spiking", "readout_beta": 0.5, "batchnorm": true, "surrogate": "atan"}
    """
    if not isinstance(spec, dict):
        raise ValueError(f"a chain spec must be a JSON object; got {type(spec).__name__}")
    if spec.get("format") not in FORMATS:
        raise ValueError(f"spec.format must be {FORMAT!r}; got {spec.get('format')!r}")
    if spec.get("kind") != CHAIN_KIND:
        raise ValueError(f"spec.kind must be {CHAIN_KIND!r}; got {spec.get('kind')!r}")
    shape = _need(spec, "input_shape", "spec", list)
    if len(shape) not in (1, 3) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape):
        raise ValueError(f"spec.input_shape must be [features] or [C, H, W]; got {shape}")
    if _need(spec, "num_classes", "spec", int) < 2:
        raise ValueError(f"spec.num_classes must be >= 2; got {spec['num_classes']}")
    if spec.get("target", "float") not in TARGETS:
        raise ValueError(f"spec.target must be one of {TARGETS.names()}; got {spec.get('target')!r}")
    if spec.get("target", "float") != "float":
        raise ValueError(f"the chain family is a float family (batch norm, graded pooling); got target "
                         f"{spec['target']!r}: search the 'mse' family with --target {spec['target']} for a deployable "
                         "network")
    known = _spiking_names()
    blocks = _need(spec, "blocks", "spec", list)
    hidden = _need(spec, "hidden", "spec", list)
    if len(shape) == 1 and blocks:
        raise ValueError("spec.blocks must be empty for a dense (1-D) input: conv blocks need [C, H, W]")
    if len(shape) == 3 and not blocks:
        raise ValueError("spec.blocks must hold at least one conv block for an image input [C, H, W]")
    side = min(shape[1:]) if len(shape) == 3 else None
    for i, b in enumerate(blocks):
        w = f"spec.blocks[{i}]"
        if _need(b, "width", w, int) < 1:
            raise ValueError(f"{w}.width must be >= 1")
        k = _need(b, "kernel", w, int)
        if k < 1 or k % 2 == 0:
            raise ValueError(f"{w}.kernel must be an odd positive int (same padding); got {k}")
        if _need(b, "pool", w, str) not in POOLS:
            raise ValueError(f"{w}.pool must be one of {list(POOLS)}; got {b['pool']!r}")
        if b["pool"] != "none":
            side //= 2
            if side < 1:
                raise ValueError(f"{w}.pool shrinks the feature map below 1x1; set pool 'none' or drop a block")
        if _need(b, "neuron", w, str) not in known:
            raise ValueError(f"{w}.neuron {b['neuron']!r} is not a registered spiking neuron; known: {known}")
        _need_num(b, "beta", w, 0.0, 1.0)
    for i, h in enumerate(hidden):
        w = f"spec.hidden[{i}]"
        if _need(h, "width", w, int) < 1:
            raise ValueError(f"{w}.width must be >= 1")
        if _need(h, "neuron", w, str) not in known:
            raise ValueError(f"{w}.neuron {h['neuron']!r} is not a registered spiking neuron; known: {known}")
        _need_num(h, "beta", w, 0.0, 1.0)
        _need(h, "recurrent", w, bool)
    if spec.get("readout", "li") not in READOUTS:
        raise ValueError(f"spec.readout must be one of {list(READOUTS)}; got {spec.get('readout')!r}")
    _need_num(spec, "readout_beta", "spec", 0.0, 1.0)
    if not isinstance(spec.get("batchnorm", True), bool):
        raise ValueError(f"spec.batchnorm must be true or false; got {spec.get('batchnorm')!r}")
    from neurosynth.surrogate import SURROGATES

    if spec.get("surrogate", "atan") not in SURROGATES:
        raise ValueError(f"spec.surrogate {spec.get('surrogate')!r} is not registered; known: {SURROGATES.names()}")
    canonical_json(spec)
    return spec
