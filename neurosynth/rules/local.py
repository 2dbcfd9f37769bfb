r"""Convolutions with local, bio-inspired mechanisms: Hebbian and predictive-coding convolutions.

``HebbianConv2d``
    The effective kernel is :math:`W + H`: ``W`` is an ordinary parameter trained by SGD (through any
    feedback rule), ``H`` is a buffer learned by a Hebbian rule. On a *training* forward pass
    (``module.training`` and grad enabled) the layer computes
    :math:`\Delta H = \eta\,\frac{1}{NL}\sum_{n,l} \hat y_{n,l} \otimes \hat p_{n,l}`
    from the L2-normalised input patches :math:`\hat p` (``F.unfold``, layout ``(C_in, kh, kw)``) and the
    L2-normalised output vectors :math:`\hat y` at each of the ``L`` output positions. The update is
    *applied* only by :func:`neurosynth.rules.step` (once per optimizer step), then ``H`` is clamped to
    ``[-clip, clip]``. Hence: SGD's updates of ``W`` are never overwritten (they are separate tensors),
    evaluation and extra forward passes never change ``H``, and ``H`` and its step count are buffers in
    ``state_dict``. (The paper's listing copies the Hebbian weights into ``conv.weight`` on every forward,
    including eval, which erases SGD's work and is not saved.)

``PredictiveCodingConv2d``
    Iterative predictive-coding inference (Rao & Ballard; Wen et al. 2018, PCN). A bottom-up guess
    :math:`r_0 = \mathrm{relu}(W \star x)` is refined for ``steps`` iterations:
    :math:`\hat x = V \star^\top r_t` (top-down prediction with generative kernel ``V``),
    :math:`e_t = x - \hat x`, :math:`r_{t+1} = \mathrm{relu}(r_t + a \odot g(r_t) \odot (W \star e_t))`
    with learnable per-channel step sizes ``a`` and an optional sigmoid gate ``g`` (1x1 conv).
    Prediction and error live in the input space, so shapes match for any stride (the paper's listing
    subtracts the output from the input, which only type-checks when ``C_in == C_out`` and stride 1).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .functional import Conv2dFeedback
from .layers import BioConv2d


class HebbianConv2d(BioConv2d):
    """Conv2d with an additive Hebbian kernel ``H`` (buffer) on top of the SGD-trained ``W``."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=False, *,
                 hebb_lr: float = 1e-4, clip: float = 1.0, rule="bp", generator=None, device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, 1, bias, rule=rule,
                         generator=generator, device=device, dtype=dtype)
        if hebb_lr < 0 or clip <= 0:
            raise ValueError(f"HebbianConv2d needs hebb_lr >= 0 and clip > 0, got {hebb_lr}, {clip}")
        self.hebb_lr, self.clip = float(hebb_lr), float(clip)
        self.register_buffer("hebbian_weight", torch.zeros_like(self.weight, device=self.weight.device))
        self.register_buffer("hebbian_steps", torch.tensor(0, dtype=torch.int64))
        self._pending: torch.Tensor | None = None

    def effective_weight(self) -> torch.Tensor:
        return self.weight + self.hebbian_weight

    def forward(self, x):
        w = self.effective_weight()
        if self._plain:
            y = F.conv2d(x, w, self.bias, self.stride, self._pad, self.dilation, 1)
        elif self.rule.dfa:
            raise ValueError("HebbianConv2d does not support the dfa rule")
        else:
            B = self.rule.feedback(self).detach()
            y = Conv2dFeedback.apply(x, w, self.bias, B, self.stride, self._pad, self.dilation, 1)
        if self.training and torch.is_grad_enabled() and self.hebb_lr > 0:
            self._pending = self.hebbian_delta(x.detach(), y.detach())
        return y

    def hebbian_delta(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The Hebbian update for input ``x`` and output ``y`` (pure; layout of ``weight``)."""
        with torch.no_grad():
            patches = F.unfold(x, self.kernel_size, self.dilation, self._pad, self.stride)  # N, Cin*kh*kw, L
            patches = F.normalize(patches, dim=1)
            out = F.normalize(y.flatten(2), dim=1)  # N, Cout, L
            n, _, L = out.shape
            delta = torch.einsum("nol,nil->oi", out, patches) / (n * L)
            return self.hebb_lr * delta.reshape(self.weight.shape)

    def step_rule(self) -> None:
        with torch.no_grad():
            super().step_rule()
            if self._pending is not None:
                self.hebbian_weight.add_(self._pending).clamp_(-self.clip, self.clip)
                self.hebbian_steps += 1
                self._pending = None


class PredictiveCodingConv2d(nn.Module):
    """Predictive-coding convolution: ``steps`` iterations of error-driven refinement (see module doc)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, *, steps: int = 2,
                 gating: bool = True, step_size: float = 0.1, rule="bp", generator=None):
        super().__init__()
        if steps < 0:
            raise ValueError(f"PredictiveCodingConv2d needs steps >= 0, got {steps}")
        self.ff = BioConv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, bias=False, rule=rule,
                            generator=generator)
        self.generative = nn.Parameter(torch.empty_like(self.ff.weight))
        nn.init.xavier_uniform_(self.generative)
        self.error_weights = nn.Parameter(torch.full((out_channels,), float(step_size)))
        self.gate = nn.Sequential(nn.Conv2d(out_channels, out_channels, 1, bias=False), nn.Sigmoid()) if gating \
            else None
        self.steps = int(steps)

    def predict(self, r: torch.Tensor, x_shape) -> torch.Tensor:
        ff = self.ff
        outp = []
        for i in range(2):
            k, s, p, d = ff.kernel_size[i], ff.stride[i], ff._pad[i], ff.dilation[i]
            base = (r.shape[2 + i] - 1) * s - 2 * p + d * (k - 1) + 1
            outp.append(int(x_shape[2 + i]) - base)
        return F.conv_transpose2d(r, self.generative, None, ff.stride, ff._pad, tuple(outp), 1, ff.dilation)

    def forward(self, x):
        r = F.relu(self.ff(x))
        a = self.error_weights.view(1, -1, 1, 1)
        for _ in range(self.steps):
            e = x - self.predict(r, x.shape)
            upd = self.ff(e)
            if self.gate is not None:
                upd = upd * self.gate(r)
            r = F.relu(r + a * upd)
        return r
