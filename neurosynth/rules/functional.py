r"""Autograd functions of the feedback-based learning rules (the functional core).

Notation for a layer :math:`y = x W^\top + b` (``Linear``) or :math:`y = W \star x + b` (``Conv2d``),
with :math:`g = \partial L / \partial y` the error arriving from above:

========  =================================================  =========================================
rule      propagated error :math:`\partial x`                 weight gradient
========  =================================================  =========================================
BP        :math:`g W` (conv: transposed conv with ``W``)      :math:`g^\top x` (conv: ``conv2d_weight``)
FA        :math:`g B`, ``B`` a fixed random matrix           :math:`g^\top x`
uSF       :math:`g B`, :math:`B = s\,\mathrm{sign}(W)`        :math:`g^\top x`
brSF      :math:`g B`, :math:`B = |R_t| \circ \mathrm{sign}(W)`, ``R`` redrawn each training step
frSF      :math:`g B`, :math:`B = |R_0| \circ \mathrm{sign}(W)`, ``R_0`` fixed
DFA       :math:`e B_d`, ``e`` = error at the network output  :math:`g^\top x` (``g`` is whatever reached
          (``B_d``: ``(classes, in)``; conv: ``e`` tiled        this layer's output)
          over the output map, transposed conv with ``B_d``)
========  =================================================  =========================================

Every function returns the usual local weight/bias gradients; only the error sent *down* changes.
The convolution gradients use :func:`torch.nn.grad.conv2d_input` / :func:`torch.nn.grad.conv2d_weight`,
which route through ``aten::convolution_backward`` on torch >= 1.13 and are correct for ``groups > 1``
(depthwise) and dilation (the old implementation was wrong for groups > 1, pytorch#51430).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.grad import conv2d_input, conv2d_weight


class LinearFeedback(torch.autograd.Function):
    """``y = x W^T + b``; backward sends ``g B`` down instead of ``g W``."""

    @staticmethod
    def forward(ctx, x, weight, bias, feedback):
        ctx.save_for_backward(x, weight, bias, feedback)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, g):
        x, weight, bias, feedback = ctx.saved_tensors
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = g.matmul(feedback.to(g.dtype))
        if ctx.needs_input_grad[1]:
            gw = g.reshape(-1, g.shape[-1]).t().matmul(x.reshape(-1, x.shape[-1]))
        if bias is not None and ctx.needs_input_grad[2]:
            gb = g.reshape(-1, g.shape[-1]).sum(0)
        return gx, gw, gb, None


class Conv2dFeedback(torch.autograd.Function):
    """``y = conv2d(x, W, b)``; backward sends ``conv2d_input(B, g)`` down instead of ``conv2d_input(W, g)``."""

    @staticmethod
    def forward(ctx, x, weight, bias, feedback, stride, padding, dilation, groups):
        ctx.save_for_backward(x, weight, bias, feedback)
        ctx.conf = (stride, padding, dilation, groups)
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, g):
        x, weight, bias, feedback = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conf
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = conv2d_input(x.shape, feedback.to(g.dtype), g, stride, padding, dilation, groups)
        if ctx.needs_input_grad[1]:
            gw = conv2d_weight(x, weight.shape, g, stride, padding, dilation, groups)
        if bias is not None and ctx.needs_input_grad[2]:
            gb = g.sum((0, 2, 3))
        return gx, gw, gb, None, None, None, None, None


class DFAContext:
    """Holds the output error ``e`` of the latest backward pass for the DFA layers of one network.

    The network's output passes through :class:`CaptureError` (an identity whose backward stores ``e``);
    autograd runs that node first, so every DFA layer's backward finds ``e`` already set.
    """

    def __init__(self):
        self.error: torch.Tensor | None = None

    def get(self) -> torch.Tensor:
        if self.error is None:
            raise RuntimeError(
                "DFA layer: no output error was captured. DFA needs the network output to pass through the "
                "capture hook installed by neurosynth.rules.convert/assign (call the converted root module, "
                "and run one backward per forward)."
            )
        return self.error


class CaptureError(torch.autograd.Function):
    """Identity on the network output; its backward records ``dL/d(output)`` in a :class:`DFAContext`."""

    @staticmethod
    def forward(ctx, out, holder):
        ctx.holder = holder
        return out.view_as(out)

    @staticmethod
    def backward(ctx, g):
        ctx.holder.error = g.detach().reshape(g.shape[0], -1)
        return g, None


class LinearDFA(torch.autograd.Function):
    """``y = x W^T + b``; backward sends ``e B_d`` down (``e``: the network's output error)."""

    @staticmethod
    def forward(ctx, x, weight, bias, feedback, holder):
        ctx.save_for_backward(x, weight, bias, feedback)
        ctx.holder = holder
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, g):
        x, weight, bias, feedback = ctx.saved_tensors
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            e = ctx.holder.get().to(g.dtype)
            if x.dim() != 2:
                raise RuntimeError("DFA Linear supports inputs [batch, features] only")
            gx = e.matmul(feedback.to(g.dtype))
        if ctx.needs_input_grad[1]:
            gw = g.reshape(-1, g.shape[-1]).t().matmul(x.reshape(-1, x.shape[-1]))
        if bias is not None and ctx.needs_input_grad[2]:
            gb = g.reshape(-1, g.shape[-1]).sum(0)
        return gx, gw, gb, None, None


class Conv2dDFA(torch.autograd.Function):
    """Conv2d whose backward sends ``conv2d_input(B_d, tile(e))`` down.

    ``e`` ``(N, classes)`` is tiled over the output map ``(N, classes, H_out, W_out)`` and projected back
    with the random kernel ``B_d`` ``(classes, C_in, kh, kw)`` (a dense transposed conv, ``groups=1``,
    same stride/padding/dilation as the layer), as in Biotorch.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, feedback, holder, stride, padding, dilation, groups):
        ctx.save_for_backward(x, weight, bias, feedback)
        ctx.holder = holder
        ctx.conf = (stride, padding, dilation, groups)
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, g):
        x, weight, bias, feedback = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conf
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            e = ctx.holder.get().to(g.dtype)
            tiled = e[:, :, None, None].expand(e.shape[0], e.shape[1], g.shape[2], g.shape[3])
            gx = conv2d_input(x.shape, feedback.to(g.dtype), tiled.contiguous(), stride, padding, dilation, 1)
        if ctx.needs_input_grad[1]:
            gw = conv2d_weight(x, weight.shape, g, stride, padding, dilation, groups)
        if bias is not None and ctx.needs_input_grad[2]:
            gb = g.sum((0, 2, 3))
        return gx, gw, gb, None, None, None, None, None, None
