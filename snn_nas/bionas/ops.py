"""Candidate operations of the BioNAS cells; every weighted conv carries a learning rule.

``CELL_OPS[name](C, stride, rule, affine) -> nn.Module``. ``rule`` is a name from
:data:`neurosynth.rules.RULES` for ops with weights and ``None`` for parameter-free ops. Batch norms are
always trained by ordinary gradients (they have no weight-transport problem). Follows the DARTS
(quark0/darts ``cnn/operations.py``) and NAS-Bench-201 (``nor_conv``: ReLU-Conv-BN) definitions, except that
``skip_connect`` at stride 2 is a :class:`FactorizedReduce` whose two 1x1 convs *use* the edge's rule, so the
skip variants of reduction edges really differ (the published BioNAS code built and discarded them).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from neurosynth.registry import Registry
from neurosynth.rules import BioConv2d, HebbianConv2d, PredictiveCodingConv2d

CELL_OPS: Registry = Registry("BioNAS operation")  # the candidate operations of a cell edge, by name

# ops whose weights follow a learning rule (the others are parameter-free, or use their own mechanism)
RULE_OPS = ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5", "nor_conv_1x1", "nor_conv_3x3")
LOCAL_OPS = ("hebbian_conv_3x3", "pc_conv_3x3")


def conv(rule, c_in, c_out, k, stride=1, padding=0, dilation=1, groups=1, bias=False):
    """A rule-carrying conv. ``dfa`` needs the network's output size, so it is built as ``bp`` and marked;
    :func:`snn_nas.bionas.networks.finalize_rules` switches the marked layers once the network exists."""
    m = BioConv2d(c_in, c_out, k, stride, padding, dilation, groups, bias, rule="bp" if rule == "dfa" else rule or "bp")
    if rule == "dfa":
        m._deferred_rule = "dfa"
    return m


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in, c_out, k, stride, padding, rule="bp", affine=True, dilation=1):
        super().__init__(nn.ReLU(inplace=False), conv(rule, c_in, c_out, k, stride, padding, dilation),
                         nn.BatchNorm2d(c_out, affine=affine))


class DilConv(nn.Sequential):
    def __init__(self, c_in, c_out, k, stride, padding, dilation, rule, affine=True):
        super().__init__(nn.ReLU(inplace=False), conv(rule, c_in, c_in, k, stride, padding, dilation, groups=c_in),
                         conv(rule, c_in, c_out, 1), nn.BatchNorm2d(c_out, affine=affine))


class SepConv(nn.Sequential):
    def __init__(self, c_in, c_out, k, stride, padding, rule, affine=True):
        super().__init__(DilConv(c_in, c_in, k, stride, padding, 1, rule, affine),
                         DilConv(c_in, c_out, k, 1, padding, 1, rule, affine))


class Zero(nn.Module):
    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset stride-2 1x1 convs (rule-carrying), concatenated, then BN."""

    def __init__(self, c_in, c_out, rule="bp", affine=True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = conv(rule, c_in, c_out // 2, 1, stride=2)
        self.conv_2 = conv(rule, c_in, c_out // 2, 1, stride=2)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x):
        x = self.relu(x)
        a = self.conv_1(x)
        b = self.conv_2(x[:, :, 1:, 1:]) if x.shape[-1] > 1 else self.conv_2(x)
        if b.shape[-2:] != a.shape[-2:]:
            b = nn.functional.pad(b, (0, a.shape[-1] - b.shape[-1], 0, a.shape[-2] - b.shape[-2]))
        return self.bn(torch.cat([a, b], dim=1))


class PoolBN(nn.Sequential):
    def __init__(self, kind, C, stride, affine):
        pool = nn.MaxPool2d(3, stride, 1) if kind == "max" else nn.AvgPool2d(3, stride, 1, count_include_pad=False)
        # DARTS' search cells (affine=False) add a non-affine BN after pooling to keep scales comparable
        if affine:
            super().__init__(pool)
        else:
            super().__init__(pool, nn.BatchNorm2d(C, affine=False))


class HebbianOp(nn.Sequential):
    def __init__(self, C, stride, affine):
        super().__init__(nn.ReLU(inplace=False), HebbianConv2d(C, C, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(C, affine=affine))


class PCOp(nn.Sequential):
    def __init__(self, C, stride, affine):
        super().__init__(nn.ReLU(inplace=False), PredictiveCodingConv2d(C, C, 3, stride, 1, steps=2),
                         nn.BatchNorm2d(C, affine=affine))


CELL_OPS.add("none", lambda C, stride, rule, affine: Zero(stride))
CELL_OPS.add("max_pool_3x3", lambda C, stride, rule, affine: PoolBN("max", C, stride, affine))
CELL_OPS.add("avg_pool_3x3", lambda C, stride, rule, affine: PoolBN("avg", C, stride, affine))
CELL_OPS.add("skip_connect", lambda C, stride, rule, affine: nn.Identity() if stride == 1
        else FactorizedReduce(C, C, rule, affine))
CELL_OPS.add("sep_conv_3x3", lambda C, stride, rule, affine: SepConv(C, C, 3, stride, 1, rule, affine))
CELL_OPS.add("sep_conv_5x5", lambda C, stride, rule, affine: SepConv(C, C, 5, stride, 2, rule, affine))
CELL_OPS.add("dil_conv_3x3", lambda C, stride, rule, affine: DilConv(C, C, 3, stride, 2, 2, rule, affine))
CELL_OPS.add("dil_conv_5x5", lambda C, stride, rule, affine: DilConv(C, C, 5, stride, 4, 2, rule, affine))
CELL_OPS.add("nor_conv_1x1", lambda C, stride, rule, affine: ReLUConvBN(C, C, 1, stride, 0, rule, affine))
CELL_OPS.add("nor_conv_3x3", lambda C, stride, rule, affine: ReLUConvBN(C, C, 3, stride, 1, rule, affine))
CELL_OPS.add("hebbian_conv_3x3", lambda C, stride, rule, affine: HebbianOp(C, stride, affine))
CELL_OPS.add("pc_conv_3x3", lambda C, stride, rule, affine: PCOp(C, stride, affine))


def build_op(name: str, C: int, stride: int, rule: str | None, affine: bool = True) -> nn.Module:
    return CELL_OPS.get(name)(C, stride, rule, affine)
