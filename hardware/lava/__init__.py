"""Loihi 2 deployment through Lava: train what Loihi runs, export it, verify it in Lava's simulator.

- :mod:`.qat`: Loihi's fixed-point grids, quantisation-aware layers (``qlinear``/``qconv2d``/``qrecurrent``,
  ``qsumpool``) and the ArchSpecs of the Loihi-exact model family (:func:`loihi_mlp_spec`,
  :func:`loihi_rsnn_spec` for recurrent networks, :func:`loihi_pooled_conv_spec` for pooled conv networks).
- :mod:`.ir`: :func:`extract` (torch model -> :class:`LoihiNet`), refusing what Loihi cannot run.
- :mod:`.reference`: our numpy reference of Lava's float and bit-accurate models.
- :mod:`.builder`: :func:`to_lava` / :func:`run_lava` (Lava processes, ``Loihi2SimCfg``).
- :mod:`.netx`: lava-dl netx HDF5 writer/reader.
- :mod:`.verify`: float/fixed/accuracy checks used by ``neurosynth export loihi --verify``.
- :mod:`.compat`: the Python 3.11 import fix for lava-nc 0.10.0.

Importing this package never imports Lava; the functions that need it import it through
:mod:`.compat` (and raise ``MissingExtraError`` when lava-nc is not installed).
"""

from __future__ import annotations

import importlib

# public name -> submodule; resolved on first access so that `neurosynth --help` (which imports
# neurosynth.apps.cli.export_loihi) stays free of torch/numpy/Lava imports.
_EXPORTS = {
    "LavaGraph": "builder", "LavaResult": "builder", "build_graph": "builder", "run_lava": "builder",
    "to_lava": "builder", "replicate": "builder",
    "import_lava": "compat", "lava_available": "compat",
    "LoihiExportError": "ir", "LoihiLayer": "ir", "LoihiNet": "ir", "NeuronParams": "ir", "check_fixed": "ir",
    "extract": "ir",
    "read_netx": "netx", "validate_netx": "netx", "write_netx": "netx",
    "QConv2d": "qat", "QLinear": "qat", "loihi_mlp_spec": "qat", "loihi_conv_spec": "qat", "loihi_neuron_entry": "qat",
    "quantize_weight": "qat", "QRecurrent": "qat", "SumPoolConv": "qat", "loihi_rsnn_spec": "qat",
    "loihi_pooled_conv_spec": "qat", "scale_synapses": "qat",
    "simulate": "reference",
    "verify": "verify", "export_verified": "verify", "verify_samples": "verify", "exportable": "verify",
    "layer_summary": "verify",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
