"""Per-operation energy costs as data, each with its published source.

A :class:`CostModel` prices three kinds of work counted by :mod:`.counters`: a multiply-accumulate (MAC,
real-valued input), an accumulate (AC, a synaptic operation triggered by a spike) and a neuron state update.
``None`` means *no published figure*: the estimate then lists that term as unpriced instead of inventing one.

Sources
-------
- M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, pp. 10-14: 45 nm, 0.9 V.
  FP32 add 0.9 pJ, FP32 multiply 3.7 pJ (so MAC = 4.6 pJ, AC = 0.9 pJ, the constants SNN papers use);
  INT8 add 0.03 pJ, INT8 multiply 0.2 pJ. Arithmetic only: memory access and data movement are excluded,
  which makes the "ANN on a GPU-class MAC" figure a lower bound for a real GPU.
- M. Davies et al., "Loihi: A Neuromorphic Manycore Processor with On-Chip Learning", IEEE Micro 38(1):82-99,
  2018, Table 2: energy per synaptic spike op (min) 23.6 pJ, synaptic update 120 pJ, neuron update 81 pJ
  (active) / 52 pJ (inactive), within-tile spike 1.7 pJ, tile hop 3.0 (E-W) / 4.0 (N-S) pJ, at 0.75 V.
  The table is labelled pre-silicon (SDF/SPICE simulation), and the synaptic figure is a minimum. We could
  not open the primary PDF in this session; the values are as reproduced from Table 2 by several
  independent secondary sources, which agree with each other. We charge every neuron update at the
  *active* figure (81 pJ, the upper of the two).
- Loihi 2 (Intel, "Taking Neuromorphic Computing to the Next Level with Loihi 2", technology brief, 2021;
  Orchard et al., SiPS 2021): Intel publishes task-level energy and energy-delay products for Loihi 2, but no
  per-synaptic-operation or per-neuron-update energy that we could find. Its cost model therefore has no
  figures, and any estimate against it reports every term as unpriced.
"""

from __future__ import annotations

import dataclasses

from neurosynth.registry import Registry


@dataclasses.dataclass(frozen=True)
class CostModel:
    """Energy per operation in picojoules (``None``: not published) and where each number comes from."""

    name: str
    description: str
    e_mac_pj: float | None
    e_ac_pj: float | None
    e_neuron_update_pj: float | None
    source: str
    notes: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


COST_MODELS: Registry[CostModel] = Registry("cost model")

HOROWITZ = "M. Horowitz, Computing's energy problem (and what we can do about it), ISSCC 2014 (45 nm, 0.9 V)"
DAVIES = "M. Davies et al., Loihi: A Neuromorphic Manycore Processor with On-Chip Learning, IEEE Micro 38(1), 2018, Table 2"

CMOS45_FP32 = COST_MODELS.add("cmos45_fp32", CostModel(
    name="cmos45_fp32", description="45 nm CMOS, FP32 arithmetic (GPU-class MAC)",
    e_mac_pj=4.6, e_ac_pj=0.9, e_neuron_update_pj=None, source=HOROWITZ,
    notes="MAC = FP32 mult 3.7 + add 0.9 pJ; AC = FP32 add 0.9 pJ. Arithmetic only (no memory access), so a "
          "lower bound for a real GPU. Neuron updates are not priced."))

CMOS45_INT8 = COST_MODELS.add("cmos45_int8", CostModel(
    name="cmos45_int8", description="45 nm CMOS, INT8 arithmetic",
    e_mac_pj=0.23, e_ac_pj=0.03, e_neuron_update_pj=None, source=HOROWITZ,
    notes="MAC = INT8 mult 0.2 + add 0.03 pJ; AC = INT8 add 0.03 pJ. Arithmetic only."))

LOIHI = COST_MODELS.add("loihi", CostModel(
    name="loihi", description="Intel Loihi (14 nm), pre-silicon per-op figures",
    e_mac_pj=None, e_ac_pj=23.6, e_neuron_update_pj=81.0, source=DAVIES,
    notes="23.6 pJ = 'energy per synaptic spike op (min)'; neuron update 81 pJ active (52 pJ inactive, not "
          "used). Pre-silicon simulation at 0.75 V; spike routing (1.7 pJ within tile, 3-4 pJ per hop) is not "
          "included. Loihi takes spikes, so real-valued MAC inputs are not priced."))

LOIHI2 = COST_MODELS.add("loihi2", CostModel(
    name="loihi2", description="Intel Loihi 2 (Intel 4): no per-op energy published",
    e_mac_pj=None, e_ac_pj=None, e_neuron_update_pj=None,
    source="Intel, Taking Neuromorphic Computing to the Next Level with Loihi 2, technology brief, 2021",
    notes="Intel reports Loihi 2 results as task-level energy / energy-delay product only; no per-synaptic-op "
          "or per-neuron-update figure is published as far as we found, so none is assumed here."))


def get_cost_model(name_or_model: str | CostModel) -> CostModel:
    if isinstance(name_or_model, CostModel):
        return name_or_model
    return COST_MODELS.get(name_or_model)
