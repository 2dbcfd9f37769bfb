"""A small training API: ``fit`` and ``evaluate`` for models over time-first data.

Loaders yield ``(x, y)`` or ``(x, y, lengths)`` with ``x`` shaped ``[T, B, ...]``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable

import torch

from .losses import accuracy, firing_rate_regularizer, firing_rates, get_loss


def _unpack(batch):
    if not isinstance(batch, (list, tuple)) or len(batch) < 2:
        raise ValueError("a loader must yield (x, y) or (x, y, lengths) with x time-first [T, B, ...]")
    return batch[0], batch[1]


def _autocast(device: torch.device, amp: str | None):
    if not amp:
        return contextlib.nullcontext()
    if amp != "bf16":
        raise ValueError(f"amp must be None or 'bf16'; got {amp!r}")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _forward(model, x, want_records: bool):
    if want_records:
        try:
            return model(x, record=True)
        except TypeError:
            pass
    return model(x), {}


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0):
    name = name.lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose adam, adamw or sgd")


@torch.no_grad()
def evaluate(model, loader: Iterable, loss="rate_ce", device="cpu", amp: str | None = None,
             record_rates: bool = False) -> dict:
    """Mean loss and accuracy over a loader (and mean firing rates per layer with ``record_rates``)."""
    device = torch.device(device)
    loss_fn = get_loss(loss)
    model.eval()
    total, n, correct = 0.0, 0, 0
    rates: dict[str, float] = {}
    for batch in loader:
        x, y = _unpack(batch)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with _autocast(device, amp):
            out, rec = _forward(model, x, record_rates)
        out = out.float()
        total += float(loss_fn(out, y)) * y.shape[0]
        correct += int((loss_fn.predict(out) == y).sum())
        n += y.shape[0]
        for k, v in firing_rates(rec).items():
            rates[k] = rates.get(k, 0.0) + v * y.shape[0]
    res = {"loss": total / max(n, 1), "accuracy": correct / max(n, 1), "samples": n}
    if record_rates:
        res["firing_rates"] = {k: v / max(n, 1) for k, v in rates.items()}
    return res


def fit(model, train_loader: Iterable, *, epochs: int, lr: float = 1e-3, optimizer: str = "adam",
        loss="rate_ce", val_loader: Iterable | None = None, device="cpu", progress: bool = True,
        reg: dict | None = None, amp: str | None = None, weight_decay: float = 0.0,
        scheduler: str | None = "cosine", on_epoch_end: Callable[[int, dict], None] | None = None,
        grad_clip: float | None = None) -> dict:
    """Train ``model`` with surrogate-gradient BPTT. Returns the history (lists per epoch).

    Args:
        reg: firing-rate regulariser arguments (``{"target": 0.05, "weight": 1.0}``), applied to recorded layers.
        amp: ``"bf16"`` for bfloat16 autocast (CUDA or CPU).
        scheduler: ``"cosine"`` (cosine decay over all epochs) or ``None``.
    """
    from tqdm.auto import tqdm

    if epochs < 1:
        raise ValueError(f"epochs must be >= 1; got {epochs}")
    device = torch.device(device)
    model.to(device)
    loss_fn = get_loss(loss)
    opt = make_optimizer(optimizer, [p for p in model.parameters() if p.requires_grad], lr, weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs) if scheduler == "cosine" else None
    hist: dict[str, list] = {"epoch": [], "train_loss": [], "train_accuracy": [], "val_loss": [], "val_accuracy": [],
                             "seconds": []}
    bar = tqdm(range(epochs), desc="train", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        tot, n, correct = 0.0, 0, 0
        for batch in train_loader:
            x, y = _unpack(batch)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with _autocast(device, amp):
                out, rec = _forward(model, x, bool(reg))
                out = out.float()
                L = loss_fn(out, y)
                if reg:
                    L = L + firing_rate_regularizer(rec, **reg)
            if not torch.isfinite(L):
                raise FloatingPointError(f"loss became {float(L)} at epoch {epoch}; lower the learning rate")
            opt.zero_grad(set_to_none=True)
            L.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            tot += float(L.detach()) * y.shape[0]
            correct += int((loss_fn.predict(out.detach()) == y).sum())
            n += y.shape[0]
        if sched:
            sched.step()
        hist["epoch"].append(epoch + 1)
        hist["train_loss"].append(tot / max(n, 1))
        hist["train_accuracy"].append(correct / max(n, 1))
        if val_loader is not None:
            ev = evaluate(model, val_loader, loss_fn, device, amp)
            hist["val_loss"].append(ev["loss"])
            hist["val_accuracy"].append(ev["accuracy"])
        else:
            hist["val_loss"].append(math.nan)
            hist["val_accuracy"].append(math.nan)
        hist["seconds"].append(time.perf_counter() - t0)
        bar.set_postfix(loss=f"{hist['train_loss'][-1]:.3f}", acc=f"{hist['train_accuracy'][-1]:.3f}",
                        val=f"{hist['val_accuracy'][-1]:.3f}")
        if on_epoch_end:
            on_epoch_end(epoch, hist)
    return hist


__all__ = ["fit", "evaluate", "accuracy", "make_optimizer"]
