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

Entry point (digits by default, or tensors from a file)::

    torchrun --standalone --nproc_per_node 2 -m neurosynth.hardware.distributed --out runs/ddp \
        --epochs 5 --batch-size 128 [--device cuda --amp bf16] [--data data.pt] [--arch arch.json --init model.pt]

``--batch-size`` is the global batch; each of the N processes gets ``batch_size / N`` samples per step. Rank 0
writes the run directory (model.pt, arch.json, metrics.json, manifest.json).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
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


# ----------------------------------------------------------------------------- torchrun entry point
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="torchrun ... -m neurosynth.hardware.distributed",
                                description="Data-parallel training (DDP) of a spiking network; launch with torchrun.")
    p.add_argument("--out", required=True, help="run directory (written by rank 0)")
    p.add_argument("--data", default=None, help="tensor file {'x': [T, N, ...], 'y': [N]} (default: digits)")
    p.add_argument("--arch", default=None, help="ArchSpec JSON (default: digits MLP from --hidden)")
    p.add_argument("--init", default=None, help="state_dict (model.pt) to start from")
    p.add_argument("--hidden", default="128")
    p.add_argument("--T", type=int, default=20)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128, help="global batch size (split across processes)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--loss", default="rate_ce")
    p.add_argument("--scheduler", default="cosine", choices=["cosine", "none"])
    p.add_argument("--device", default="auto", help="cpu | cuda | auto")
    p.add_argument("--amp", default=None, choices=[None, "bf16"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    return p


def _tensor_batches(path: str, batch_size: int):
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or "x" not in obj or "y" not in obj:
        raise ValueError(f"{path} must hold a dict {{'x': tensor [T, N, ...], 'y': tensor [N]}}")
    x, y = obj["x"], obj["y"]
    return [(x[:, i:i + batch_size], y[i:i + batch_size]) for i in range(0, y.shape[0], batch_size)]


def main(argv: list[str] | None = None) -> int:
    import time
    from pathlib import Path

    from neurosynth.arch import build, mlp_spec
    from neurosynth.io import read_json
    from neurosynth.rundir import RunDir
    from neurosynth.utils import seed_all

    args = build_parser().parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    info = init_distributed(args.device)
    try:
        seed_all(args.seed)
        spec = read_json(args.arch) if args.arch else mlp_spec(64, [int(h) for h in args.hidden.split(",") if h], 10)
        model = build(spec)
        if args.init:
            model.load_state_dict(torch.load(args.init, map_location="cpu", weights_only=True))
        test = None
        if args.data:
            train = _tensor_batches(args.data, args.batch_size)
        else:
            from neurosynth.digits import digits_loaders

            train, test = digits_loaders(T=args.T, batch_size=args.batch_size, seed=args.seed)
        t0 = time.perf_counter()
        model, hist = fit_distributed(model, train, info, epochs=args.epochs, lr=args.lr, optimizer=args.optimizer,
                                      loss=args.loss, amp=args.amp,
                                      scheduler=None if args.scheduler == "none" else args.scheduler)
        seconds = time.perf_counter() - t0
        if info.is_main:
            results = {"world_size": info.world_size, "backend": info.backend, "device": info.device,
                       "global_batch_size": args.batch_size, "train_seconds": seconds, "history": hist}
            if test is not None:
                from neurosynth.training import evaluate

                ev = evaluate(model, test, args.loss, device=info.device)
                results.update(dataset="digits", test_accuracy=ev["accuracy"], test_loss=ev["loss"])
            run = RunDir(Path(args.out))
            run.save_model(model.cpu(), spec)
            run.write_json("metrics.json", results)
            config = {k: v for k, v in vars(args).items()}
            run.write_manifest([sys.executable, "-m", "neurosynth.hardware.distributed", *(argv or sys.argv[1:])],
                               config, args.seed, {k: v for k, v in results.items() if k != "history"})
            acc = f"; digits test accuracy {results['test_accuracy']:.4f}" if "test_accuracy" in results else ""
            print(f"trained on {info.world_size} process(es) ({info.backend or 'single'}, {info.device}) in "
                  f"{seconds:.1f} s{acc}; run directory {args.out}")
    finally:
        cleanup(info)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
