"""Modules that apply plasticity rules to a layer's weight outside autograd.

* :class:`STDPLearner` owns the trace state of one ``nn.Linear`` / ``nn.Conv2d`` and, at each
  :meth:`STDPLearner.step`, computes the rule's ``dw`` from that step's pre/post spikes and writes
  ``clip(w + lr * dw)`` into the layer's weight under ``torch.no_grad()``.
* :class:`PlasticLayer` runs ``layer -> neuron`` over a time-first sequence ``[T, B, ...]`` and lets the
  learner update the weight after every time step of the forward pass (only in ``train()`` mode and while
  ``learning`` is true). Autograd through the layer is untouched, so plastic and gradient-trained layers can
  be mixed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .connections import connection_for
from .schedule import LRSchedule, lr_at
from .stdp import PLASTICITY_RULES, apply_update, make_params


class STDPLearner(nn.Module):
    """Plasticity for the weight of ``layer`` (``nn.Linear`` or ``nn.Conv2d``).

    ``rule``: a name in :data:`neurosynth.plasticity.PLASTICITY_RULES` (``stdp``, ``triplet``, ``rstdp``);
    ``params``: that rule's parameter dataclass (or keyword arguments ``**rule_kw``);
    ``schedule``: learning-rate schedule indexed by the number of updates made so far
    (``self.updates``; set it yourself to schedule per sample or per epoch).
    """

    def __init__(self, layer: nn.Module, rule: str = "stdp", params: Any = None,
                 schedule: LRSchedule | None = None, reduce: str = "mean", **rule_kw: Any):
        super().__init__()
        self.rule = PLASTICITY_RULES.get(rule)
        if params is None:
            params = make_params(rule, **rule_kw)
        elif rule_kw:
            raise ValueError("pass either params or rule keyword arguments, not both")
        if not isinstance(params, self.rule.params):
            raise ValueError(f"rule {rule!r} needs {self.rule.params.__name__}, got {type(params).__name__}")
        # not a registered submodule: the owner of ``layer`` keeps it in its state_dict (no duplicate keys)
        self.__dict__["layer"] = layer
        self.connection = connection_for(layer, reduce)
        self.params = params
        self.schedule = schedule or LRSchedule()
        self.updates = 0
        self.state: tuple | None = None

    def reset(self) -> None:
        """Forget the traces (call between independent samples/sequences)."""
        self.state = None

    @property
    def lr(self) -> float:
        return lr_at(self.schedule, self.updates)

    @torch.no_grad()
    def step(self, pre: Tensor, post: Tensor, reward: Tensor | float | None = None) -> Tensor:
        """Update the weight from one time step of spikes; returns the applied change ``lr * dw``."""
        w = self.layer.weight
        if self.state is None:
            self.state = self.rule.init(pre, post, w)
        kw = {}
        if self.rule.needs_reward:
            if reward is None:
                raise ValueError(f"rule {self.rule.name!r} needs a reward at every step (reward=...)")
            kw["reward"] = reward
        elif reward is not None:
            raise ValueError(f"rule {self.rule.name!r} takes no reward; use rule='rstdp' for reward modulation")
        dw, self.state = self.rule.step(pre.detach(), post.detach(), self.state, w.detach(), self.params,
                                        self.connection, **kw)
        new = apply_update(w.detach(), dw, self.lr, self.params)
        applied = new - w
        w.copy_(new)
        self.updates += 1
        return applied

    @torch.no_grad()
    def observe(self, pre_seq: Tensor, post_seq: Tensor, reward: Tensor | None = None) -> Tensor:
        """Run :meth:`step` over time-first sequences ``[T, B, ...]``; returns the total applied change."""
        if pre_seq.shape[0] != post_seq.shape[0]:
            raise ValueError(f"pre and post sequences differ in length: {pre_seq.shape[0]} vs {post_seq.shape[0]}")
        total = torch.zeros_like(self.layer.weight)
        for t in range(pre_seq.shape[0]):
            r = None if reward is None else reward[t]
            total += self.step(pre_seq[t], post_seq[t], r)
        return total


NeuronStep = Callable[[Tensor, Any], tuple[Tensor, Any]]


def _core_neuron_step(neuron: nn.Module) -> NeuronStep:
    """Adapt a core neuron module to one step: its stateful step API ``neuron.step(x_t, state)``."""
    return neuron.step


class PlasticLayer(nn.Module):
    """``layer`` (Linear/Conv2d) followed by spiking ``neuron``, with online plasticity on ``layer.weight``.

    ``neuron``: a core neuron module (``neurosynth.neurons.LIF`` etc., stepped through ``neuron.step``) or a
    pure step function ``f(x_t, state) -> (spikes_t, state)`` with ``state=None`` at the start.
    ``forward(x [T, B, ...]) -> spikes [T, B, ...]``; traces are reset at the start of every call.
    """

    def __init__(self, layer: nn.Module, neuron: nn.Module | NeuronStep, learner: STDPLearner | None = None,
                 **learner_kw: Any):
        super().__init__()
        self.layer = layer
        if isinstance(neuron, nn.Module):
            self.neuron = neuron
            self._step = _core_neuron_step(neuron)
        else:
            self.neuron = None
            self._step = neuron
        self.learner = learner if learner is not None else STDPLearner(layer, **learner_kw)
        if self.learner.layer is not layer:
            raise ValueError("the learner must be built on the same layer")
        self.learning = True

    def forward(self, x: Tensor, reward: Tensor | None = None) -> Tensor:
        if x.dim() < 3:
            raise ValueError(f"PlasticLayer expects time-first input [T, B, ...], got shape {tuple(x.shape)}")
        self.learner.reset()
        state = None
        out = []
        for t in range(x.shape[0]):
            s, state = self._step(self.layer(x[t]), state)
            if self.training and self.learning:
                self.learner.step(x[t], s, None if reward is None else reward[t])
            out.append(s)
        return torch.stack(out)
