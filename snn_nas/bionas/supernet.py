"""The BioNAS supernet: a DARTS/NB201 network of mixed cells plus architecture logits ``alpha``.

``alpha[cell]`` is ``[n_edges, n_columns]`` (see :class:`snn_nas.bionas.space.CellSpace`); candidates that
do not exist on an edge are masked to probability 0. ``forward(x, probs=None)`` uses the masked softmax of
``alpha`` or externally supplied probabilities (EG-NAS evaluates CMA-ES candidates that way).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from .networks import NETWORKS
from .space import CellSpace


class SuperNet(nn.Module):
    def __init__(self, space: CellSpace, *, C: int = 8, num_classes: int = 10, layers: int = 3, in_channels: int = 1,
                 frame_rule: str = "bp", generator: torch.Generator | None = None):
        super().__init__()
        if frame_rule == "dfa":
            raise ValueError("the supernet cannot use frame_rule='dfa'; use it for derived models only")
        self.space = space
        self.net = NETWORKS[space.kind](space, None, C, num_classes, layers, in_channels, frame_rule)
        self.alphas = nn.ParameterDict({
            c: nn.Parameter(1e-3 * torch.randn(space.n_edges, space.n_columns, generator=generator))
            for c in space.cell_types})
        for c in space.cell_types:
            self.register_buffer(f"mask_{c}", torch.from_numpy(space.mask(c)))

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.alphas.values())

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("alphas.")]

    def probabilities(self, logits: dict | None = None) -> dict[str, torch.Tensor]:
        logits = self.alphas if logits is None else logits
        out = {}
        for c in self.space.cell_types:
            a = torch.as_tensor(logits[c], dtype=torch.float32)
            out[c] = a.masked_fill(~getattr(self, f"mask_{c}"), float("-inf")).softmax(-1)
        return out

    def forward(self, x, probs: dict | None = None):
        return self.net(x, self.probabilities() if probs is None else probs)

    def logits(self) -> dict[str, np.ndarray]:
        return {c: a.detach().cpu().numpy().astype(np.float64) for c, a in self.alphas.items()}

    def genotype(self, max_skip: int | None = 2) -> dict:
        return self.space.derive(self.logits(), max_skip=max_skip)
