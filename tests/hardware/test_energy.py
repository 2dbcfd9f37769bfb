"""Operation counts on hand-computed networks, and energy arithmetic against the published constants."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from neurosynth.hardware.energy import (
    COST_MODELS,
    ann_energy,
    compare,
    count_ops,
    count_ops_loader,
    snn_energy,
)
from neurosynth.layers import SNN
from neurosynth.neurons import LI, LIF


def _hand_net() -> SNN:
    fc1 = nn.Linear(3, 2)
    fc2 = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        fc1.weight.copy_(torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]]))  # fan-outs 1, 0, 2; 3 zero weights
        fc1.bias.zero_()
        fc2.weight.copy_(torch.tensor([[1.0, -1.0]]))
    return SNN(fc1, LIF(beta=0.5, threshold=2.5, reset="zero"), fc2, LI(beta=0.9))


# x[t, b]: sample 0 spikes on inputs {0, 2} then {1, 2}; sample 1 is silent
X = torch.tensor([[[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]],
                  [[0.0, 1.0, 1.0], [0.0, 0.0, 0.0]]])


def test_counts_match_hand_computation():
    c = count_ops(_hand_net(), X[:, :1])
    # layer 1: t0 inputs {0,2} -> fan-out 1+2 = 3, t1 inputs {1,2} -> 0+2 = 2;  W x = [3,3] then [2,3]:
    # LIF (thr 2.5, zero reset) spikes [1,1] then [0,1] -> layer 2: 2 + 1 = 3 ACs
    assert [layer.kind for layer in c.layers] == ["synapse", "neuron", "synapse", "readout"]
    assert [layer.ac_ops for layer in c.layers] == [5, 0, 3, 0]
    assert c.syn_ops == 8 and c.eff_macs == 0
    assert c.dense_ops == 2 * (3 * 2) + 2 * (2 * 1)
    assert c.ann_macs == 3 * 2 + 2 * 1
    assert c.neuron_updates == 2 * 2 + 2 * 1  # T x neurons, readout included
    assert c.spikes == 3
    assert c.activation_sparsity == pytest.approx(1 - 3 / 4)
    assert c.connection_sparsity == pytest.approx(3 / 8)
    # footprint: fc1 6+2, fc2 2, LIF beta+threshold, LI beta -> 13 float32
    assert c.param_bytes == 13 * 4


def test_counts_are_per_sample_averages():
    c = count_ops(_hand_net(), X)  # sample 1 is silent: it adds dense work and neuron updates but no ACs
    assert c.samples == 2 and c.timesteps == 2
    assert c.syn_ops == 8 / 2
    assert c.dense_ops == 16  # dense work is the same for every sample
    assert c.neuron_updates == 6
    assert c.activation_sparsity == pytest.approx(1 - 3 / 8)
    assert sum(layer.ac_ops for layer in c.layers) == 8  # totals stay exact integers


def test_real_valued_input_counts_macs_not_acs():
    c = count_ops(_hand_net(), X[:, :1] * 0.5)
    assert c.layers[0].mac_ops == 5 and c.layers[0].ac_ops == 0
    assert c.eff_macs == 5


def test_conv_counts_match_hand_computation():
    conv = nn.Conv2d(1, 2, 2, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.weight[0, 0, 0, 0] = 0.0  # one zero synapse in output channel 0
    model = SNN(conv, LIF(reset="zero"))
    x = torch.zeros(1, 1, 1, 3, 3)
    x[0, 0, 0, 0, 0] = 1.0  # one spike in the corner
    c = count_ops(model, x)
    # with full padding every input pixel reaches k*k = 4 output positions per channel; the corner spike meets
    # the zero weight at exactly one of them in channel 0 -> 4 + 3 = 7 effective ACs
    assert c.syn_ops == 7
    # dense: 9 pixels x 4 taps x 2 channels (padded positions are not operations, as in NeuroBench)
    assert c.dense_ops == 72 and c.ann_macs == 72
    assert c.neuron_updates == 2 * 4 * 4
    assert c.connection_sparsity == pytest.approx(1 / 8)


def test_syn_ops_equal_spikes_times_fanout_on_a_random_network():
    gen = torch.Generator().manual_seed(0)
    fc1, fc2 = nn.Linear(20, 30), nn.Linear(30, 5)
    with torch.no_grad():
        for fc in (fc1, fc2):
            fc.weight.copy_(torch.randn(fc.weight.shape, generator=gen))
            fc.weight[torch.rand(fc.weight.shape, generator=gen) < 0.3] = 0  # pruned synapses
    model = SNN(fc1, LIF(beta=0.8, reset="zero"), fc2, LIF(beta=0.8, reset="zero"))
    x = (torch.rand(25, 7, 20, generator=gen) < 0.2).float()
    c = count_ops(model, x)
    with torch.no_grad():
        _, rec = model(x, record=True)
    fan1, fan2 = (fc1.weight != 0).sum(0), (fc2.weight != 0).sum(0)
    expected = int((x.sum((0, 1)) * fan1).sum() + (rec["1"].sum((0, 1)) * fan2).sum())
    assert sum(layer.ac_ops for layer in c.layers) == expected
    assert c.spikes * 7 == int(rec["1"].sum() + rec["3"].sum())


def test_loader_counts_merge_batches():
    model = _hand_net()
    whole = count_ops(model, X)
    parts = count_ops_loader(model, [(X[:, :1], None), (X[:, 1:], None)])
    assert parts.summary() == whole.summary()
    limited = count_ops_loader(model, [(X, None), (X, None)], max_samples=1)
    assert limited.samples == 1 and limited.syn_ops == 8


def test_energy_uses_the_published_constants():
    c = count_ops(_hand_net(), X[:, :1])  # 8 ACs, 0 MACs, 6 neuron updates, 8 ANN MACs
    loihi = snn_energy(c, "loihi")
    assert loihi.terms_j["synaptic_ACs"] == pytest.approx(8 * 23.6e-12)
    assert loihi.terms_j["neuron_updates"] == pytest.approx(6 * 81e-12)
    assert loihi.total_j == pytest.approx(8 * 23.6e-12 + 6 * 81e-12) and loihi.complete
    cmos = snn_energy(c, "cmos45_fp32")
    assert cmos.total_j == pytest.approx(8 * 0.9e-12)
    assert cmos.unpriced == ("neuron_updates",) and not cmos.complete
    ann = ann_energy(c, "cmos45_fp32")
    assert ann.total_j == pytest.approx(8 * 4.6e-12) and ann.complete
    none = snn_energy(c, "loihi2")  # no per-op figure is published for Loihi 2: nothing is invented
    assert none.total_j == 0 and set(none.unpriced) == {"synaptic_ACs", "neuron_updates"}
    report = compare(c)
    assert report["ann_over_snn"] == pytest.approx(ann.total_j / loihi.total_j)
    assert {m["cost_model"] for m in report["snn_other_cost_models"]} == {"cmos45_fp32", "loihi2"}


def test_cost_models_cite_their_sources():
    for name, cm in COST_MODELS.items():
        assert cm.source and cm.name == name
    fp32 = COST_MODELS.get("cmos45_fp32")
    assert (fp32.e_mac_pj, fp32.e_ac_pj) == (4.6, 0.9) and "Horowitz" in fp32.source
    loihi = COST_MODELS.get("loihi")
    assert loihi.e_ac_pj == 23.6 and "IEEE Micro" in loihi.source
    assert COST_MODELS.get("loihi2").e_ac_pj is None
    with pytest.raises(ValueError, match="unknown cost model"):
        COST_MODELS.get("tpu")


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match=r"time-first"):
        count_ops(_hand_net(), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="no layer with a counting rule"):
        count_ops(nn.Sequential(nn.ReLU()), torch.zeros(2, 1, 3))
    assert math.isnan(count_ops(SNN(nn.Linear(3, 2)), X).activation_sparsity)


def test_recurrent_layer_counts_feedback_synapses_and_updates():
    from neurosynth.layers import Recurrent

    gen = torch.Generator().manual_seed(1)
    fc, rec = nn.Linear(6, 5, bias=False), Recurrent(5, "lif", beta=0.9, reset="zero")
    with torch.no_grad():
        fc.weight.copy_(torch.rand(5, 6, generator=gen) * 0.8)
        rec.rec.weight.copy_(torch.randn(5, 5, generator=gen) * 0.5)
        rec.rec.weight[0, 1] = 0.0
    model = SNN(fc, rec)
    x = (torch.rand(12, 3, 6, generator=gen) < 0.5).float()
    c = count_ops(model, x)
    with torch.no_grad():
        s = model(x)
    fan = (rec.rec.weight != 0).sum(0)
    prev = torch.cat([torch.zeros_like(s[:1]), s[:-1]])  # the recurrent synapses carry s[t-1]
    by_name = {layer.name: layer for layer in c.layers}
    assert by_name["1.rec"].ac_ops == int((prev.sum((0, 1)) * fan).sum())
    assert by_name["1"].neuron_updates == 12 * 3 * 5 and by_name["1"].spikes == int(s.sum())
    assert by_name["1.rec"].dense_ops_per_step == 25 and by_name["1.rec"].calls == 12


def test_quantised_layers_are_counted_with_the_weights_they_compute_with():
    qat = pytest.importorskip("neurosynth.hardware.lava.qat")
    from neurosynth.arch import build

    torch.manual_seed(0)
    model = build(qat.loihi_mlp_spec(12, [10], 4))
    with torch.no_grad():
        model[0].weight.mul_(0.05)  # many shadow weights now round to 0 on the 1/64 grid
    wq = model[0].effective_weight()
    assert int((wq == 0).sum()) > int((model[0].weight == 0).sum())
    x = (torch.rand(6, 2, 12, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    c = count_ops(model, x)
    assert c.layers[0].zero_weights == int((wq == 0).sum())
    assert c.layers[0].ac_ops == int((x.sum((0, 1)) * (wq != 0).sum(0)).sum())


@pytest.mark.parametrize("make", [
    lambda: nn.Linear(30, 20),
    lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1),
    lambda: nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2, bias=False),
    lambda: nn.Conv1d(2, 5, 4, padding=1),
], ids=["linear", "conv2d", "conv2d_dilated_grouped", "conv1d"])
@pytest.mark.parametrize("spiking", [True, False], ids=["spikes", "real"])
def test_layer_counts_equal_neurobench(make, spiking):
    """Effective and dense synaptic operations equal NeuroBench 2.3's own ``single_layer_MACs``."""
    nb = pytest.importorskip("neurobench.metrics.utils.layers")
    gen = torch.Generator().manual_seed(0)
    layer = make()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen))
        layer.weight[torch.rand(layer.weight.shape, generator=gen) < 0.4] = 0
    shape = {nn.Linear: (30,), nn.Conv2d: (getattr(layer, "in_channels", 0), 9, 9), nn.Conv1d: (2, 11)}[type(layer)]
    x = (torch.rand(4, 3, *shape, generator=gen) < 0.3).float()  # [T, B, ...]
    if not spiking:
        x = x * torch.rand(x.shape, generator=gen)
    c = count_ops(SNN(layer), x).layers[0]  # SNN applies the layer to the [T*B, ...] view
    eff = sum(nb.single_layer_MACs(x[t], layer)[0] for t in range(4))
    dense = sum(nb.single_layer_MACs(x[t], layer, total=True)[0] for t in range(4))
    assert (c.ac_ops if spiking else c.mac_ops) == eff and c.dense_ops == dense
    assert (c.mac_ops if spiking else c.ac_ops) == 0



def test_ann_counts_without_a_time_axis():
    fc1, fc2 = nn.Linear(3, 2), nn.Linear(2, 2)
    with torch.no_grad():
        fc1.weight.copy_(torch.tensor([[1.0, 0.0, 2.0], [-1.0, 0.0, -3.0]]))
        fc1.bias.zero_()
        fc2.weight.fill_(1.0)
    ann = nn.Sequential(fc1, nn.ReLU(), fc2)
    c = count_ops(ann, torch.tensor([[0.5, 0.0, 0.5]]), time_first=False)
    # fc1: inputs 0 and 2 are non-zero, fan-outs 2 and 2 -> 4 MACs; ReLU keeps unit 0 (1.5) -> fc2: 1 x 2 = 2 MACs
    # (had unit 0 been exactly 1.0, NeuroBench's rule would call fc2's input binary and count ACs)
    assert c.timesteps == 1 and c.eff_macs == 6 and c.syn_ops == 0
    assert c.ann_macs == 3 * 2 + 2 * 2 and c.neuron_updates == 0
