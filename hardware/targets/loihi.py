r"""The Loihi 2 target (Lava / lava-dl netx): its number grids, what it runs, its resource model, its lowering.

**Grids** (Loihi 2 and Lava's bit-accurate ``LIF``/``Dense``/``Conv``; ``docs/hardware_lava.md``):

- weights: 8-bit integers on a 64x grid: the exported integer ``64 w`` is an *even* integer in ``[-256, 254]``
  (:data:`W_SCALE`, :data:`W_STEP`, :data:`W_MIN`, :data:`W_MAX`; the straight-through quantiser and the QAT
  layers ``qlinear``/``qconv2d``/``qrecurrent``/``qsumpool`` are in :mod:`.loihi_qat`, imported only when a spec
  is built, since they need torch);
- thresholds: ``vThMant = 64 * threshold`` (17-bit unsigned, ``1 .. 131071``);
- decays: 12-bit fractions of 4096: ``iDecay = 4096 (1 - alpha)`` (``1 .. 4096``), ``vDecay = 4096 (1 - beta)``
  (``0 .. 4095``).

**What it runs.** netx networks are *sequential* (``layer/0..n-1``; ``pool``/``concat`` are not implemented),
Lava's ``LIF`` resets to zero and every ``Dense``/``Conv`` delays its output by one step. So a lowered network is
a chain ``[qconv2d|qlinear -> delay(1) -> LIF|CubaLIF(reset zero)]``, binary spikes between all layers, no bias,
no batch norm, downsampling by a strided convolution, a spiking readout.

**Resource model** (:func:`loihi2_resources`), published figures only:

* 128 neuromorphic cores per chip; up to 1 million neurons and 120 million synapses per chip
  (Intel Labs, *Loihi 2 technology brief*, 2021, as summarised by Open Neuromorphic,
  https://open-neuromorphic.org/neuromorphic-computing/hardware/loihi-2-intel/);
* 8x Loihi 1's 1,024 neurons per core, i.e. 8,192 neurons per core (= 1 M / 128), and 128 KB of
  flexibly partitioned local SRAM per core (same brief, as reported at
  https://fbhtechinfo.com/intels-new-loihi-2-chip-uses-1-million-neurons).

Per layer (a layer is never packed into a core together with another layer: the simple placement Lava's compiler
uses per process): ``neurons = prod(out_shape)``; ``synapses = neurons x fan_in`` (dense storage, an upper bound:
Loihi 2's weight sharing for convolutions would need less); ``synapse_bits = 8 x synapses``;
``cores = max(ceil(neurons / 8192), ceil(synapse_bits / (128 KB x 8)))``. A recurrent layer (``qrecurrent``, netx
``dense_rec``) adds its ``neurons x neurons`` recurrent synapses to the feed-forward ones; a sum-pooling layer
(``qsumpool``, a depthwise convolution) has a fan-in of ``kernel_size**2``; a synapse with a learned delay
(``qdelayed_linear``, Lava ``DelayDense``) stores 6 more bits for its delay (0..62 steps). The 128 KB is the whole core's SRAM, so
the core count is a *lower* bound for the synaptic memory term. An estimate for comparing candidates, not a
compiler result.

**Energy**: the ``loihi`` cost model of ``neurosynth.hardware.energy`` (per-op figures of Loihi 1).
**Export**: ``neurosynth export loihi`` (``neurosynth.hardware.lava.verify.export_verified``).
"""

from __future__ import annotations

import math

from .base import TARGETS, Target
from .loihi_grids import (  # noqa: F401  (re-exported: the target's grids)
    DECAY_UNITY,
    TH_SCALE,
    VTH_MAX,
    W_MAX,
    W_MIN,
    W_SCALE,
    W_STEP,
    i_decay,
    snap,
    snap_alpha,
    snap_beta,
    snap_threshold,
    threshold_mant,
    v_decay,
)


def quantize(w):
    """Weights on Loihi's 8-bit grid, straight-through gradient (:func:`.loihi_qat.quantize_weight`)."""
    from .loihi_qat import quantize_weight

    return quantize_weight(w)


def register_layers() -> bool:
    """Register ``qlinear``/``qconv2d``/``qrecurrent``/``qsumpool`` in ``neurosynth.arch.LAYERS`` (idempotent)."""
    from . import loihi_qat

    return loihi_qat.register_layers()


# ----------------------------------------------------------------------------- resources
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
_CONV = ("conv2d", "qconv2d")
_LINEAR = ("linear", "qlinear")
#: bits of a synaptic delay of Lava's DelayDense (delays 0..62 steps, netx clips to [0, 62])
LOIHI2_DELAY_BITS = 6


def _kernel_area(k) -> int:
    kh, kw = (k, k) if isinstance(k, int) else k
    return int(kh) * int(kw)


def loihi2_resources(seq_spec: dict) -> dict:
    """Loihi 2 resource estimate of a lowered (sequential) spec: neurons, synapses, synaptic memory, cores, chips."""
    per_layer = []
    fan_in, bits = 0, LOIHI2_WEIGHT_BITS  # of the synapse layer waiting for its neurons

    def add(n: int, syn: int) -> None:
        b = syn * bits
        cores = max(math.ceil(n / LOIHI2_NEURONS_PER_CORE), math.ceil(b / (LOIHI2_SRAM_BYTES_PER_CORE * 8)), 1)
        per_layer.append({"neurons": n, "synapses": syn, "synapse_bytes": math.ceil(b / 8), "cores": cores})

    for layer in seq_spec["layers"]:
        ty = layer["type"]
        if ty in _CONV:
            fan_in = layer["in_channels"] * _kernel_area(layer["kernel_size"]) // int(layer.get("groups", 1))
        elif ty == "qsumpool":  # depthwise: one input channel per output channel
            fan_in = _kernel_area(layer["kernel_size"])
        elif ty in _LINEAR:
            fan_in = int(layer["in_features"])
        elif ty == "qdelayed_linear":
            fan_in, bits = int(layer["in_features"]), LOIHI2_WEIGHT_BITS + LOIHI2_DELAY_BITS
        elif ty == "qrecurrent":  # the neurons and their 8-bit recurrent synapses (netx dense_rec) in one layer
            n = int(layer["size"])
            add(n, n * fan_in + n * n)
            fan_in, bits = 0, LOIHI2_WEIGHT_BITS
        elif ty == "neuron":
            n = math.prod(layer["shape"])
            add(n, n * fan_in)
            fan_in, bits = 0, LOIHI2_WEIGHT_BITS
    tot = {k: sum(layer[k] for layer in per_layer) for k in ("neurons", "synapses", "synapse_bytes", "cores")}
    tot["chips"] = max(math.ceil(tot["cores"] / LOIHI2_CORES_PER_CHIP), 1)
    tot["fits_one_chip"] = (tot["cores"] <= LOIHI2_CORES_PER_CHIP and tot["neurons"] <= LOIHI2_NEURONS_PER_CHIP
                            and tot["synapses"] <= LOIHI2_SYNAPSES_PER_CHIP)
    return {**tot, "layers": per_layer}


LOIHI = TARGETS.add("loihi", Target(
    name="loihi", description="Intel Loihi 2 via Lava / lava-dl netx (8-bit weights, 12-bit decays, zero-reset LIF)",
    neurons=("lif", "cubalif"), edge_types=("ff",), multi_output=False, max_inputs=1, readouts=("spiking",),
    input="spikes", synapse=("qconv2d", "qlinear"), synapse_delay=1, downsample="strided_conv", snap=snap,
    quantize=quantize, resources=loihi2_resources, cost_model="loihi", exporter="loihi",
    register_layers=register_layers))
