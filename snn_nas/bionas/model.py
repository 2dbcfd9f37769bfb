"""Derived BioNAS models as ArchSpecs: ``{"kind": "bionas", "plugin": "snn_nas.bionas.model", ...}``.

Importing this module registers the ``bionas`` builder in :data:`neurosynth.arch.ARCH_KINDS`, so
``neurosynth.rundir.load_run`` rebuilds a trained BioNAS model from ``arch.json`` without running code
from the file. Spec fields::

    {"format": "neurosynth.arch/1", "kind": "bionas", "plugin": "snn_nas.bionas.model",
     "space": "darts" | "nb201", "genotype": {...}, "C": 8, "layers": 5, "num_classes": 10,
     "input_shape": [1, 8, 8], "frame_rule": "bp"}
"""

from __future__ import annotations

import copy

import torch.nn as nn

from neurosynth.arch import ARCH_KINDS, FORMAT
from neurosynth.rules import RULES

from .networks import NETWORKS, finalize_rules
from .space import SPACES, CellSpace

PLUGIN = "snn_nas.bionas.model"
_FIELDS = {"format", "kind", "plugin", "space", "genotype", "C", "layers", "num_classes", "input_shape",
           "frame_rule", "name"}


def make_spec(genotype: dict, *, C: int = 8, layers: int = 5, num_classes: int = 10, input_shape=(1, 8, 8),
              frame_rule: str = "bp") -> dict:
    spec = {"format": FORMAT, "kind": "bionas", "plugin": PLUGIN, "space": genotype.get("space"),
            "genotype": copy.deepcopy(genotype), "C": int(C), "layers": int(layers), "num_classes": int(num_classes),
            "input_shape": [int(v) for v in input_shape], "frame_rule": frame_rule}
    validate_spec(spec)
    return spec


def validate_spec(spec: dict) -> dict:
    extra = set(spec) - _FIELDS
    if extra:
        raise ValueError(f"bionas spec has unknown fields {sorted(extra)}; allowed: {sorted(_FIELDS)}")
    if spec.get("space") not in SPACES:
        raise ValueError(f"bionas spec: 'space' must be one of {SPACES}, got {spec.get('space')!r}")
    for k in ("C", "layers", "num_classes"):
        v = spec.get(k)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"bionas spec: '{k}' must be a positive integer, got {v!r}")
    if spec["C"] % 2 and spec["space"] == "darts":
        raise ValueError(f"bionas spec: 'C' must be even for DARTS cells (FactorizedReduce), got {spec['C']}")
    shape = spec.get("input_shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and v > 0 for v in shape)):
        raise ValueError(f"bionas spec: 'input_shape' must be [channels, height, width], got {shape!r}")
    if spec.get("frame_rule", "bp") not in RULES:
        raise ValueError(f"bionas spec: unknown frame_rule {spec.get('frame_rule')!r}; registered: {RULES.names()}")
    CellSpace(spec["space"]).validate(spec.get("genotype"))
    return spec


def build_model(spec: dict) -> nn.Module:
    validate_spec(spec)
    space = CellSpace(spec["space"])
    net = NETWORKS[spec["space"]](space, spec["genotype"], spec["C"], spec["num_classes"], spec["layers"],
                                  spec["input_shape"][0], spec.get("frame_rule", "bp"))
    finalize_rules(net, spec["num_classes"])
    net.arch_spec = copy.deepcopy(spec)
    return net


ARCH_KINDS.register("bionas", overwrite=True)(build_model)
