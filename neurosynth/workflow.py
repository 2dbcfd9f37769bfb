"""The training workflow a researcher can trust: a validation split carved from the training data, the epoch
chosen on it, the test set read once, a checkpoint every epoch and an exact resume.

``neurosynth train`` and the example scripts (``examples/train_shd.py``, ``examples/train_dvs_gesture.py``) all run
:func:`train_and_test`; nothing else in them loops over epochs.

* **Validation split.** :func:`split_indices` carves ``fraction`` of the training samples, stratified by class,
  from a ``torch.Generator`` seeded with ``seed`` (the *split* seed, not the training seed): the same data,
  fraction and seed always give the same indices, and every class keeps at least one training sample.
  :func:`validation_split` applies it to a map-style dataset (or takes a split the dataset ships, e.g.
  ``spoken_digits``' ``valid`` voices). The :class:`Split` record goes into the manifest.
* **Selection.** A rule of :data:`SELECTION_RULES` chooses the epoch: ``best_val`` (the highest validation
  accuracy; ties go to the earliest epoch) or ``last`` (the last epoch; the only rule without a validation split).
  The chosen epoch's weights are restored into the model.
* **Test once.** :func:`train_select` never sees the test loader (it has no parameter for it); :func:`train_and_test`
  evaluates the test loader once, after the selection.
* **Checkpoint and resume.** After every epoch :func:`train_select` writes ``checkpoint.pt`` atomically: model,
  optimizer, scheduler, epoch, history, the best-so-far weights and every random state the next epoch draws from
  (the loaders' generators, torch/numpy/python global states for dropout and initialisation). Resuming from it
  gives bit-for-bit the weights and metrics of an uninterrupted run (on the same device and thread count).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .errors import UserError
from .registry import Registry

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = "neurosynth.checkpoint/1"
#: the validation fraction when a dataset ships no validation split and none is given
DEFAULT_VAL_FRACTION = 0.1
#: options that may differ between an interrupted run and its ``--resume`` (they change neither the data nor the
#: arithmetic of the training... except ``threads``, which the manifest records: bit-exactness needs the same)
RESUME_FREE = frozenset({"resume", "out", "no_progress", "threads", "plugin", "command"})


# ----------------------------------------------------------------------------------------------------- the split
@dataclass(frozen=True)
class Split:
    """How the validation split was made (recorded in the manifest under ``"split"``).

    ``how``: ``"carved"`` (``fraction`` of the training data, stratified by class, seeded with ``seed``),
    ``"shipped"`` (the dataset's own validation split, ``source``) or ``"none"`` (no validation: the last epoch
    is taken)."""

    how: str
    n_fit: int
    n_val: int
    fraction: float | None = None
    seed: int | None = None
    source: str = ""
    val_indices_sha256: str | None = None
    val_per_class: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def check_val_fraction(fraction: float | None, select: str = "best_val") -> None:
    """Refuse a validation fraction outside [0, 1) and ``0`` with a rule that needs validation (UserError)."""
    rule = selection_rule(select)
    if fraction is None:
        return
    if not (isinstance(fraction, (int, float)) and math.isfinite(fraction) and 0.0 <= fraction < 1.0):
        raise UserError(f"--val-fraction must be in [0, 1) (the fraction of the training data held out for "
                        f"validation, e.g. 0.1); got {fraction}")
    if fraction == 0 and rule.needs_val:
        raise UserError(f"--val-fraction 0 leaves no validation split to choose the epoch on; --select {rule.name} "
                        "needs one. Pass --select last to take the last epoch (recorded as the rule), or a "
                        "fraction > 0")


def labels_of(dataset) -> list[int]:
    """The class label of every sample of a map-style dataset, read without decoding the inputs where the dataset
    allows: ``labels()``, ``targets``, ``source.targets`` (tonic sources), ``events(i)`` (raw events), else
    ``dataset[i][1]``. A ``torch.utils.data.Subset`` maps its indices."""
    if isinstance(dataset, torch.utils.data.Subset):
        base = labels_of(dataset.dataset)
        return [base[int(i)] for i in dataset.indices]
    fn = getattr(dataset, "labels", None)
    if callable(fn):
        return [int(v) for v in fn()]
    for holder in (dataset, getattr(dataset, "source", None)):
        t = getattr(holder, "targets", None)
        if t is not None and len(t) == len(dataset):
            return [int(v) for v in (t.tolist() if hasattr(t, "tolist") else t)]
    if callable(getattr(dataset, "events", None)):
        return [int(dataset.events(i)[1]) for i in range(len(dataset))]
    return [int(dataset[i][1]) for i in range(len(dataset))]


def _sha256_ints(values: Sequence[int]) -> str:
    return hashlib.sha256(np.asarray(list(values), dtype=np.int64).tobytes()).hexdigest()


def split_indices(labels: Sequence[int], fraction: float, seed: int = 0) -> tuple[list[int], list[int], Split]:
    """Carve ``fraction`` of the samples for validation, stratified by class: ``(fit, val, Split)`` with sorted
    indices. Each class ``c`` of ``n_c`` samples gives ``round(fraction * n_c)`` to validation (at least one when
    the class has two or more samples, never its last one); which ones is a permutation drawn from
    ``torch.Generator().manual_seed(seed)``, class by class in label order, so the result depends only on the
    labels, ``fraction`` and ``seed``. Tiny data where every class has one sample cannot be stratified: then
    ``round(fraction * n)`` samples (at least one) are drawn at random, and ``Split.source`` says so."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1); got {fraction}")
    labels = [int(v) for v in labels]
    g = torch.Generator().manual_seed(int(seed))
    by_class: dict[int, list[int]] = {}
    for i, c in enumerate(labels):
        by_class.setdefault(c, []).append(i)
    fit: list[int] = []
    val: list[int] = []
    per_class: dict[str, int] = {}
    for c in sorted(by_class):
        idx = by_class[c]
        k = int(round(fraction * len(idx)))
        k = min(max(k, 1), len(idx) - 1) if len(idx) >= 2 else 0
        perm = torch.randperm(len(idx), generator=g).tolist()
        val += [idx[p] for p in perm[:k]]
        fit += [idx[p] for p in perm[k:]]
        per_class[str(c)] = k
    source = "stratified by class from the training split (torch.randperm per class, in label order)"
    if not val:  # every class has a single sample (tiny data): stratification is impossible
        if len(labels) < 2:
            raise UserError(f"--val-fraction {fraction} of {len(labels)} training sample(s) leaves nothing to train "
                            "or validate on; use more data or --val-fraction 0 --select last")
        k = min(max(int(round(fraction * len(labels))), 1), len(labels) - 1)
        g = torch.Generator().manual_seed(int(seed))
        perm = torch.randperm(len(labels), generator=g).tolist()
        val, fit = perm[:k], perm[k:]
        per_class = {}
        for i in val:
            per_class[str(labels[i])] = per_class.get(str(labels[i]), 0) + 1
        source = "not stratified: every class has a single sample; a seeded random choice (torch.randperm)"
    fit.sort()
    val.sort()
    split = Split("carved", len(fit), len(val), float(fraction), int(seed), source, _sha256_ints(val), per_class)
    return fit, val, split


def validation_split(train, fraction: float | None, seed: int = 0, shipped=None, shipped_name: str = ""):
    """``(fit, val, Split)`` for a map-style training dataset: the dataset's own validation split ``shipped`` when
    ``fraction`` is ``None`` and it has one; else :data:`DEFAULT_VAL_FRACTION` (``fraction=None``) or ``fraction``
    carved by :func:`split_indices` (``fit``/``val`` are ``Subset`` s of ``train``); ``fraction=0``: no validation
    (``val`` is ``None``)."""
    if fraction is None and shipped is not None:
        return train, shipped, Split("shipped", len(train), len(shipped), source=shipped_name)
    fraction = DEFAULT_VAL_FRACTION if fraction is None else float(fraction)
    if fraction == 0:
        return train, None, Split("none", len(train), 0, 0.0, source="no validation split (--val-fraction 0)")
    fit, val, split = split_indices(labels_of(train), fraction, seed)
    Subset = torch.utils.data.Subset
    return Subset(train, fit), Subset(train, val), split


# ------------------------------------------------------------------------------------------------ the selection
@dataclass(frozen=True)
class BestValidation:
    """The epoch with the highest validation accuracy; ties go to the earliest."""

    name: str = "best_val"
    needs_val: bool = True
    description: str = "highest validation accuracy; ties -> earliest epoch"

    def improves(self, val_accuracy: float, best: float | None) -> bool:
        return best is None or val_accuracy > best


@dataclass(frozen=True)
class LastEpoch:
    """The last epoch (the rule for a run without validation split)."""

    name: str = "last"
    needs_val: bool = False
    description: str = "the last epoch (no selection)"

    def improves(self, val_accuracy: float, best: float | None) -> bool:
        return True


SELECTION_RULES: Registry = Registry("selection rule")
SELECTION_RULES.add("best_val", BestValidation())
SELECTION_RULES.add("last", LastEpoch())


def selection_rule(name: str):
    try:
        return SELECTION_RULES.get(str(name).replace("-", "_"))
    except ValueError as e:
        raise UserError(f"--select {name!r} is not a selection rule; choose one of {SELECTION_RULES.names()}") from e


# --------------------------------------------------------------------------------------------- the training loop
@dataclass(frozen=True)
class TrainConfig:
    """What :func:`train_select` needs to train (frozen: recorded in the checkpoint and compared on resume)."""

    epochs: int
    lr: float = 1e-3
    optimizer: str = "adam"
    loss: str = "rate_ce"
    weight_decay: float = 0.0
    scheduler: str | None = "cosine"
    amp: str | None = None
    grad_clip: float | None = None
    reg: dict | None = None
    device: str = "cpu"

    def to_dict(self) -> dict:
        return asdict(self)


class Selection(NamedTuple):
    """What :func:`train_select` returns; the model holds the chosen epoch's weights."""

    history: dict
    chosen_epoch: int
    val_accuracy: float
    val_loss: float
    train_accuracy: float
    rule: str
    resumed_from: int  # the epochs a resumed run found done (0: a fresh run)


def generator_of(loader) -> torch.Generator | None:
    """The ``torch.Generator`` a loader draws its shuffling/encoding from (``DataLoader.generator``, the
    ``_gen`` of neurosynth's ``EncodedLoader``/``ImageBatches``), or None."""
    for attr in ("generator", "_gen"):
        g = getattr(loader, attr, None)
        if isinstance(g, torch.Generator):
            return g
    return None


def _rng_state(generators: dict[str, torch.Generator]) -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "python": random.getstate(),
             "generators": {k: g.get_state() for k, g in generators.items()}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    random.setstate(_as_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for k, g in generators.items():
        if k in state["generators"]:
            g.set_state(state["generators"][k])


def _as_tuple(x):
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write a checkpoint atomically (temp file + fsync + rename)."""
    from .io import atomic_path

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by :func:`train_select` (tensors and plain data only: ``weights_only=True``)."""
    path = Path(path)
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated / not a checkpoint
        raise UserError(f"cannot read the checkpoint {path}: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}; "
                        "the run cannot be resumed: start it again without --resume") from e
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint; the run cannot be resumed: start it again "
                        "without --resume")
    return ck


def _after_epoch(epoch: int) -> None:
    """Runs after epoch ``epoch`` (1-based) is checkpointed. Tests kill the process here (``kill_point``
    ``train:epoch-<k>``) or patch it to raise, then resume."""
    from .rundir import kill_point

    kill_point(f"train:epoch-{epoch}")


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def train_select(model, train_loader: Iterable, val_loader: Iterable | None, config: TrainConfig, *,
                 rule: str = "best_val", checkpoint: str | os.PathLike | None = None, resume: bool = False,
                 generators: dict[str, torch.Generator] | None = None, extra: dict | None = None,
                 progress: bool = True, log: Callable[[str], None] | None = print,
                 on_checkpoint: Callable[[int], None] | None = None) -> Selection:
    """Train for ``config.epochs`` epochs, evaluate ``val_loader`` after each, keep the epoch ``rule`` chooses and
    restore its weights into ``model``. There is no test loader here: the test set is read once, by the caller,
    after this returns (:func:`train_and_test`).

    ``checkpoint``: a path written atomically after every epoch (then ``on_checkpoint(epoch)`` runs);
    ``resume=True`` continues from it. ``generators``: random generators to save and restore besides the loaders'
    own (:func:`generator_of`). ``extra``: plain data stored in the checkpoint (e.g. the run's config, compared on
    resume). ``log``: receives one line per epoch (train and validation, never test)."""
    from tqdm.auto import tqdm

    from .losses import get_loss
    from .training import evaluate, make_optimizer, make_scheduler, new_history, train_epoch

    sel = selection_rule(rule)
    if sel.needs_val and val_loader is None:
        raise ValueError(f"selection rule {sel.name!r} needs a validation loader; pass one or use rule='last'")
    if config.epochs < 1:
        raise ValueError(f"epochs must be >= 1; got {config.epochs}")
    device = torch.device(config.device)
    model.to(device)
    loss_fn = get_loss(config.loss)
    opt = make_optimizer(config.optimizer, [p for p in model.parameters() if p.requires_grad], config.lr,
                         config.weight_decay)
    sched = make_scheduler(config.scheduler, opt, config.epochs)
    gens = {k: g for k, g in (("train", generator_of(train_loader)), ("val", generator_of(val_loader)),
                              *(generators or {}).items()) if g is not None}
    hist = new_history()
    best_epoch, best_val, best_val_loss, best_state = 0, None, math.nan, None
    start = 0
    if resume:
        if checkpoint is None or not Path(checkpoint).is_file():
            raise UserError(f"no checkpoint {checkpoint} to resume from")
        ck = load_checkpoint(checkpoint)
        if ck["train_config"] != config.to_dict() or ck["rule"] != sel.name:
            raise UserError(f"{checkpoint} was written with other training settings ({ck['train_config']}, rule "
                            f"{ck['rule']}); resume with the interrupted run's options")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if sched is not None:
            sched.load_state_dict(ck["scheduler"])
        hist = {k: list(v) for k, v in ck["history"].items()}
        start = int(ck["epoch"])
        best_epoch, best_val = int(ck["best"]["epoch"]), ck["best"]["val_accuracy"]
        best_val_loss, best_state = ck["best"]["val_loss"], ck["best"]["model"]
        _set_rng_state(ck["rng"], gens)
        if log:
            log(f"resuming after epoch {start}/{config.epochs} (best so far: epoch {best_epoch})")
    if log is print and progress:  # a line printed under the progress bars, not through them
        log = tqdm.write
    epochs = config.epochs
    bar = tqdm(range(start, epochs), desc="train", unit="epoch", disable=not progress, leave=False,
               initial=start, total=epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        tr = train_epoch(model, train_loader, opt, loss_fn, device=device, amp=config.amp, reg=config.reg,
                         grad_clip=config.grad_clip, progress=progress, desc=f"epoch {epoch + 1}/{epochs}",
                         where=f"epoch {epoch + 1}")
        if sched is not None:
            sched.step()
        if val_loader is not None:
            ev = evaluate(model, val_loader, loss_fn, device, config.amp)
            val_acc, val_loss = ev["accuracy"], ev["loss"]
        else:
            val_acc, val_loss = math.nan, math.nan
        for k, v in (("epoch", epoch + 1), ("train_loss", tr["loss"]), ("train_accuracy", tr["accuracy"]),
                     ("val_loss", val_loss), ("val_accuracy", val_acc), ("seconds", time.perf_counter() - t0)):
            hist[k].append(v)
        if sel.improves(val_acc, best_val):
            best_epoch, best_val, best_val_loss, best_state = epoch + 1, val_acc, val_loss, _snapshot(model)
        bar.set_postfix(loss=f"{tr['loss']:.3f}", acc=f"{tr['accuracy']:.3f}", val=f"{val_acc:.3f}")
        if log:
            mark = " *" if best_epoch == epoch + 1 and sel.needs_val else ""
            val = f"val loss {val_loss:.4f} acc {val_acc:.4f}{mark}" if val_loader is not None else "no validation"
            log(f"epoch {epoch + 1}/{epochs}: train loss {tr['loss']:.4f} acc {tr['accuracy']:.4f} | {val} "
                f"({hist['seconds'][-1]:.1f} s)")
        if checkpoint is not None:
            save_checkpoint(checkpoint, {
                "format": CHECKPOINT_FORMAT, "epoch": epoch + 1, "epochs": epochs, "rule": sel.name,
                "train_config": config.to_dict(), "model": _snapshot(model), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict() if sched is not None else None, "history": hist,
                "best": {"epoch": best_epoch, "val_accuracy": best_val, "val_loss": best_val_loss,
                         "model": best_state},
                "rng": _rng_state(gens), "extra": extra or {}})
            if on_checkpoint is not None:
                on_checkpoint(epoch + 1)
            _after_epoch(epoch + 1)
    model.load_state_dict(best_state)
    i = best_epoch - 1
    return Selection(hist, best_epoch, hist["val_accuracy"][i], hist["val_loss"][i], hist["train_accuracy"][i],
                     sel.name, start)


class Outcome(NamedTuple):
    selection: Selection
    test: dict  # evaluate(...) of the test loader, once, on the chosen weights (loss, accuracy, samples, rates)
    train_seconds: float


def train_and_test(model, train_loader: Iterable, val_loader: Iterable | None, test_loader: Iterable,
                   config: TrainConfig, *, rule: str = "best_val", run=None, resume: bool = False,
                   extra: dict | None = None, progress: bool = True, log: Callable[[str], None] | None = print
                   ) -> Outcome:
    """:func:`train_select`, then the test set evaluated once with the chosen weights (on the CPU, with firing
    rates). ``run``: the :class:`~neurosynth.rundir.RunDir` being written; the checkpoint lives in it
    (``checkpoint.pt``, removed once the test is read), and once there is one the run keeps its partial
    directory on an error or Ctrl-C for ``--resume``."""
    from .training import evaluate

    checkpoint = None if run is None else run.path / CHECKPOINT

    def keep(_epoch: int) -> None:
        run.keep_on_error = True

    extra = _plain(extra) if extra is not None else None  # the checkpoint holds plain data only (weights_only)
    t0 = time.perf_counter()
    try:
        sel = train_select(model, train_loader, val_loader, config, rule=rule, checkpoint=checkpoint,
                           resume=resume, extra=extra, progress=progress, log=log,
                           on_checkpoint=keep if run is not None else None)
    except FloatingPointError as e:
        raise UserError(str(e)) from e
    seconds = time.perf_counter() - t0
    test = evaluate(model, test_loader, config.loss, config.device, config.amp, record_rates=True)
    model.cpu()
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return Outcome(sel, test, seconds)


def results(outcome: Outcome, split: Split) -> dict:
    """The metrics every training run writes (``metrics.json``): test accuracy (read once), the chosen epoch and
    its validation accuracy, the rule, the split and the full history."""
    s = outcome.selection
    return {"test_accuracy": outcome.test["accuracy"], "test_loss": outcome.test["loss"],
            "test_samples": outcome.test["samples"], "chosen_epoch": s.chosen_epoch,
            "val_accuracy": s.val_accuracy, "val_loss": s.val_loss, "train_accuracy": s.train_accuracy,
            "selection_rule": s.rule, "epochs": len(s.history["epoch"]), "split": split.to_dict(),
            "train_seconds": outcome.train_seconds, "resumed_after_epoch": s.resumed_from,
            "history": s.history}


def describe(metrics: dict) -> str:
    """``"epoch 7/20 chosen by best_val, validation accuracy 0.9412"`` (or ``"the last epoch, 20/20, no validation
    split"``) from :func:`results`."""
    if metrics["val_accuracy"] != metrics["val_accuracy"]:  # NaN: no validation split
        return f"the last epoch, {metrics['chosen_epoch']}/{metrics['epochs']}, no validation split"
    return (f"epoch {metrics['chosen_epoch']}/{metrics['epochs']} chosen by {metrics['selection_rule']}, validation "
            f"accuracy {metrics['val_accuracy']:.4f}")


def selection_record(outcome: Outcome) -> dict:
    """The manifest's ``"selection"``: the rule, its meaning, the chosen epoch and its validation accuracy."""
    s = outcome.selection
    return {"rule": s.rule, "description": selection_rule(s.rule).description, "chosen_epoch": s.chosen_epoch,
            "val_accuracy": s.val_accuracy, "epochs": len(s.history["epoch"]),
            "test_evaluations": 1}


# ------------------------------------------------------------------------------------------------------ resuming
def _plain(cfg: dict) -> dict:
    return json.loads(json.dumps(cfg, default=str))


def resume_checkpoint(out: str | os.PathLike, kind: str) -> dict:
    """The checkpoint of the interrupted run ``out`` (its ``.<name>.partial`` beside it), or a UserError saying why
    there is nothing to resume: no such run, a run of another kind, a complete run, or one interrupted before its
    first epoch ended."""
    from .rundir import partial_path, read_marker, run_kind

    out = Path(out)
    partial = partial_path(out)
    if partial.is_dir():
        m = read_marker(partial) or {}
        if m.get("kind") == kind and not m.get("complete"):
            if (partial / CHECKPOINT).is_file():
                return load_checkpoint(partial / CHECKPOINT)
            raise UserError(f"--resume {out}: the interrupted run stopped before its first epoch ended (no "
                            f"{CHECKPOINT} in {partial}); start it again without --resume")
    if out.is_dir() and any(out.iterdir()):
        k = run_kind(out)
        if k is None:
            raise UserError(f"--resume {out}: not a neurosynth run directory; pass the --out of an interrupted "
                            f"`{kind}` run")
        if k != kind:
            raise UserError(f"--resume {out}: it holds a `{k}` run, not a `{kind}` run; pass the --out of an "
                            f"interrupted `{kind}` run")
        raise UserError(f"--resume {out}: the run is complete (nothing to resume); choose another --out to train "
                        "again")
    raise UserError(f"--resume {out}: there is no interrupted run there (neither {out} nor {partial} exists); pass "
                    "the --out of the interrupted run")


def check_fresh(out: str | os.PathLike, kind: str) -> None:
    """Before a run that does not resume: refuse (UserError) to discard an interrupted run of ``kind`` at ``out``
    that has a checkpoint (finished epochs), naming ``--resume``."""
    from .rundir import partial_path, read_marker

    partial = partial_path(out)
    m = read_marker(partial) if partial.is_dir() else None
    if m and m.get("kind") == kind and not m.get("complete") and (partial / CHECKPOINT).is_file():
        raise UserError(f"an interrupted `{kind}` run with finished epochs is in {partial}; pass --resume {out} to "
                        f"continue it (same options), or delete {partial} to start over")


def check_resume_options(checkpoint: dict, config: dict, out: str | os.PathLike) -> None:
    """Refuse (UserError naming the first differing option) to resume with options other than the interrupted
    run's, except those in :data:`RESUME_FREE`."""
    old = _plain(checkpoint.get("extra", {}).get("config", {}))
    new = _plain(config)
    for key in sorted(set(old) | set(new)):
        if key in RESUME_FREE or key.startswith("_"):
            continue
        if old.get(key) != new.get(key):
            flag = "--" + key.replace("_", "-")
            command = checkpoint.get("extra", {}).get("command")
            hint = f": {command} --resume {out}" if command else ""
            raise UserError(f"--resume {out}: {flag} is {new.get(key)!r} here but was {old.get(key)!r} in the "
                            f"interrupted run; resume with the same options{hint}")


def command_line(argv: Sequence[str] | None, program: str) -> str:
    """The command as typed (for manifests and resume hints)."""
    if argv is None:
        return " ".join([sys.executable, *sys.argv])
    return " ".join([program, *map(str, argv)])


__all__ = [
    "CHECKPOINT", "DEFAULT_VAL_FRACTION", "SELECTION_RULES", "Outcome", "Selection", "Split", "TrainConfig",
    "check_fresh", "check_resume_options", "check_val_fraction", "describe", "labels_of", "load_checkpoint", "resume_checkpoint", "results",
    "selection_record", "selection_rule", "split_indices", "train_and_test", "train_select", "validation_split",
]
