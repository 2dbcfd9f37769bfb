"""How a plasticity rule correlates pre- and post-synaptic quantities for one kind of connection.

A connection turns a pre-synaptic tensor ``pre`` and a post-synaptic tensor ``post`` (both batched) into a
tensor shaped like the connection's weight:

* :class:`Dense` (``nn.Linear``): ``pre [B, N_in]``, ``post [B, N_out]`` -> ``[N_out, N_in]``,
  ``sum_b post[b, o] * pre[b, i]``.
* :class:`Conv2d` (``nn.Conv2d``): ``pre [B, C_in, H, W]``, ``post [B, C_out, H', W']`` ->
  ``[C_out, C_in, kh, kw]``, the sum over batch and output positions of ``post`` times the input patch that
  position sees (the same correlation as the weight gradient of a convolution, i.e. weight sharing).

``reduce="mean"`` divides by the batch size (one learning rate for every batch size); ``"sum"`` does not.
Unbatched inputs (no leading batch dimension) are accepted and treated as a batch of one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

_REDUCE = ("mean", "sum")


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _check_reduce(reduce: str) -> None:
    if reduce not in _REDUCE:
        raise ValueError(f"reduce must be one of {_REDUCE}, got {reduce!r}")


@dataclass(frozen=True)
class Dense:
    """All-to-all connection with weight ``[N_out, N_in]`` (the ``nn.Linear`` layout)."""

    reduce: str = "mean"

    def __post_init__(self) -> None:
        _check_reduce(self.reduce)

    def correlate(self, pre: Tensor, post: Tensor) -> Tensor:
        if pre.dim() == 1:
            pre = pre.unsqueeze(0)
        if post.dim() == 1:
            post = post.unsqueeze(0)
        if pre.dim() != 2 or post.dim() != 2 or pre.shape[0] != post.shape[0]:
            raise ValueError(
                f"Dense connection expects pre [B, N_in] and post [B, N_out] with the same B, "
                f"got {tuple(pre.shape)} and {tuple(post.shape)}"
            )
        out = post.transpose(0, 1) @ pre
        return out / pre.shape[0] if self.reduce == "mean" else out

    def weight_shape(self, n_in: int, n_out: int) -> tuple[int, int]:
        return (n_out, n_in)


@dataclass(frozen=True)
class Conv2d:
    """2-d convolution with weight ``[C_out, C_in, kh, kw]`` (``groups=1``)."""

    kernel_size: int | tuple[int, int]
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] = 0
    dilation: int | tuple[int, int] = 1
    reduce: str = "mean"

    def __post_init__(self) -> None:
        _check_reduce(self.reduce)

    @classmethod
    def from_module(cls, conv: torch.nn.Conv2d, reduce: str = "mean") -> Conv2d:
        if conv.groups != 1:
            raise ValueError("STDP on grouped convolutions is not supported; use groups=1")
        if isinstance(conv.padding, str):
            raise ValueError("use numeric padding for a plastic Conv2d (padding='same' is not supported)")
        return cls(conv.kernel_size, conv.stride, conv.padding, conv.dilation, reduce)

    def correlate(self, pre: Tensor, post: Tensor) -> Tensor:
        if pre.dim() == 3:
            pre = pre.unsqueeze(0)
        if post.dim() == 3:
            post = post.unsqueeze(0)
        if pre.dim() != 4 or post.dim() != 4 or pre.shape[0] != post.shape[0]:
            raise ValueError(
                f"Conv2d connection expects pre [B, C_in, H, W] and post [B, C_out, H', W'] with the same B, "
                f"got {tuple(pre.shape)} and {tuple(post.shape)}"
            )
        kh, kw = _pair(self.kernel_size)
        cols = F.unfold(pre, (kh, kw), dilation=_pair(self.dilation), padding=_pair(self.padding),
                        stride=_pair(self.stride))  # [B, C_in*kh*kw, L]
        b, c_out = post.shape[:2]
        p = post.reshape(b, c_out, -1)
        if p.shape[-1] != cols.shape[-1]:
            raise ValueError(
                f"post has {p.shape[-1]} positions but the convolution of pre {tuple(pre.shape)} gives "
                f"{cols.shape[-1]}; check kernel_size/stride/padding/dilation"
            )
        out = torch.einsum("bol,bil->oi", p, cols).reshape(c_out, pre.shape[1], kh, kw)
        return out / b if self.reduce == "mean" else out


Connection = Dense | Conv2d


def connection_for(module: torch.nn.Module, reduce: str = "mean") -> Connection:
    """The connection matching an ``nn.Linear`` or ``nn.Conv2d`` module."""
    if isinstance(module, torch.nn.Linear):
        return Dense(reduce)
    if isinstance(module, torch.nn.Conv2d):
        return Conv2d.from_module(module, reduce)
    raise ValueError(f"STDP supports nn.Linear and nn.Conv2d connections, got {type(module).__name__}")
