"""Helpers shared by every fused operator: accumulation dtype, surrogate codes, broadcasting of gradients.

Surrogates reach the kernels as the triple ``(id, p, c)`` of :func:`surrogate_code` (the same numbering as the
C++ kernel, ``neurosynth/_csrc/lif.cpp``); ``None`` means "not a built-in surrogate": the kernels then decline
(return ``None``) and the pure-torch reference computes ``surrogate.grad`` itself.

======  ==================  =========================================  ==================
id      surrogate           grad(x)                                    (p, c)
======  ==================  =========================================  ==================
0       ATan(alpha)         p / (1 + (c x)^2)                          (alpha/2, pi/2*alpha)
1       FastSigmoid(slope)  1 / (1 + c |x|)^2                          (0, slope)
2       Sigmoid(alpha)      c * sg * (1 - sg), sg = 1/(1 + exp(-c x))   (0, alpha)
3       Triangle(width)     max(0, 1 - |x|/c) / c                      (0, width)
4       Rectangular(width)  1[|x| < p] / c                             (width/2, width)
5       StraightThrough(s)  c                                          (0, scale)
======  ==================  =========================================  ==================
"""

from __future__ import annotations

import math

import torch

SurrogateCode = tuple  # (int id, float p, float c)

#: reset modes as the kernels number them (``subtract_delayed``: snnTorch's ``reset_delay``, LIF only)
MODES = {"subtract": 0, "zero": 1, "none": 2, "subtract_delayed": 3}

#: how the backward forms ``d_t = dv_t/dh_t``, by ``(mode, detach_reset)``: 0 ``d = 1`` (detached subtract, none,
#: delayed subtract), 1 ``1 - thr*sg`` (attached subtract), 2 ``1 - s`` (detached zero), 3 ``(1 - s) - h*sg``
#: (attached zero); the numbering of every implementation (reference, C++, Triton)
DKIND = {(0, True): 0, (0, False): 1, (1, True): 2, (1, False): 3, (2, True): 0, (2, False): 0,
         (3, True): 0, (3, False): 0}


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype membranes are accumulated and saved in: float64 for float64 input, float32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def surrogate_code(sur) -> SurrogateCode | None:
    """``(id, p, c)`` of a built-in surrogate, or ``None``. Only the exact built-in classes qualify (a subclass
    may override ``grad``); a tuple is passed through."""
    if isinstance(sur, tuple):
        return sur
    from .. import surrogate as S

    kind = type(sur)
    if kind is S.ATan:
        return 0, sur.alpha / 2, math.pi / 2 * sur.alpha
    if kind is S.FastSigmoid:
        return 1, 0.0, float(sur.slope)
    if kind is S.Sigmoid:
        return 2, 0.0, float(sur.alpha)
    if kind is S.Triangle:
        return 3, 0.0, float(sur.width)
    if kind is S.Rectangular:
        return 4, sur.width / 2, float(sur.width)
    if kind is S.StraightThrough:
        return 5, 0.0, float(sur.scale)
    return None


def surrogate_grad(sur, x: torch.Tensor) -> torch.Tensor:
    """``sigma'(x)`` for a code triple (same formulas, op for op, as the kernels) or a Surrogate object."""
    if not isinstance(sur, tuple):
        return sur.grad(x)
    sid, p, c = sur
    if sid == 0:
        u = c * x
        return p / (1 + u * u)
    if sid == 1:
        u = 1 + c * x.abs()
        return 1 / (u * u)
    if sid == 2:
        sg = 1 / (1 + torch.exp(-c * x))
        return c * sg * (1 - sg)
    if sid == 3:
        return torch.clamp(1 - x.abs() / c, min=0) / c
    if sid == 4:
        return (x.abs() < p).to(x.dtype) / c
    if sid == 5:
        return torch.full_like(x, c)
    raise ValueError(f"unknown surrogate id {sid}")


def reduce_to(grad: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Sum ``grad`` over the dimensions along which ``like`` was broadcast (and cast to its dtype)."""
    if grad.shape != like.shape:
        while grad.dim() > like.dim():
            grad = grad.sum(0)
        for i, n in enumerate(like.shape):
            if n == 1 and grad.shape[i] != 1:
                grad = grad.sum(i, keepdim=True)
        grad = grad.reshape(like.shape)
    return grad.to(like.dtype)


def shift_prev(seq: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """``[first, seq[0], ..., seq[T-2]]``: the value at the previous step for every t."""
    return torch.cat([first.to(seq.dtype).expand_as(seq[0]).unsqueeze(0), seq[:-1]], 0)


def reset_into(v: torch.Tensor, h: torch.Tensor, th, s: torch.Tensor, mode: int, tmp: torch.Tensor) -> None:
    """The post-spike membrane of one step into ``v`` (in place): mode 0 subtracts the threshold ``th`` where
    ``s`` fired, 1 zeroes the neurons above it, 2 keeps ``h``. ``tmp`` is scratch of ``h``'s shape."""
    if mode == 0:
        torch.addcmul(h, th, s, value=-1, out=v)
    elif mode == 1:
        torch.le(h, th, out=tmp)
        torch.mul(h, tmp, out=v)
    else:
        v.copy_(h)
