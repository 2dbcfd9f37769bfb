r"""What a deployment target means for the MSE-NAS space: which candidates it allows, and how a candidate is
lowered to the plain sequential ArchSpec its exporter reads.

The targets themselves are data in :mod:`neurosynth.hardware.targets` (one module per target: grids, allowed
neurons and graph features, resource model, energy model, exporter); this module walks an MSE spec (stem,
cells, motifs) and asks the target for each step. A candidate of a deployable target (one with ``lowers``) is a
chain of cells, each a chain of neurons::

    [synapse(k, stride 2 if the cell downsamples by a strided conv) -> neuron(reset zero)] per neuron,
    flatten -> linear synapse -> LIF (spiking output, read out by spike count)

with the target's synapse layer types and delay (Loihi: ``qconv2d``/``qlinear`` followed by one step of delay),
its downsampling (Loihi: strided convolution; NIR: 2x2 sum pooling) and its neuron grid. Refused by the space
(not at export) when the target does not run them: ``lat``/``fb``/``skip`` edges, several motif outputs (a graded
sum), long-range cell inputs, an ``li`` readout, any neuron the target does not list.
"""

from __future__ import annotations

import math

from neurosynth.hardware.targets import (
    TARGETS,
    downsample_layers,
    get_target,
    neuron_entry,
    sequential_spec,
    synapse_layers,
)

__all__ = ["TARGETS", "check_deployable", "get_target", "lower", "resources"]


def check_deployable(spec: dict, target: str) -> None:
    """Raise ``ValueError`` naming the first thing ``target`` cannot run (the space refuses such specs)."""
    t = get_target(target)
    if not t.lowers:
        return
    where = f"target {t.name!r}"
    if spec.get("readout", "li") not in t.readouts:
        raise ValueError(f"{where}: readout {spec.get('readout', 'li')!r} is graded; use readout 'spiking' "
                         "(output neurons spike, read out by spike count)")
    allowed = t.neurons
    stem = spec["stem"].get("neuron", "lif")
    if allowed is not None and stem not in allowed:
        raise ValueError(f"{where}: spec.stem.neuron {stem!r} is not in {list(allowed)}")
    for i, cell in enumerate(spec["cells"]):
        w = f"{where}: spec.cells[{i}]"
        if t.max_inputs is not None and cell["inputs"] != [i]:
            raise ValueError(f"{w}.inputs {cell['inputs']} has long-range inputs; {t.name} networks are sequential, "
                             f"so every cell takes only the previous output [{i}]")
        m = cell["motif"]
        for j, nd in enumerate(m["nodes"]):
            if allowed is not None and nd["neuron"] not in allowed:
                raise ValueError(f"{w}.motif.nodes[{j}].neuron {nd['neuron']!r} is not in {list(allowed)}")
            if not t.multi_output and nd.get("sign", "exc") != "exc":
                raise ValueError(f"{w}.motif.nodes[{j}].sign {nd['sign']!r}: the deployable family has signed "
                                 "weights (no Dale's-law rectifier, which would be a graded output); use 'exc'")
        n = len(m["nodes"])
        bad = [e for e in m["edges"] if e[2] not in t.edge_types]
        if bad:
            raise ValueError(f"{w}.motif edge {bad[0]} of type {bad[0][2]!r} is not deployable on {t.name} "
                             f"(allowed: {list(t.edge_types)})")
        if t.edge_types == ("ff",):
            chain = [[k - 1, k, "ff"] for k in range(1, n + 1)]
            if sorted(map(list, m["edges"])) != sorted(chain):
                raise ValueError(f"{w}.motif edges {m['edges']} are not a chain 0->1->...->{n}; {t.name} layers are "
                                 "sequential, so a deployable motif is a chain of neurons")
        if not t.multi_output and m["outputs"] != [n]:
            raise ValueError(f"{w}.motif.outputs {m['outputs']} must be [{n}] (a sum of several nodes is graded)")


def lower(spec: dict, target: str) -> dict:
    """The sequential ArchSpec (``"kind": "sequential"``, ``"target": <name>``) of a deployable MSE spec."""
    check_deployable(spec, target)
    t = get_target(target)
    if not t.lowers:
        raise ValueError(f"the {t.name} target has no sequential lowering; build the 'mse' spec itself")
    shape = [int(s) for s in spec["input_shape"]]
    conv = len(shape) == 3
    layers: list[dict] = []

    def synapse(out: int, k: int, stride: int = 1) -> None:
        nonlocal shape
        new, shape = synapse_layers(t, shape, out, k if conv else 1, stride)
        layers.extend(new)

    synapse(int(spec["stem"]["width"]), 3)
    layers.append(neuron_entry(t, spec["stem"].get("neuron", "lif"), shape))
    for cell in spec["cells"]:
        for j, nd in enumerate(cell["motif"]["nodes"]):
            stride = 1
            if conv and bool(cell["downsample"]) and j == 0:
                pool, shape, stride = downsample_layers(t, shape)
                layers.extend(pool)
            synapse(int(cell["width"]), int(nd["kernel"]), stride)
            layers.append(neuron_entry(t, nd["neuron"], shape))
    if conv:
        layers.append({"type": "flatten"})
        shape = [math.prod(shape)]
    synapse(int(spec["num_classes"]), 1)
    layers.append(neuron_entry(t, "lif", shape))
    return sequential_spec(t, spec["input_shape"], layers, searched="mse")


def resources(spec: dict) -> dict:
    """The target's resource estimate of a deployable MSE spec (``ValueError`` when the target has no model)."""
    t = get_target(spec.get("target", "float"))
    if t.resources is None or not t.lowers:
        raise ValueError(f"target {t.name!r} has no resource model")
    return t.resources(lower(spec, t.name))
