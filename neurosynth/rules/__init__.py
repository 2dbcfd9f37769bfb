"""Bio-inspired learning rules for any PyTorch model (Linear and Conv2d, depthwise and dilated too).

>>> import torch.nn as nn
>>> from neurosynth import rules
>>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
>>> net = rules.convert(net, "brsf")            # one rule everywhere (weights shared, buffers added)
>>> net = rules.assign(net, {"2": "fa"})         # or per layer
>>> sorted(rules.RULES.names())
['bp', 'brsf', 'dfa', 'fa', 'frsf', 'usf']

Call ``rules.step(net)`` after each ``optimizer.step()`` (or ``rules.attach(net, optimizer)`` once): brSF
redraws its random magnitudes and Hebbian convolutions apply their update there, never on forward passes.
"""

from .convert import (
    alignment_angle,
    alignment_angles,
    assign,
    attach,
    convert,
    rule_map,
    step,
    true_gradients,
    weight_ratio,
)
from .functional import CaptureError, Conv2dDFA, Conv2dFeedback, DFAContext, LinearDFA, LinearFeedback
from .layers import RULES, BioConv2d, BioLayer, BioLinear, FeedbackRule, get_rule
from .local import HebbianConv2d, PredictiveCodingConv2d

__all__ = [
    "RULES", "FeedbackRule", "get_rule", "BioLayer", "BioLinear", "BioConv2d", "HebbianConv2d", "PredictiveCodingConv2d",
    "convert", "assign", "rule_map", "step", "attach", "true_gradients", "alignment_angle", "alignment_angles", "weight_ratio",
    "LinearFeedback", "Conv2dFeedback", "LinearDFA", "Conv2dDFA", "CaptureError", "DFAContext",
]
