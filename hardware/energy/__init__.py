"""Operation counts (NeuroBench definitions) and energy estimates from published per-operation costs.

``count_ops(model, x) -> OpCounts`` counts per inference; ``snn_energy`` / ``ann_energy`` / ``compare`` price
the counts with a :class:`CostModel` from :data:`COST_MODELS` (``cmos45_fp32``, ``cmos45_int8``, ``loihi``,
``loihi2``). See :mod:`.counters` and :mod:`.cost_models` for the definitions and sources.
"""

from .cost_models import COST_MODELS, CostModel, get_cost_model
from .counters import COUNT_RULES, LayerCounts, OpCounts, count_ops, count_ops_loader, is_binary, param_bytes
from .estimate import EnergyEstimate, ann_energy, compare, snn_energy

__all__ = ["COST_MODELS", "COUNT_RULES", "CostModel", "EnergyEstimate", "LayerCounts", "OpCounts", "ann_energy",
           "compare", "count_ops", "count_ops_loader", "get_cost_model", "is_binary", "param_bytes", "snn_energy"]
