r"""Deployment targets of the MSE-NAS space, as *data* (``snn_nas`` imports only the core and datasets).

A target says which candidates the space may produce so that every one of them can be exported without
surprises, and how a candidate is lowered to a plain sequential :class:`neurosynth.SNN` ArchSpec that the
exporters (``neurosynth.hardware.lava`` / ``neurosynth.hardware.nir``) already read:

``float`` (default)
    the full MSE-NAS space (batch norm, graded motif outputs, skips, feedback, lateral inhibition, LI readout).
    Not exportable.

``loihi``
    Loihi 2 via Lava / lava-dl netx. netx networks are *sequential* (``layer/0..n-1``, each feeding the next;
    ``pool``/``concat`` are not implemented), Lava's ``LIF`` resets to zero, every ``Dense``/``Conv`` delays
    its output by one step, weights are 8-bit on a 64x grid (``docs/hardware_lava.md``). So a candidate is
    a chain of cells, each a chain of neurons::

        [qconv2d(k, stride 2 if the cell downsamples) -> delay(1) -> LIF|CubaLIF(reset zero)] per neuron,
        flatten -> qlinear -> delay(1) -> LIF (spiking output, read out by spike count)

    Binary spikes between all layers, no bias, no batch norm, downsampling by a strided convolution (netx
    cannot load pooling), decays/thresholds on Loihi's 12-bit / 1/64 grids. Refused by the space (not at
    export): ``lat``/``fb``/``skip`` edges, several motif outputs (a graded sum), long-range cell inputs,
    an ``li`` readout, any neuron other than ``lif``/``cubalif``.

``nir``
    the same chain with float weights (``conv2d``/``linear`` without bias) and 2x2 sum pooling
    (``sumpool2d``, a NIR primitive) for downsampling.

The ``loihi`` lowering names ``"plugin": "neurosynth.hardware.lava.qat"`` (the module that registers the
``qconv2d``/``qlinear`` layer types); that is a string in the spec, resolved by ``neurosynth.arch.build``.

Loihi 2 resource estimate (:func:`loihi2_resources`)
-----------------------------------------------------
Published figures (no other figure is used):

* 128 neuromorphic cores per chip; up to 1 million neurons and 120 million synapses per chip
  (Intel Labs, *Loihi 2 technology brief*, 2021, as summarised by Open Neuromorphic,
  https://open-neuromorphic.org/neuromorphic-computing/hardware/loihi-2-intel/);
* 8x Loihi 1's 1,024 neurons per core, i.e. 8,192 neurons per core (= 1 M / 128), and 128 KB of
  flexibly partitioned local SRAM per core (same brief, as reported at
  https://fbhtechinfo.com/intels-new-loihi-2-chip-uses-1-million-neurons).

Estimate, per layer (a layer is never packed into a core together with another layer: the simple placement
Lava's compiler uses per process): ``neurons = prod(out_shape)``; ``synapses = neurons x fan_in`` (dense
storage, every neuron's incoming weights; Loihi 2's weight sharing for convolutions would need less, so
this is an upper bound); ``synapse_bits = 8 x synapses`` (8-bit weights);
``cores = max(ceil(neurons / 8192), ceil(synapse_bits / (128 KB x 8)))``. The 128 KB is the whole core's
SRAM (neuron state, routing and microcode share it), so the core count is a *lower* bound for the
synaptic memory term. It is an estimate for comparing candidates, not a compiler result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TARGETS = ("float", "loihi", "nir")

# Loihi 2, published per-chip / per-core figures (module docstring gives the sources)
LOIHI2_CORES_PER_CHIP = 128
LOIHI2_NEURONS_PER_CHIP = 1_000_000
LOIHI2_SYNAPSES_PER_CHIP = 120_000_000
LOIHI2_NEURONS_PER_CORE = 8192
LOIHI2_SRAM_BYTES_PER_CORE = 128 * 1024
LOIHI2_WEIGHT_BITS = 8
LOIHI2_SOURCES = (
    "https://open-neuromorphic.org/neuromorphic-computing/hardware/loihi-2-intel/ (Intel Loihi 2 brief: 128 cores, "
    "1M neurons, 120M synapses per chip)",
    "https://fbhtechinfo.com/intels-new-loihi-2-chip-uses-1-million-neurons (8x Loihi's 1,024 neurons per core, "
    "128 KB local SRAM per core)",
)

# Loihi fixed-point grids (the same numbers as neurosynth.hardware.lava.qat; kept here as data so that
# snn_nas does not import the hardware package)
DECAY_UNITY = 4096  # 12-bit decays
TH_SCALE = 64  # vThMant = 64 * threshold
VTH_MAX = (1 << 17) - 1


def snap_beta(beta: float) -> float:
    return 1.0 - min(max(int(round((1.0 - beta) * DECAY_UNITY)), 0), DECAY_UNITY - 1) / DECAY_UNITY


def snap_alpha(alpha: float) -> float:
    return 1.0 - min(max(int(round((1.0 - alpha) * DECAY_UNITY)), 1), DECAY_UNITY) / DECAY_UNITY


def snap_threshold(th: float) -> float:
    return min(max(int(round(th * TH_SCALE)), 1), VTH_MAX) / TH_SCALE


@dataclass(frozen=True)
class Target:
    """What a deployment target allows (data the space and the lowering read)."""

    name: str
    neurons: tuple[str, ...] | None  # None: any registered spiking neuron
    edge_types: tuple[str, ...]
    multi_output: bool  # graded sum of several motif nodes
    max_inputs: int | None  # long-range cell inputs
    readouts: tuple[str, ...]
    downsample: str  # "avgpool" | "strided_conv" | "sumpool"
    layer_plugin: str | None
    synapse: tuple[str, str]  # (conv layer type, linear layer type)
    input: str  # "any" | "spikes"


TARGET_SPECS: dict[str, Target] = {
    "float": Target("float", None, ("ff", "lat", "fb", "skip"), True, None, ("li", "spiking"), "avgpool", None,
                    ("conv2d", "linear"), "any"),
    "loihi": Target("loihi", ("lif", "cubalif"), ("ff",), False, 1, ("spiking",), "strided_conv",
                    "neurosynth.hardware.lava.qat", ("qconv2d", "qlinear"), "spikes"),
    "nir": Target("nir", ("lif", "cubalif"), ("ff",), False, 1, ("spiking",), "sumpool", None,
                  ("conv2d", "linear"), "spikes"),
}

# neuron parameters of the deployable family (zero reset; snapped to Loihi's grids for both targets so the
# same searched spec deploys to either)
DEPLOY_BETA = 0.9
DEPLOY_ALPHA = 0.5
DEPLOY_THRESHOLD = 1.0


def get_target(name: str) -> Target:
    if name not in TARGET_SPECS:
        raise ValueError(f"unknown target {name!r}; choose from {list(TARGETS)}")
    return TARGET_SPECS[name]


def neuron_entry(name: str, shape: list[int]) -> dict:
    """ArchSpec neuron layer of the deployable family: zero reset, parameters on Loihi's grids."""
    params = {"beta": snap_beta(DEPLOY_BETA), "threshold": snap_threshold(DEPLOY_THRESHOLD)}
    if name == "cubalif":
        params = {"alpha": snap_alpha(DEPLOY_ALPHA), **params}
    elif name != "lif":
        raise ValueError(f"neuron {name!r} is not in the deployable family (lif, cubalif)")
    return {"type": "neuron", "neuron": name, "reset": "zero", "surrogate": "atan", "params": params,
            "shape": [int(s) for s in shape]}


def check_deployable(spec: dict, target: str) -> None:
    """Raise ``ValueError`` naming the first thing ``target`` cannot run (the space refuses such specs)."""
    t = get_target(target)
    if t.name == "float":
        return
    where = f"target {target!r}"
    if spec.get("readout", "li") not in t.readouts:
        raise ValueError(f"{where}: readout {spec.get('readout', 'li')!r} is graded; use readout 'spiking' "
                         "(output neurons spike, read out by spike count)")
    stem = spec["stem"].get("neuron", "lif")
    if stem not in t.neurons:
        raise ValueError(f"{where}: spec.stem.neuron {stem!r} is not in {list(t.neurons)} (zero-reset Lava LIF family)")
    for i, cell in enumerate(spec["cells"]):
        w = f"{where}: spec.cells[{i}]"
        if t.max_inputs is not None and cell["inputs"] != [i]:
            raise ValueError(f"{w}.inputs {cell['inputs']} has long-range inputs; netx networks are sequential, so "
                             f"every cell takes only the previous output [{i}]")
        m = cell["motif"]
        for j, nd in enumerate(m["nodes"]):
            if nd["neuron"] not in t.neurons:
                raise ValueError(f"{w}.motif.nodes[{j}].neuron {nd['neuron']!r} is not in {list(t.neurons)}")
            if nd.get("sign", "exc") != "exc":
                raise ValueError(f"{w}.motif.nodes[{j}].sign {nd['sign']!r}: the deployable family has signed "
                                 "weights (no Dale's-law rectifier, which would be a graded output); use 'exc'")
        n = len(m["nodes"])
        chain = [[k - 1, k, "ff"] for k in range(1, n + 1)]
        bad = [e for e in m["edges"] if e[2] not in t.edge_types]
        if bad:
            raise ValueError(f"{w}.motif edge {bad[0]} of type {bad[0][2]!r} is not deployable on {target} "
                             f"(allowed: {list(t.edge_types)})")
        if sorted(map(list, m["edges"])) != sorted(chain):
            raise ValueError(f"{w}.motif edges {m['edges']} are not a chain 0->1->...->{n}; netx layers are "
                             "sequential, so a deployable motif is a chain of neurons")
        if m["outputs"] != [n]:
            raise ValueError(f"{w}.motif.outputs {m['outputs']} must be [{n}] (a sum of several nodes is graded)")


def lower(spec: dict, target: str) -> dict:
    """The sequential ArchSpec (``"kind": "sequential"``) of a deployable MSE spec (see module docstring)."""
    check_deployable(spec, target)
    t = get_target(target)
    if t.name == "float":
        raise ValueError("the float target has no sequential lowering; build the 'mse' spec itself")
    conv_t, lin_t = t.synapse
    shape = [int(s) for s in spec["input_shape"]]
    conv = len(shape) == 3
    layers: list[dict] = []

    def synapse(cin, cout, k, stride):
        nonlocal shape
        if conv:
            layers.append({"type": conv_t, "in_channels": cin, "out_channels": cout, "kernel_size": k,
                           "stride": stride, "padding": k // 2, "bias": False})
            h = (shape[1] + 2 * (k // 2) - k) // stride + 1
            w = (shape[2] + 2 * (k // 2) - k) // stride + 1
            shape = [cout, h, w]
        else:
            layers.append({"type": lin_t, "in_features": cin, "out_features": cout, "bias": False})
            shape = [cout]
        if t.name == "loihi":
            layers.append({"type": "delay", "steps": 1})

    sw = int(spec["stem"]["width"])
    synapse(shape[0], sw, 3 if conv else 1, 1)
    layers.append(neuron_entry(spec["stem"].get("neuron", "lif"), shape))
    for cell in spec["cells"]:
        for j, nd in enumerate(cell["motif"]["nodes"]):
            down = conv and bool(cell["downsample"]) and j == 0
            if down and t.downsample == "sumpool":
                layers.append({"type": "sumpool2d", "kernel_size": 2, "stride": 2, "padding": 0})
                shape = [shape[0], shape[1] // 2, shape[2] // 2]
            stride = 2 if down and t.downsample == "strided_conv" else 1
            synapse(shape[0], int(cell["width"]), int(nd["kernel"]) if conv else 1, stride)
            layers.append(neuron_entry(nd["neuron"], shape))
    if conv:
        layers.append({"type": "flatten"})
        shape = [math.prod(shape)]
    layers.append({"type": lin_t, "in_features": shape[0], "out_features": int(spec["num_classes"]), "bias": False})
    if t.name == "loihi":
        layers.append({"type": "delay", "steps": 1})
    layers.append(neuron_entry("lif", [int(spec["num_classes"])]))
    out = {"format": spec["format"], "kind": "sequential", "input_shape": [int(s) for s in spec["input_shape"]],
           "layers": layers,
           "meta": {"family": t.name, "searched": "mse", "target": t.name, "delay_per_synapse": int(t.name == "loihi")}}
    if t.layer_plugin:
        out["plugin"] = t.layer_plugin
    return out


def loihi2_resources(seq_spec: dict) -> dict:
    """Loihi 2 resource estimate of a lowered (sequential) spec: neurons, synapses, synaptic memory, cores."""
    shape = [int(s) for s in seq_spec["input_shape"]]
    per_layer = []
    pending = None
    for layer in seq_spec["layers"]:
        ty = layer["type"]
        if ty in ("conv2d", "qconv2d"):
            k = layer["kernel_size"]
            kh, kw = (k, k) if isinstance(k, int) else k
            fan_in = layer["in_channels"] * kh * kw // int(layer.get("groups", 1))
            pending = fan_in
        elif ty in ("linear", "qlinear"):
            pending = int(layer["in_features"])
        elif ty == "neuron":
            n = math.prod(layer["shape"])
            syn = n * (pending or 0)
            bits = syn * LOIHI2_WEIGHT_BITS
            cores = max(math.ceil(n / LOIHI2_NEURONS_PER_CORE), math.ceil(bits / (LOIHI2_SRAM_BYTES_PER_CORE * 8)), 1)
            per_layer.append({"neurons": n, "synapses": syn, "synapse_bytes": bits // 8, "cores": cores})
            shape = layer["shape"]
            pending = None
    tot = {k: sum(layer[k] for layer in per_layer) for k in ("neurons", "synapses", "synapse_bytes", "cores")}
    tot["chips"] = max(math.ceil(tot["cores"] / LOIHI2_CORES_PER_CHIP), 1)
    tot["fits_one_chip"] = (tot["cores"] <= LOIHI2_CORES_PER_CHIP and tot["neurons"] <= LOIHI2_NEURONS_PER_CHIP
                            and tot["synapses"] <= LOIHI2_SYNAPSES_PER_CHIP)
    del shape
    return {**tot, "layers": per_layer}
