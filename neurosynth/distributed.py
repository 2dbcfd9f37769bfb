"""Multi-device training with ``DistributedDataParallel``, launched by ``torchrun``.

Library API (works with :func:`neurosynth.training.fit` unchanged):

- :func:`init_distributed` reads torchrun's ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` and joins the process
  group (``nccl`` on CUDA, ``gloo`` on CPU); without torchrun it returns a single-process :class:`DistInfo`.
- :func:`wrap_model` wraps in DDP (gradients are averaged across processes after every backward).
- :class:`ShardedLoader` splits every *global* batch ``(x [T, B, ...], y [B])`` of a deterministic loader into
  ``world_size`` equal shards along the batch axis, one per rank. Every rank iterates the same loader (same
  seed), so one DDP step on ``world_size`` shards computes the same update as one single-process step on the
  whole global batch (equal shard sizes make the mean of per-shard mean losses the global mean).
- :class:`PinnedLoader` pins batches in page-locked memory so ``.to("cuda", non_blocking=True)`` in ``fit``
  overlaps the copy; :func:`distributed_loader` is the ``Dataset`` path (``DistributedSampler``, pinned memory).

Entry point (digits by default, or tensors from a file): :mod:`neurosynth.apps.ddp`::

    torchrun --standalone --nproc_per_node 2 -m neurosynth.apps.ddp --out runs/ddp \
        --epochs 5 --batch-size 128 [--device cuda --amp bf16] [--data data.pt] [--arch arch.json --init model.pt]

``--batch-size`` is the global batch; each of the N processes gets ``batch_size / N`` samples per step. Rank 0
writes the run directory (model.pt, arch.json, metrics.json, manifest.json).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterable, Iterator

import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _resolve_device(device: str, local_rank: int) -> str:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was requested but no CUDA device is available; use device='cpu'")
        return f"cuda:{local_rank}" if device == "cuda" else device
    if device != "cpu":
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto'; got {device!r}")
    return device


def init_distributed(device: str = "auto", backend: str | None = None, timeout_s: float = 300.0) -> DistInfo:
    """Join the process group torchrun set up (env ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``).

    Without those variables (a plain ``python`` run) nothing is initialised and a single-process
    :class:`DistInfo` is returned, so the same script runs with and without torchrun.
    """
    import datetime

    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _resolve_device(device, local_rank)
    if world <= 1:
        return DistInfo(0, 1, 0, dev, None)
    backend = backend or ("nccl" if dev.startswith("cuda") else "gloo")
    if dev.startswith("cuda"):
        torch.cuda.set_device(torch.device(dev))
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return DistInfo(rank, world, local_rank, dev, backend)


def cleanup(info: DistInfo) -> None:
    import torch.distributed as dist

    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, info: DistInfo) -> nn.Module:
    """Move ``model`` to the rank's device and wrap it in DDP when running distributed."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    model = model.to(info.device)
    if not info.distributed:
        return model
    if info.device.startswith("cuda"):
        return DDP(model, device_ids=[torch.device(info.device).index])
    return DDP(model)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def _shard(t, rank: int, world: int, dim: int):
    if not isinstance(t, torch.Tensor):
        return t
    return torch.tensor_split(t, world, dim=dim)[rank]


@dataclasses.dataclass
class ShardedLoader:
    """This rank's share of every global batch of ``loader`` (``x`` split on dim 1, everything else on dim 0).

    Batches whose size is not a multiple of ``world_size`` are skipped (with one warning), because unequal
    shards would weight samples unequally in DDP's gradient average.
    """

    loader: Iterable
    rank: int
    world_size: int

    def __post_init__(self):
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is outside world_size {self.world_size}")
        self._warned = False

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator:
        for batch in self.loader:
            if not isinstance(batch, (tuple, list)) or not isinstance(batch[0], torch.Tensor):
                raise ValueError("ShardedLoader needs batches (x [T, B, ...], y [B], ...)")
            B = batch[0].shape[1]
            if B % self.world_size:
                if not self._warned:
                    warnings.warn(f"skipping a batch of {B} samples: not divisible by world_size {self.world_size}; "
                                  "choose a global batch size that is", stacklevel=2)
                    self._warned = True
                continue
            yield type(batch)([_shard(batch[0], self.rank, self.world_size, 1),
                               *[_shard(b, self.rank, self.world_size, 0) for b in batch[1:]]])


@dataclasses.dataclass
class PinnedLoader:
    """Yield batches with their tensors in pinned (page-locked) memory, for asynchronous host-to-GPU copies.

    A no-op without CUDA (pinning needs a CUDA runtime)."""

    loader: Iterable

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator:
        pin = torch.cuda.is_available()
        for batch in self.loader:
            if pin:
                batch = type(batch)(b.pin_memory() if isinstance(b, torch.Tensor) else b for b in batch)
            yield batch


def time_first_collate(samples):
    """Collate ``(x [T, ...], y)`` samples into ``(x [T, B, ...], y [B])``."""
    xs, ys = zip(*[(s[0], s[1]) for s in samples])
    return torch.stack([torch.as_tensor(x) for x in xs], 1), torch.as_tensor(ys)


def distributed_loader(dataset, batch_size: int, info: DistInfo, *, shuffle: bool = True, seed: int = 0,
                       num_workers: int = 0, collate_fn=time_first_collate, drop_last: bool = True):
    """A ``DataLoader`` over this rank's ``DistributedSampler`` shard (per-rank ``batch_size``), pinned on CUDA.
    Call ``loader.sampler.set_epoch(epoch)`` each epoch for a new shuffle."""
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=shuffle, seed=seed,
                                 drop_last=drop_last)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=collate_fn, pin_memory=info.device.startswith("cuda"), drop_last=drop_last)


def fit_distributed(model: nn.Module, train_loader: Iterable, info: DistInfo, **fit_kw) -> tuple[nn.Module, dict]:
    """:func:`neurosynth.training.fit` on this rank's shards of ``train_loader``'s global batches (a
    ``DataLoader`` with a ``DistributedSampler``, e.g. from :func:`distributed_loader`, is used as is).

    Returns ``(unwrapped model, history)``; the history's losses/accuracies are this rank's (rank 0's shard).
    """
    from torch.utils.data.distributed import DistributedSampler

    from neurosynth.training import fit

    ddp = wrap_model(model, info)
    already_sharded = isinstance(getattr(train_loader, "sampler", None), DistributedSampler)
    loader: Iterable = train_loader
    if info.distributed and not already_sharded:
        loader = ShardedLoader(train_loader, info.rank, info.world_size)
    if info.device.startswith("cuda"):
        loader = PinnedLoader(loader)
    fit_kw.setdefault("progress", info.is_main)
    hist = fit(ddp, loader, device=info.device, **fit_kw)
    return unwrap(ddp), hist
