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


def clamp_params_(model) -> None:
    """Project every module's learnable parameters back into their valid range: modules with a ``clamp_params_()``
    method (every neuron, ``NeuronModel.clamp_params_``; learnable delays, :class:`neurosynth.delays.DelayedLinear`,
    into ``[0, max_delay - 1]``; a custom layer defines its own).

    ``fit`` calls it after each optimiser step; custom training loops should too (right after
    ``optimizer.step()``), so that e.g. a learnable ``beta`` stays in [0, 1] and the saved run loads again."""
    for m in model.modules():
        fn = getattr(m, "clamp_params_", None)
        if callable(fn):
            fn()


def begin_epoch(model, epoch: int, epochs: int) -> None:
    """Tell every module that schedules something per epoch which epoch (0-based) of ``epochs`` starts: modules with
    a ``start_epoch(epoch, epochs)`` method (e.g. the annealed tap width of learnable delays). ``fit`` and
    :func:`neurosynth.workflow.train_select` call it at the start of every epoch; custom loops should too. What it
    sets must live in the module's state_dict (a buffer), so a checkpoint restores it."""
    for m in model.modules():
        fn = getattr(m, "start_epoch", None)
        if callable(fn):
            fn(epoch, epochs)


def nonfinite_error(model, x: torch.Tensor, where: str) -> FloatingPointError:
    """Say where a NaN/inf came from: the data, the weights/parameters, or the network's dynamics."""
    with torch.no_grad():
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            return FloatingPointError(f"{where}: the input data contains NaN/inf values; clean or clip the data")
        bad = [n for n, t in [*model.named_parameters(), *model.named_buffers()]
               if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        more = f" and {len(bad) - 4} more" if len(bad) > 4 else ""
        return FloatingPointError(
            f"{where}: the model's weights/parameters became non-finite ({', '.join(bad[:4])}{more}); the data is "
            "finite. Training diverged: lower the learning rate, clip gradients (grad_clip=1.0) or bound the "
            "neuron's dynamics")
    return FloatingPointError(
        f"{where}: the network produced NaN/inf although the data and all weights/parameters are finite: its "
        "dynamics diverged (e.g. a membrane growing without bound); bound the neuron's dynamics or lower the "
        "learning rate")


def _check_nonempty(n: int, what: str) -> None:
    if n == 0:
        raise ValueError(f"{what} yielded no batches (an empty dataset or loader); pass a loader with at least "
                         "one (x, y) batch")


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
    _check_nonempty(n, "evaluate: the loader")
    res = {"loss": total / max(n, 1), "accuracy": correct / max(n, 1), "samples": n}
    if record_rates:
        res["firing_rates"] = {k: v / max(n, 1) for k, v in rates.items()}
    return res


def make_scheduler(name: str | None, opt, epochs: int):
    """``"cosine"``: cosine decay of the learning rate over ``epochs`` (stepped once per epoch); ``None``: none."""
    if name is None:
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    raise ValueError(f"unknown scheduler {name!r}; choose 'cosine' or None")


def train_epoch(model, loader: Iterable, opt, loss="rate_ce", *, device="cpu", amp: str | None = None,
                reg: dict | None = None, grad_clip: float | None = None, progress: bool = False,
                desc: str = "epoch", where: str = "training") -> dict:
    """One pass of surrogate-gradient BPTT over ``loader`` with optimiser ``opt``: ``{"loss", "accuracy",
    "samples"}`` (means over the samples, measured on the fly). The one training step of :func:`fit` and of
    :func:`neurosynth.workflow.train_select`."""
    from tqdm.auto import tqdm

    device = torch.device(device)
    loss_fn = get_loss(loss)
    model.train()
    tot, n, correct = 0.0, 0, 0
    try:
        total = len(loader)  # type: ignore[arg-type]
    except TypeError:
        total = None
    # a bar within the epoch too: a long epoch (Fashion-MNIST, ~1 min) shows its batches, not minutes of nothing
    batches = tqdm(loader, desc=desc, unit="batch", total=total, disable=not progress, leave=False, position=1,
                   mininterval=1.0)
    for batch in batches:
        x, y = _unpack(batch)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        try:
            with _autocast(device, amp):
                out, rec = _forward(model, x, bool(reg))
                out = out.float()
                L = loss_fn(out, y)
                if reg:
                    L = L + firing_rate_regularizer(rec, **reg)
        except ValueError as e:
            if "NaN" in str(e) or " inf " in str(e):
                raise nonfinite_error(model, x, where) from e
            raise
        if not torch.isfinite(L):
            raise nonfinite_error(model, x, f"the loss became {float(L)} at {where}")
        opt.zero_grad(set_to_none=True)
        L.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        clamp_params_(model)  # keep learnable neuron parameters (beta, threshold, ...) in their valid range
        tot += float(L.detach()) * y.shape[0]
        correct += int((loss_fn.predict(out.detach()) == y).sum())
        n += y.shape[0]
    _check_nonempty(n, "fit: the train loader")
    return {"loss": tot / n, "accuracy": correct / n, "samples": n}


def new_history() -> dict[str, list]:
    """The per-epoch history ``fit`` and the workflow return: lists indexed by epoch."""
    return {"epoch": [], "train_loss": [], "train_accuracy": [], "val_loss": [], "val_accuracy": [], "seconds": []}


def fit(model, train_loader: Iterable, *, epochs: int, lr: float = 1e-3, optimizer: str = "adam",
        loss="rate_ce", val_loader: Iterable | None = None, device="cpu", progress: bool = True,
        reg: dict | None = None, amp: str | None = None, weight_decay: float = 0.0,
        scheduler: str | None = "cosine", on_epoch_end: Callable[[int, dict], None] | None = None,
        grad_clip: float | None = None) -> dict:
    """Train ``model`` with surrogate-gradient BPTT. Returns the history (lists per epoch).

    The plain loop: the last epoch's weights stay in ``model``. To choose the epoch on a validation split,
    checkpoint every epoch and report the test set once, use :func:`neurosynth.workflow.train_select` (what
    ``neurosynth train`` and the examples run).

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
    sched = make_scheduler(scheduler, opt, epochs)
    hist = new_history()
    bar = tqdm(range(epochs), desc="train", unit="epoch", disable=not progress, leave=False)

    for epoch in bar:
        t0 = time.perf_counter()
        begin_epoch(model, epoch, epochs)
        tr = train_epoch(model, train_loader, opt, loss_fn, device=device, amp=amp, reg=reg, grad_clip=grad_clip,
                         progress=progress, desc=f"epoch {epoch + 1}/{epochs}", where=f"epoch {epoch + 1}")
        if sched:
            sched.step()
        hist["epoch"].append(epoch + 1)
        hist["train_loss"].append(tr["loss"])
        hist["train_accuracy"].append(tr["accuracy"])
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


__all__ = ["fit", "evaluate", "accuracy", "make_optimizer", "make_scheduler", "train_epoch", "new_history", "begin_epoch",
           "clamp_params_"]
