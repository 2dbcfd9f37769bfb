"""Energy per inference = operation counts × per-operation costs (kept apart: counts are exact, costs are data).

``E_SNN = syn_ops · E_AC + eff_MACs · E_MAC + neuron_updates · E_neuron`` and
``E_ANN = ann_MACs · E_MAC`` (the same network evaluated once as a dense ANN). A term whose count is non-zero
but whose cost model has no published figure is listed in ``unpriced`` and left out of ``total_j``, which is
then a lower bound (``complete`` is False).
"""

from __future__ import annotations

import dataclasses

from .cost_models import CostModel, get_cost_model
from .counters import OpCounts

PJ = 1e-12


@dataclasses.dataclass(frozen=True)
class EnergyEstimate:
    """Joules per inference, by term."""

    system: str  # "snn" or "ann"
    cost_model: str
    terms_j: dict
    unpriced: tuple[str, ...]
    total_j: float
    source: str

    @property
    def complete(self) -> bool:
        return not self.unpriced

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "complete": self.complete}


def _price(terms: dict[str, tuple[float, float | None]], system: str, cm: CostModel) -> EnergyEstimate:
    priced, unpriced = {}, []
    for term, (count, cost_pj) in terms.items():
        if count == 0:
            continue
        if cost_pj is None:
            unpriced.append(term)
        else:
            priced[term] = count * cost_pj * PJ
    return EnergyEstimate(system, cm.name, priced, tuple(unpriced), float(sum(priced.values())), cm.source)


def snn_energy(counts: OpCounts, cost_model: str | CostModel = "loihi") -> EnergyEstimate:
    """Energy of the spiking network per inference on ``cost_model``."""
    cm = get_cost_model(cost_model)
    return _price({"synaptic_ACs": (counts.syn_ops, cm.e_ac_pj), "synaptic_MACs": (counts.eff_macs, cm.e_mac_pj),
                   "neuron_updates": (counts.neuron_updates, cm.e_neuron_update_pj)}, "snn", cm)


def ann_energy(counts: OpCounts, cost_model: str | CostModel = "cmos45_fp32") -> EnergyEstimate:
    """Energy of the equivalent ANN (one dense pass: ``ann_macs`` MACs) per inference on ``cost_model``."""
    cm = get_cost_model(cost_model)
    return _price({"MACs": (counts.ann_macs, cm.e_mac_pj)}, "ann", cm)


def compare(counts: OpCounts, snn_cost: str | CostModel = "loihi", ann_cost: str | CostModel = "cmos45_fp32",
            extra_snn_costs: tuple[str, ...] = ("cmos45_fp32", "loihi2")) -> dict:
    """SNN vs the equivalent ANN: counts, estimates on each cost model, and the ratio ``E_ANN / E_SNN``."""
    snn = snn_energy(counts, snn_cost)
    ann = ann_energy(counts, ann_cost)
    others = [snn_energy(counts, c) for c in extra_snn_costs if get_cost_model(c).name != snn.cost_model]
    ratio = ann.total_j / snn.total_j if snn.total_j > 0 and snn.complete and ann.complete else None
    return {"counts": counts.summary(), "snn": snn.to_dict(), "ann": ann.to_dict(),
            "snn_other_cost_models": [o.to_dict() for o in others], "ann_over_snn": ratio,
            "cost_models": {c.cost_model: get_cost_model(c.cost_model).to_dict() for c in [snn, ann, *others]}}
