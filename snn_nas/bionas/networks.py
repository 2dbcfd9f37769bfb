"""Cells and macro networks (DARTS and NAS-Bench-201 families), shared by the supernet and derived models.

A *cell* is built either from a genotype (one op per edge) or as a mixed cell (every candidate of the
edge, weighted by architecture probabilities). ``frame_rule`` is the learning rule of the layers outside
the searched edges (stem, cell preprocessing, NB201 residual blocks, classifier): ``bp`` reproduces the
published BioNAS setup; a bio rule gives an end-to-end bio-plausible network.

Image tensors are ``[B, C, H, W]`` (these are non-spiking image classifiers, not time-first SNNs).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from neurosynth import rules as R
from neurosynth.rules import BioLinear

from .ops import FactorizedReduce, ReLUConvBN, build_op, conv
from .space import CellSpace


def linear(rule, n_in, n_out):
    m = BioLinear(n_in, n_out, rule="bp" if rule == "dfa" else rule)
    if rule == "dfa":
        m._deferred_rule = "dfa"
    return m


def finalize_rules(model: nn.Module, num_classes: int) -> nn.Module:
    """Switch layers marked for DFA (see :func:`snn_nas.bionas.ops.conv`) now that the output size is known."""
    marked = {n: m._deferred_rule for n, m in model.named_modules() if getattr(m, "_deferred_rule", None)}
    if marked:
        R.assign(model, marked, output_dim=num_classes)
        for n in marked:
            del model.get_submodule(n)._deferred_rule
    return model


class MixedOp(nn.Module):
    """All candidates of one edge; ``forward(x, w)`` returns ``sum_k w[k] op_k(x)`` over existing columns."""

    def __init__(self, space: CellSpace, cell: str, edge: tuple[int, int], C: int):
        super().__init__()
        stride = space.stride(cell, edge)
        self.cols = [k for k, c in enumerate(space.columns) if space.column_valid(c, stride)]
        self.ops = nn.ModuleList(build_op(space.columns[k][0], C, stride, space.columns[k][1], affine=False)
                                 for k in self.cols)

    def forward(self, x, w):
        out = 0
        for k, op in zip(self.cols, self.ops):
            out = out + w[k] * op(x)
        return out


class DartsCell(nn.Module):
    def __init__(self, space: CellSpace, edges: list[dict] | None, C_pp, C_p, C, reduction, reduction_prev,
                 frame_rule: str):
        super().__init__()
        self.reduction = reduction
        self.cell_type = "reduce" if reduction else "normal"
        affine = edges is not None
        self.preprocess0 = (FactorizedReduce(C_pp, C, frame_rule, affine) if reduction_prev
                            else ReLUConvBN(C_pp, C, 1, 1, 0, frame_rule, affine))
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0, frame_rule, affine)
        if edges is None:  # mixed: every edge of the space
            self.links = [tuple(e) for e in space.edges]
            self.ops = nn.ModuleList(MixedOp(space, self.cell_type, e, C) for e in space.edges)
            self.mixed = True
        else:
            self.links = [(e["node"], e["from"]) for e in edges]
            self.ops = nn.ModuleList(build_op(e["op"], C, space.stride(self.cell_type, (e["node"], e["from"])),
                                              e["rule"], True) for e in edges)
            self.mixed = False
        self.nodes = sorted({j for j, _ in self.links})

    def forward(self, s0, s1, w=None):
        states = {0: self.preprocess0(s0), 1: self.preprocess1(s1)}
        for j in self.nodes:
            acc = 0
            for k, (jj, i) in enumerate(self.links):
                if jj == j:
                    acc = acc + (self.ops[k](states[i], w[k]) if self.mixed else self.ops[k](states[i]))
            states[j] = acc
        return torch.cat([states[j] for j in self.nodes], dim=1)


class DartsNetwork(nn.Module):
    """Stem, ``layers`` cells (reductions at ``layers//3`` and ``2*layers//3``), global pool, classifier."""

    def __init__(self, space: CellSpace, genotype: dict | None, C: int, num_classes: int, layers: int,
                 in_channels: int, frame_rule: str = "bp", stem_multiplier: int = 3):
        super().__init__()
        c = stem_multiplier * C
        self.stem = nn.Sequential(conv(frame_rule, in_channels, c, 3, padding=1), nn.BatchNorm2d(c))
        C_pp, C_p, C_curr = c, c, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_curr *= 2
            edges = None if genotype is None else genotype["reduce" if reduction else "normal"]
            cell = DartsCell(space, edges, C_pp, C_p, C_curr, reduction, reduction_prev, frame_rule)
            self.cells.append(cell)
            reduction_prev = reduction
            C_pp, C_p = C_p, len(cell.nodes) * C_curr
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.classifier = linear(frame_rule, C_p, num_classes)

    def forward(self, x, probs: dict | None = None):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            w = None if probs is None else probs[cell.cell_type]
            s0, s1 = s1, cell(s0, s1, w)
        return self.classifier(self.gap(s1).flatten(1))


class NB201Cell(nn.Module):
    def __init__(self, space: CellSpace, edges: list[dict] | None, C: int):
        super().__init__()
        self.mixed = edges is None
        if self.mixed:
            self.links = [tuple(e) for e in space.edges]
            self.ops = nn.ModuleList(MixedOp(space, "cell", e, C) for e in space.edges)
        else:
            self.links = [(e["node"], e["from"]) for e in edges]
            self.ops = nn.ModuleList(build_op(e["op"], C, 1, e["rule"], True) for e in edges)

    def forward(self, x, w=None):
        states = [x]
        for j in range(1, 4):
            acc = 0
            for k, (jj, i) in enumerate(self.links):
                if jj == j:
                    acc = acc + (self.ops[k](states[i], w[k]) if self.mixed else self.ops[k](states[i]))
            states.append(acc)
        return states[3]


class ResBlock(nn.Module):
    """NAS-Bench-201's ResNetBasicblock with stride 2 (between stages); convs follow ``rule``."""

    def __init__(self, c_in, c_out, rule):
        super().__init__()
        self.a = ReLUConvBN(c_in, c_out, 3, 2, 1, rule)
        self.b = ReLUConvBN(c_out, c_out, 3, 1, 1, rule)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), conv(rule, c_in, c_out, 1))

    def forward(self, x):
        return self.shortcut(x) + self.b(self.a(x))


class NB201Network(nn.Module):
    """Stem; 3 stages of ``layers`` cells at C, 2C, 4C separated by residual reduction blocks; classifier."""

    def __init__(self, space: CellSpace, genotype: dict | None, C: int, num_classes: int, layers: int,
                 in_channels: int, frame_rule: str = "bp"):
        super().__init__()
        self.stem = nn.Sequential(conv(frame_rule, in_channels, C, 3, padding=1), nn.BatchNorm2d(C))
        edges = None if genotype is None else genotype["edges"]
        blocks = []
        c = C
        for stage in range(3):
            if stage > 0:
                blocks.append(ResBlock(c, 2 * c, frame_rule))
                c *= 2
            blocks += [NB201Cell(space, edges, c) for _ in range(layers)]
        self.cells = nn.ModuleList(blocks)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.classifier = linear(frame_rule, c, num_classes)

    def forward(self, x, probs: dict | None = None):
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x, None if probs is None else probs["cell"]) if isinstance(cell, NB201Cell) else cell(x)
        return self.classifier(self.gap(self.lastact(x)).flatten(1))


NETWORKS = {"darts": DartsNetwork, "nb201": NB201Network}
