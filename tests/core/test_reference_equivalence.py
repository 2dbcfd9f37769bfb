"""neurosynth's LIF reproduces the reference libraries' spike trains exactly.

- snnTorch ``Leaky(beta, threshold, reset_mechanism=...)`` (default ``reset_delay=True``), stepped over time:
  ``LIF(beta, threshold, reset='subtract', reset_delay=True)`` and ``LIF(reset='zero')``.
- SpikingJelly 2.0 ``LIFNode(tau, decay_input, v_threshold, v_reset, step_mode='m')``: through
  :func:`neurosynth.neurons.from_spikingjelly`, which returns ``(neuron, input_scale)``.

Each comparison runs with the fused backend (C++ kernel if it builds, else the pure-torch loop), the
pure-torch fused loop and the python backend.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from neurosynth import _cext
from neurosynth.neurons import LIF, from_spikingjelly

snntorch = pytest.importorskip("snntorch")
sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
sj_functional = pytest.importorskip("spikingjelly.activation_based.functional")

SEEDS = [0, 1, 2]
T, B, N = 60, 8, 48
BACKENDS = ["fused", "fused_torch", "python"]


def _backend(name):
    """(LIF backend argument, context) for one of BACKENDS."""
    if name == "fused_torch":
        return "fused", _cext.disabled()
    return name, contextlib.nullcontext()


def _current(seed, scale=0.6, offset=0.25):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, B, N, generator=g) * scale + offset


def _snntorch_spikes(x, beta, threshold, reset_mechanism):
    leaky = snntorch.Leaky(beta=beta, threshold=threshold, reset_mechanism=reset_mechanism)
    mem = leaky.init_leaky()
    out = []
    with torch.no_grad():
        for t in range(x.shape[0]):
            spk, mem = leaky(x[t], mem)
            out.append(spk)
    return torch.stack(out)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_lif_matches_snntorch_leaky(seed, reset, backend):
    beta, threshold = 0.87, 1.1
    x = _current(seed)
    ref = _snntorch_spikes(x, beta, threshold, reset)
    name, ctx = _backend(backend)
    neuron = LIF(beta=beta, threshold=threshold, reset=reset, reset_delay=True, backend=name)
    with ctx, torch.no_grad():
        got = neuron(x)
    assert 0.05 < float(ref.mean()) < 0.6, "inputs should give a non-trivial spike train"
    assert torch.equal(got, ref), f"{int((got != ref).sum())} of {ref.numel()} spikes differ from snnTorch"


def test_snntorch_subtract_convention_differs_from_immediate_reset():
    """The reset_delay option matters: the immediate-subtract LIF is a different neuron (guards the test above)."""
    x = _current(0)
    ref = _snntorch_spikes(x, 0.87, 1.1, "subtract")
    with torch.no_grad():
        immediate = LIF(beta=0.87, threshold=1.1, reset="subtract")(x)
    assert not torch.equal(immediate, ref)


def _sj_spikes(x, tau, decay_input, v_threshold, v_reset):
    node = sj_neuron.LIFNode(tau=tau, decay_input=decay_input, v_threshold=v_threshold, v_reset=v_reset,
                             step_mode="m")
    with torch.no_grad():
        out = node(x)
    sj_functional.reset_net(node)
    return out


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("v_reset", [None, 0.0], ids=["soft", "hard"])
@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("backend", BACKENDS)
def test_lif_matches_spikingjelly_lifnode(seed, v_reset, decay_input, backend):
    tau, v_threshold = 2.0, 1.0  # SpikingJelly's defaults
    scale = 1.2 if decay_input else 0.6  # decay_input divides the input by tau: keep firing comparable
    x = _current(seed, scale=scale, offset=0.3 if decay_input else 0.15)
    ref = _sj_spikes(x, tau, decay_input, v_threshold, v_reset)
    name, ctx = _backend(backend)
    neuron, input_scale = from_spikingjelly(tau=tau, v_threshold=v_threshold, v_reset=v_reset,
                                            decay_input=decay_input, backend=name)
    with ctx, torch.no_grad():
        got = neuron(input_scale * x)
    assert 0.05 < float(ref.mean()) < 0.6, "inputs should give a non-trivial spike train"
    assert torch.equal(got, ref), f"{int((got != ref).sum())} of {ref.numel()} spikes differ from SpikingJelly"


@pytest.mark.parametrize("tau", [1.5, 10.0])
def test_spikingjelly_other_tau(tau):
    """Non-default tau (beta = 1 - 1/tau is not a power of two): same spikes on a long sequence."""
    x = _current(5, scale=0.5, offset=0.2)
    ref = _sj_spikes(x, tau, False, 1.0, None)
    neuron, input_scale = from_spikingjelly(tau=tau, v_threshold=1.0, v_reset=None, decay_input=False)
    with torch.no_grad():
        got = neuron(input_scale * x)
    assert float(ref.mean()) > 0.05
    assert torch.equal(got, ref)


def test_from_spikingjelly_rejects_unmappable_reset():
    with pytest.raises(ValueError, match="v_reset"):
        from_spikingjelly(tau=2.0, v_reset=-0.5)
