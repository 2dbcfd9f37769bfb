"""Shared builders for the Loihi tests (small networks with enough activity to exercise every path)."""

from __future__ import annotations

import torch

from neurosynth.arch import build
from neurosynth.hardware.targets import loihi_qat as qat


def mlp(n_in=20, hidden=(16,), n_out=6, *, alpha=0.0, beta=0.85, threshold=1.0, delay=True, gain=6.0, seed=0):
    torch.manual_seed(seed)
    spec = qat.loihi_mlp_spec(n_in, list(hidden), n_out, beta=beta, alpha=alpha, threshold=threshold, delay=delay)
    m = build(spec)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(gain)
    return m.eval(), spec


def convnet(*, seed=0, gain=8.0):
    torch.manual_seed(seed)
    spec = {"format": "neurosynth.arch/2", "kind": "sequential", "target": qat.TARGET, "input_shape": [2, 6, 6],
            "layers": [
                {"type": "qconv2d", "in_channels": 2, "out_channels": 4, "kernel_size": 3, "padding": 1,
                 "stride": [2, 1]},
                {"type": "delay", "steps": 1},
                qat.loihi_neuron_entry(beta=0.8, alpha=0.25),
                {"type": "qconv2d", "in_channels": 4, "out_channels": 4, "kernel_size": [2, 3], "groups": 2},
                {"type": "delay", "steps": 1},
                qat.loihi_neuron_entry(beta=0.9),
                {"type": "flatten"},
                {"type": "qlinear", "in_features": 4 * 2 * 4, "out_features": 5},
                {"type": "delay", "steps": 1},
                qat.loihi_neuron_entry(beta=0.9, alpha=0.5)]}
    m = build(spec)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(gain)
    return m.eval(), spec


def spikes(T, B, *shape, p=0.35, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((T, B, *shape), generator=g) < p).float()


def rsnn(n_in=20, hidden=16, n_out=5, *, alpha=0.3, seed=0, gain=6.0, layers=1):
    """A small Loihi-exact recurrent network ([qlinear -> delay -> qrecurrent] * layers -> qlinear -> delay -> LIF)."""
    torch.manual_seed(seed)
    spec = qat.loihi_rsnn_spec(n_in, hidden, n_out, alpha=alpha, beta=0.9, layers=layers)
    m = build(spec)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(gain)
    return m.eval(), spec


def pooled_convnet(*, seed=0, gain=6.0):
    """A small Loihi-exact conv network with sum pooling as a fixed strided depthwise conv."""
    torch.manual_seed(seed)
    spec = qat.loihi_pooled_conv_spec((2, 8, 8), [4], 12, 5, beta=0.85)
    m = build(spec)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (qat.QLinear, qat.QConv2d)) and not isinstance(mod, qat.SumPoolConv):
                mod.weight.mul_(gain)
    return m.eval(), spec
