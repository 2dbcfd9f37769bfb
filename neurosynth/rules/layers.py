r"""Learning rules as layers: ``BioLinear`` / ``BioConv2d`` and the rule registry ``RULES``.

A rule decides which matrix ``B`` carries the error down through a layer (see
:mod:`neurosynth.rules.functional` for the formulas). Feedback state lives in **buffers** (saved in
``state_dict``, moved by ``.to()``, never returned by ``parameters()`` and never trained):

* ``fa``: ``weight_backward`` (same shape as ``W``), Xavier-uniform, fixed.
* ``dfa``: ``weight_backward`` of shape ``(output_dim, in_features)`` / ``(output_dim, C_in, kh, kw)``.
* ``usf``: no buffer; :math:`B = s\,\mathrm{sign}(W)` with :math:`s = \sqrt{2/(\mathrm{fan_{in}}+\mathrm{fan_{out}})}`
  (Biotorch's scaling; the paper writes unit magnitude, which only rescales the propagated error).
* ``frsf``: ``feedback_magnitude`` :math:`|R_0|`, drawn once; :math:`B = |R_0| \circ \mathrm{sign}(W)`.
* ``brsf``: ``feedback_magnitude`` :math:`|R_t|` plus ``feedback_seed`` and ``feedback_step``.
  :math:`R_t` is redrawn **once per training step**: :func:`step` (or an optimizer post-step hook installed
  by :func:`attach`) increments ``feedback_step`` and redraws ``R`` from a generator seeded with
  ``(feedback_seed, feedback_step)``. Forward passes never redraw, so evaluation, DARTS architecture
  steps and attack iterations see the same ``B`` as the training step that follows; a reloaded
  checkpoint resumes the exact sequence of ``R``.
* ``bp``: plain autograd (``F.linear``/``F.conv2d``), no buffer.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from neurosynth.registry import Registry

from .functional import Conv2dDFA, Conv2dFeedback, DFAContext, LinearDFA, LinearFeedback

RULES: Registry[type[FeedbackRule]] = Registry("learning rule")

_MAX_SEED = 2**62


def _fans(weight: torch.Tensor) -> tuple[int, int]:
    rf = weight[0][0].numel() if weight.dim() > 2 else 1
    return weight.shape[1] * rf, weight.shape[0] * rf


def xavier_uniform(shape, fan_in: int, fan_out: int, generator: torch.Generator | None, dtype, device):
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    u = torch.rand(shape, generator=generator, dtype=torch.float32)
    return ((2 * u - 1) * bound).to(dtype=dtype, device=device)


class FeedbackRule:
    """A feedback learning rule (a ``RULES`` entry): how a layer's feedback state is created and which ``B`` its
    backward pass uses to carry the error down."""

    name = "rule"
    dfa = False  # needs the network's output error
    needs_step = False  # state changes once per training step

    def init(self, layer: BioLayer, generator: torch.Generator | None, output_dim: int | None) -> None:
        """Create the feedback buffers on ``layer``."""

    def feedback(self, layer: BioLayer) -> torch.Tensor | None:
        """The matrix ``B`` used for the propagated error (``None``: true backprop)."""
        return None

    def step(self, layer: BioLayer) -> None:
        """Advance per-training-step state (brSF redraw)."""

    def __repr__(self) -> str:
        return self.name


@RULES.register("bp")
class Backprop(FeedbackRule):
    name = "bp"


@RULES.register("fa")
class FeedbackAlignment(FeedbackRule):
    name = "fa"

    def init(self, layer, generator, output_dim):
        w = layer.weight
        fi, fo = _fans(w)
        layer.register_buffer("weight_backward", xavier_uniform(w.shape, fi, fo, generator, w.dtype, w.device))

    def feedback(self, layer):
        return layer.weight_backward


@RULES.register("dfa")
class DirectFeedbackAlignment(FeedbackRule):
    name = "dfa"
    dfa = True

    def init(self, layer, generator, output_dim):
        if output_dim is None or int(output_dim) < 1:
            raise ValueError("rule 'dfa' needs output_dim (the number of network outputs, e.g. classes); "
                             "pass convert(model, 'dfa', output_dim=10)")
        w = layer.weight
        if isinstance(layer, nn.Conv2d):
            shape = (int(output_dim), layer.in_channels, *layer.kernel_size)
        else:
            shape = (int(output_dim), layer.in_features)
        fi = int(math.prod(shape[1:]))
        layer.register_buffer("weight_backward", xavier_uniform(shape, fi, int(output_dim), generator,
                                                                w.dtype, w.device))

    def feedback(self, layer):
        return layer.weight_backward


@RULES.register("usf")
class UniformSignConcordant(FeedbackRule):
    name = "usf"

    def feedback(self, layer):
        fi, fo = _fans(layer.weight)
        return math.sqrt(2.0 / (fi + fo)) * torch.sign(layer.weight.detach())


@RULES.register("frsf")
class FixedRandomSignConcordant(FeedbackRule):
    name = "frsf"

    def init(self, layer, generator, output_dim):
        w = layer.weight
        fi, fo = _fans(w)
        layer.register_buffer("feedback_magnitude",
                              xavier_uniform(w.shape, fi, fo, generator, w.dtype, w.device).abs())

    def feedback(self, layer):
        return layer.feedback_magnitude * torch.sign(layer.weight.detach())


@RULES.register("brsf")
class BatchRandomSignConcordant(FeedbackRule):
    name = "brsf"
    needs_step = True

    def init(self, layer, generator, output_dim):
        seed = int(torch.randint(0, _MAX_SEED, (1,), generator=generator).item())
        layer.register_buffer("feedback_seed", torch.tensor(seed, dtype=torch.int64))
        layer.register_buffer("feedback_step", torch.tensor(0, dtype=torch.int64))
        layer.register_buffer("feedback_magnitude", self._draw(layer, seed, 0))

    @staticmethod
    def _draw(layer, seed: int, step: int) -> torch.Tensor:
        w = layer.weight
        fi, fo = _fans(w)
        g = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(step)) % (2**63 - 1))
        return xavier_uniform(w.shape, fi, fo, g, w.dtype, w.device).abs()

    def feedback(self, layer):
        return layer.feedback_magnitude * torch.sign(layer.weight.detach())

    def step(self, layer):
        layer.feedback_step += 1
        layer.feedback_magnitude.copy_(self._draw(layer, int(layer.feedback_seed), int(layer.feedback_step)))


def get_rule(rule: str | FeedbackRule) -> FeedbackRule:
    if isinstance(rule, FeedbackRule):
        return rule
    return RULES.get(rule)()


class BioLayer:
    """Mixin of :class:`BioLinear` and :class:`BioConv2d`: holds the rule and its feedback buffers."""

    rule: FeedbackRule
    _dfa_ctx: DFAContext | None
    true_gradient: bool = False  # set by neurosynth.rules.true_gradients(): backward through W (plain autograd)

    @property
    def _plain(self) -> bool:
        return self.rule.name == "bp" or self.true_gradient

    def _setup_rule(self, rule, generator=None, output_dim=None) -> None:
        for name in ("weight_backward", "feedback_magnitude", "feedback_seed", "feedback_step"):
            if name in self._buffers:
                del self._buffers[name]
        self.rule = get_rule(rule)
        self.output_dim = None if output_dim is None else int(output_dim)
        self._dfa_ctx = None
        self.rule.init(self, generator, output_dim)

    def set_rule(self, rule, *, generator=None, output_dim=None) -> None:
        """Switch this layer to another rule (new feedback buffers)."""
        self._setup_rule(rule, generator, output_dim)

    def step_rule(self) -> None:
        with torch.no_grad():
            self.rule.step(self)

    def feedback_matrix(self) -> torch.Tensor | None:
        with torch.no_grad():
            return self.rule.feedback(self)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", rule={self.rule.name}"


class BioLinear(BioLayer, nn.Linear):
    """``nn.Linear`` trained with a feedback learning rule (``rule`` in :data:`RULES`)."""

    def __init__(self, in_features, out_features, bias=True, *, rule="bp", generator=None, output_dim=None,
                 device=None, dtype=None):
        nn.Linear.__init__(self, in_features, out_features, bias, device=device, dtype=dtype)
        self._setup_rule(rule, generator, output_dim)

    def forward(self, x):
        r = self.rule
        if self._plain:
            return F.linear(x, self.weight, self.bias)
        if r.dfa:
            return LinearDFA.apply(x, self.weight, self.bias, self.weight_backward, self._ctx())
        return LinearFeedback.apply(x, self.weight, self.bias, r.feedback(self).detach())

    def _ctx(self) -> DFAContext:
        if self._dfa_ctx is None:
            raise RuntimeError("this DFA layer is not attached to a network output; build it through "
                               "neurosynth.rules.convert/assign, which install the output-error capture")
        return self._dfa_ctx


def _numeric_padding(conv: nn.Conv2d) -> tuple[int, int]:
    if conv.padding_mode != "zeros":
        raise ValueError(f"learning rules support padding_mode='zeros' only, got '{conv.padding_mode}'")
    p = conv.padding
    if isinstance(p, str):
        if p == "valid":
            return (0, 0)
        out = []
        for k, d in zip(conv.kernel_size, conv.dilation):
            total = d * (k - 1)
            if total % 2:
                raise ValueError("padding='same' with an even effective kernel is asymmetric; use explicit padding")
            out.append(total // 2)
        return tuple(out)
    return tuple(p)


class BioConv2d(BioLayer, nn.Conv2d):
    """``nn.Conv2d`` (any stride, padding, dilation, groups: depthwise too) with a feedback learning rule."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, *, rule="bp", generator=None, output_dim=None, device=None, dtype=None):
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                           device=device, dtype=dtype)
        self._pad = _numeric_padding(self)
        self._setup_rule(rule, generator, output_dim)

    def forward(self, x):
        r = self.rule
        if self._plain:
            return F.conv2d(x, self.weight, self.bias, self.stride, self._pad, self.dilation, self.groups)
        if r.dfa:
            return Conv2dDFA.apply(x, self.weight, self.bias, self.weight_backward, self._ctx(), self.stride,
                                   self._pad, self.dilation, self.groups)
        return Conv2dFeedback.apply(x, self.weight, self.bias, r.feedback(self).detach(), self.stride, self._pad,
                                    self.dilation, self.groups)

    _ctx = BioLinear._ctx
