"""Input validation and seeding helpers shared by every part."""

from __future__ import annotations

import random

import numpy as np
import torch


def check_time_first(x: torch.Tensor, name: str = "input", min_rank: int = 3, feature_shape=None) -> None:
    """Raise ``ValueError`` unless ``x`` is a time-first tensor ``[T, B, ...]`` of finite values.

    ``feature_shape`` (optional) is the expected shape after ``[T, B]``.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor in time-first layout [T, B, ...]; got {type(x).__name__}")
    if x.dim() < min_rank:
        raise ValueError(
            f"{name} must be time-first [T, B, ...] with at least {min_rank} dimensions "
            f"(e.g. [T, B, N]); got shape {tuple(x.shape)}. "
            "Add a time axis with x.unsqueeze(0).expand(T, ...) or encode it with neurosynth.encoding."
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} has shape {tuple(x.shape)}: it needs at least one time step (T >= 1) and one sample "
                         "(B >= 1) in the time-first layout [T, B, ...]")
    if feature_shape is not None and tuple(x.shape[2:]) != tuple(feature_shape):
        raise ValueError(
            f"{name} has feature shape {tuple(x.shape[2:])} but this layer expects {tuple(feature_shape)} "
            f"(full layout [T, B, {', '.join(map(str, feature_shape))}]); got shape {tuple(x.shape)}"
        )
    check_finite(x, name)


def check_finite(x: torch.Tensor, name: str = "input") -> None:
    if not x.is_floating_point() or torch.compiler.is_compiling():  # data-dependent: skipped inside torch.compile
        return
    with torch.no_grad():  # one cheap reduction; a finite sum means every element is finite
        if bool(torch.isfinite(x.sum())):
            return
        ok = bool(torch.isfinite(x).all())  # the sum may have overflowed: check element-wise
    if not ok:
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(torch.isinf(x).sum())
        raise ValueError(f"{name} contains {n_nan} NaN and {n_inf} inf values. If this is the network's input, clean "
                         "or clip the data; if the data is finite, an earlier layer produced them (non-finite "
                         "weights/parameters or diverging dynamics: lower the learning rate or clip gradients)")


def check_device(device: str) -> torch.device:
    """``--device`` as a torch device that exists here; a :class:`~neurosynth.errors.UserError` naming the fix
    otherwise (for entry points: the CLI and the examples)."""
    from .errors import UserError

    try:
        dev = torch.device(str(device))
    except (RuntimeError, ValueError) as e:
        raise UserError(f"--device {device!r} is not a torch device; use cpu, cuda or cuda:N") from e
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"--device {device!r} is not supported; use cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device} was requested but no CUDA device is available; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(f"--device {device}: there are only {torch.cuda.device_count()} CUDA devices")
    return dev


def seed_all(seed: int) -> torch.Generator:
    """Seed torch/numpy/random for weight initialisation in entry points (CLI, examples) and return a
    ``torch.Generator`` seeded with ``seed`` for explicit use. Library code never calls this."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g
