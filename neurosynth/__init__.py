"""NeuroSynth: spiking neural networks — simulate, train, search architectures, deploy to neuromorphic hardware.

Core API (time-first tensors ``[T, B, ...]`` everywhere)::

    import neurosynth as ns
    net = ns.SNN(torch.nn.Linear(64, 128), ns.LIF(beta=0.9), torch.nn.Linear(128, 10), ns.LIF())
    spikes = net(ns.encoding.rate(x, T=20))          # [T, B, 10]

Attributes are imported lazily (PEP 562) so that ``neurosynth --help`` does not pay for importing torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "ALIF": "neurosynth.neurons", "IF": "neurosynth.neurons", "LI": "neurosynth.neurons",
    "AdLIF": "neurosynth.neurons", "SEAdLIF": "neurosynth.neurons",
    "LIF": "neurosynth.neurons", "CubaLIF": "neurosynth.neurons", "NeuronModel": "neurosynth.neurons",
    "NEURONS": "neurosynth.neurons", "build_neuron": "neurosynth.neurons", "register_neuron": "neurosynth.neurons",
    "SURROGATES": "neurosynth.surrogate", "get_surrogate": "neurosynth.surrogate",
    "SNN": "neurosynth.layers", "Delay": "neurosynth.layers", "Recurrent": "neurosynth.layers",
    "SumPool2d": "neurosynth.layers", "DelayedLinear": "neurosynth.delays",
    "build": "neurosynth.arch", "to_spec": "neurosynth.arch", "mlp_spec": "neurosynth.arch",
    "fit": "neurosynth.training", "evaluate": "neurosynth.training",
    "Registry": "neurosynth.registry",
}
_SUBMODULES = {"encoding", "losses", "surrogate", "neurons", "layers", "arch", "training", "timeloop", "functional",
               "rundir", "io", "utils", "registry", "errors", "plots", "delays"}

__all__ = sorted(_LAZY) + sorted(_SUBMODULES)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"neurosynth.{name}")
    raise AttributeError(f"module 'neurosynth' has no attribute {name!r}")


def __dir__():
    return __all__
