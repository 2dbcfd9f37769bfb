"""Hardware targets as data: one module per target (:mod:`.float_`, :mod:`.loihi`, :mod:`.nir`), each adding a
frozen :class:`~.base.Target` to :data:`TARGETS` (see :mod:`.base`). Light: no torch, Lava or NIR import.

A new target is one module here (its ``Target`` entry, and its layer types if it has its own), one import line
below, and one line under ``[project.entry-points."neurosynth.targets"]`` in ``pyproject.toml`` when its lowered
specs use layer types of their own (so that saved runs naming it load in a fresh process).
"""

from . import float_, loihi, nir  # noqa: F401  (each registers its target)
from .base import (
    DEPLOY_PARAMS,
    TARGETS,
    Target,
    downsample_layers,
    exporter_for,
    exporters,
    get_target,
    neuron_entry,
    register_layers,
    sequential_spec,
    synapse_layers,
    target_of,
)

__all__ = ["DEPLOY_PARAMS", "TARGETS", "Target", "downsample_layers", "exporter_for", "exporters", "get_target", "neuron_entry",
           "register_layers", "sequential_spec", "synapse_layers", "target_of"]
