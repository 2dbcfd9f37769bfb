"""Time-first batching of variable-length samples.

Samples are ``[T_i, ...]`` tensors; a batch is ``[T_max, B, ...]`` zero-padded after each sample's end,
plus the lengths ``T_i`` (``int64``, shape ``[B]``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pad_time_first(samples: Sequence[torch.Tensor], pad_value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``[T_i, ...]`` tensors into ``[max T_i, B, ...]``; returns ``(batch, lengths)``."""
    if len(samples) == 0:
        raise ValueError("pad_time_first needs at least one sample")
    tail = tuple(samples[0].shape[1:])
    for i, s in enumerate(samples):
        if s.dim() < 1 or tuple(s.shape[1:]) != tail:
            raise ValueError(
                f"sample {i} has shape {tuple(s.shape)} but sample 0 has [T, {', '.join(map(str, tail))}]; "
                "all samples must be time-first with the same per-step shape"
            )
    lengths = torch.tensor([int(s.shape[0]) for s in samples], dtype=torch.int64)
    t_max = int(lengths.max())
    out = samples[0].new_full((t_max, len(samples), *tail), pad_value)
    for i, s in enumerate(samples):
        out[: s.shape[0], i] = s
    return out, lengths


def collate_time_first(batch: Sequence[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``DataLoader`` collate: ``[(x_i [T_i, ...], y_i)] -> (x [T_max, B, ...], y [B], lengths [B])``."""
    if len(batch) == 0:
        raise ValueError("collate_time_first got an empty batch")
    xs = [b[0] for b in batch]
    x, lengths = pad_time_first(xs)
    y = torch.as_tensor([int(b[1]) for b in batch], dtype=torch.int64)
    return x, y, lengths
