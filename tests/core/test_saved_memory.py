"""What the fused ops keep for backward: no spike train (the backward recomputes the 0/1 masks from the saved
pre-reset membrane ``h``), so storing spikes compactly (uint8/bool) would save nothing there; the recurrent op
keeps its spikes only as its own output (the same storage the next layer holds), never as an extra copy."""

from __future__ import annotations

import pytest
import torch

from neurosynth.layers import Recurrent
from neurosynth.neurons import ALIF, LIF, CubaLIF

T, B, N = 6, 3, 5


def _saved(module, x):
    held = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: (held.append(t), t)[1], lambda t: t):
        out = module(x)
    return out, held


def _spike_trains(held):
    return [t for t in held if t.is_floating_point() and tuple(t.shape) == (T, B, N) and bool(((t == 0) | (t == 1)).all())]


@pytest.mark.parametrize("neuron", [
    LIF(beta=0.9, threshold=0.5, reset="subtract"), LIF(beta=0.9, threshold=0.5, reset="zero"),
    CubaLIF(alpha=0.5, beta=0.9, threshold=0.5), ALIF(beta=0.9, threshold=0.5, adapt_decay=0.9, adapt_scale=0.2)],
    ids=["lif-subtract", "lif-zero", "cubalif", "alif"])
def test_fused_neurons_save_no_spike_train(neuron):
    x = (torch.randn(T, B, N, generator=torch.Generator().manual_seed(0)) + 0.6).requires_grad_()
    out, held = _saved(neuron, x)
    assert 0 < float(out.mean()) < 1  # some spikes, so a saved spike train would be recognisable
    assert _spike_trains(held) == []
    # the python backend (autograd over the pure step) does keep 0/1 tensors for the zero reset: the check sees them
    if isinstance(neuron, CubaLIF):
        ref = CubaLIF(alpha=0.5, beta=0.9, threshold=0.5, backend="python")
        _, held_ref = _saved(ref, x)
        assert any(t.is_floating_point() and bool(((t == 0) | (t == 1)).all()) and t.numel() == B * N and t.abs().sum() > 0
                   for t in held_ref)


def test_recurrent_saves_its_output_spikes_not_a_copy():
    layer = Recurrent(N, LIF(beta=0.9, threshold=0.5))
    x = (torch.randn(T, B, N, generator=torch.Generator().manual_seed(1)) + 0.6).requires_grad_()
    out, held = _saved(layer, x)
    trains = _spike_trains(held)
    assert len(trains) == 1 and trains[0].untyped_storage().data_ptr() == out.untyped_storage().data_ptr()
