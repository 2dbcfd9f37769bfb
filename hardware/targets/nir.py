"""The ``nir`` target: the Neuromorphic Intermediate Representation (``neurosynth export nir``).

The same sequential chain as :mod:`.loihi` with float weights (``conv2d``/``linear`` without bias, no synaptic
delay) and 2x2 sum pooling (``sumpool2d``, a NIR primitive) for downsampling. Neuron parameters sit on Loihi's
grids (:func:`.loihi.snap`), so one searched spec deploys to either target; the resource estimate is Loihi 2's
(:func:`.loihi.loihi2_resources`), the chip a NIR graph is most often run on here.
"""

from __future__ import annotations

from .base import TARGETS, Target
from .loihi import loihi2_resources, snap

NIR = TARGETS.add("nir", Target(
    name="nir", description="NIR graph (float weights, sum pooling), runs on any NIR backend",
    neurons=("lif", "cubalif"), edge_types=("ff",), multi_output=False, max_inputs=1, readouts=("spiking",),
    input="spikes", synapse=("conv2d", "linear"), synapse_delay=0, downsample="sumpool", snap=snap,
    resources=loihi2_resources, exporter="nir"))
