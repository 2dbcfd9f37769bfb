"""Loihi 2 deployment through Lava: train what Loihi runs, export it, verify it in Lava's simulator.

- :mod:`.qat`: Loihi's fixed-point grids, quantisation-aware layers (``qlinear``/``qconv2d``) and
  :func:`loihi_mlp_spec`, the ArchSpec of the Loihi-exact model family.
- :mod:`.ir`: :func:`extract` (torch model -> :class:`LoihiNet`), refusing what Loihi cannot run.
- :mod:`.reference`: our numpy reference of Lava's float and bit-accurate models.
- :mod:`.builder`: :func:`to_lava` / :func:`run_lava` (Lava processes, ``Loihi2SimCfg``).
- :mod:`.netx`: lava-dl netx HDF5 writer/reader.
- :mod:`.verify`: float/fixed/accuracy checks used by ``neurosynth export loihi --verify``.
- :mod:`.compat`: the Python 3.11 import fix for lava-nc 0.10.0.

Importing this package never imports Lava; the functions that need it import it through
:mod:`.compat` (and raise ``MissingExtraError`` when lava-nc is not installed).
"""

from .builder import LavaGraph, LavaResult, build_graph, run_lava, to_lava
from .compat import import_lava, lava_available
from .ir import LoihiExportError, LoihiLayer, LoihiNet, NeuronParams, check_fixed, extract
from .netx import read_netx, validate_netx, write_netx
from .qat import QConv2d, QLinear, loihi_mlp_spec, loihi_neuron_entry, quantize_weight
from .reference import simulate
from .verify import verify

__all__ = [
    "LavaGraph", "LavaResult", "LoihiExportError", "LoihiLayer", "LoihiNet", "NeuronParams", "QConv2d", "QLinear",
    "build_graph", "check_fixed", "extract", "import_lava", "lava_available", "loihi_mlp_spec", "loihi_neuron_entry",
    "quantize_weight", "read_netx", "run_lava", "simulate", "to_lava", "validate_netx", "verify", "write_netx",
]
