"""The stateful API: ``spk, state = neuron.step(x_t, state)``, chunked streaming through
``SNN.forward(x, state=..., return_state=True)`` and ``record="spikes" | "membrane" | "all"``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import neurosynth as ns
from neurosynth.layers import SNN, Delay, Recurrent


def _x(T=24, B=3, N=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(T, B, N, generator=g) * 0.9


@pytest.mark.parametrize("neuron", [
    ns.LIF(beta=0.8, threshold=0.5), ns.LIF(beta=0.8, threshold=0.5, reset="zero", reset_delay=False),
    ns.LIF(beta=0.8, threshold=0.5, reset_delay=True), ns.IF(threshold=0.7),
    ns.CubaLIF(alpha=0.6, beta=0.8, threshold=0.5), ns.ALIF(beta=0.85, threshold=0.4), ns.LI(beta=0.7)],
    ids=["lif", "lif-zero", "lif-delay", "if", "cubalif", "alif", "li"])
def test_step_loop_equals_run(neuron):
    x = _x()
    whole, st_whole, _ = neuron.run(x)
    state = None
    outs = []
    for t in range(x.shape[0]):
        spk, state = neuron.step(x[t], state)
        outs.append(spk)
    assert torch.equal(torch.stack(outs), whole)
    for a, b in zip(state, st_whole):
        torch.testing.assert_close(a.float(), b.float(), rtol=0, atol=0)
    assert whole.abs().sum() > 0


def test_step_is_differentiable_and_snntorch_like():
    lif = ns.LIF(beta=0.9, threshold=0.5, learn_beta=True)
    x = _x().requires_grad_()
    spk, mem = lif.step(x[0])
    assert isinstance(mem, lif.State) and spk.shape == x[0].shape
    spk, mem = lif.step(x[1], mem)
    (spk.sum() + mem.v.sum()).backward()
    assert x.grad is not None and lif.beta.grad is not None


def _net():
    torch.manual_seed(0)
    return SNN(nn.Linear(6, 8), ns.LIF(beta=0.85, threshold=0.4), Delay(2), nn.Linear(8, 7),
               Recurrent(7, "alif", beta=0.9, threshold=0.3), nn.Linear(7, 5), ns.CubaLIF(threshold=0.3),
               nn.Linear(5, 3), ns.LI(beta=0.8))


@pytest.mark.parametrize("backend", ["fused", "python"])
def test_chunked_streaming_equals_whole_sequence(backend):
    net = _net()
    for m in net.modules():
        if isinstance(m, ns.NeuronModel):
            m.backend = backend
    x = _x(T=30) * 2
    whole, rec = net(x, record="spikes")
    assert all(r.sum() > 0 for r in rec.values()), "every spiking layer should fire"
    state, outs = None, []
    for chunk in (x[:7], x[7:8], x[8:30]):
        out, state = net(chunk, state=state, return_state=True)
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs), whole, rtol=0, atol=1e-6)
    assert set(state) == {"1", "2", "4", "6", "8"}


def test_record_modes():
    net = _net()
    x = _x(T=10) * 2
    out = net(x)
    o1, spikes = net(x, record="spikes")
    o2, mem = net(x, record="membrane")
    o3, both, state = net(x, record="all", return_state=True)
    for o in (o1, o2, o3):
        assert torch.equal(o, out)
    assert set(spikes) == {"1", "4", "6"}
    assert set(mem) == {"1", "4", "6", "8"}
    assert both["spikes"].keys() == spikes.keys() and both["membrane"].keys() == mem.keys()
    assert torch.equal(mem["8"], out)  # LI: the membrane is the output
    # spikes are the membrane crossing the threshold (LIF layer 1, reset by subtraction)
    assert torch.equal(spikes["1"], (mem["1"] > 0.4).float())
    _, legacy = net(x, record=True)
    assert legacy.keys() == spikes.keys()
    with pytest.raises(ValueError):
        net(x, record="bogus")


def test_delay_streaming():
    d = Delay(3)
    x = torch.arange(10.0).view(10, 1, 1)
    whole = d(x)
    a, st, _ = d.run(x[:2])
    b, st, _ = d.run(x[2:], st)
    assert torch.equal(torch.cat([a, b]), whole)
