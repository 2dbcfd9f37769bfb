"""Conv-SNN recipe for static-image datasets (Fashion-MNIST by default): conv -> BN -> spiking neuron -> pool
blocks, direct (analog current) input repeated over ``T`` steps, a leaky-integrator readout scored by its
mean membrane (cross-entropy), Adam with cosine decay. Writes a run directory like ``neurosynth train``.

Two presets (``recipe=``):

* ``"cpu"`` (the default): small and fast, sized for a 2-core CPU: T=2, channels 16,32, one FC layer of 256,
  LIF (beta 0.5), batch 128, Adam 2e-3, 8 epochs. Measured in ``docs/datasets.md``.
* ``"full"``: SpikingJelly's Fashion-MNIST tutorial network (conv128-BN-spike-maxpool x2, FC 2048, T=4)
  with a learnable membrane decay (PLIF-style), dropout 0.5, Adam 1e-3, 64 epochs: meant for a GPU; the
  published reference points are 93.3% (SpikingJelly, IF neurons) and 94.38% (PLIF paper). Not measured
  here (no GPU was available).

Any field can be overridden (the CLI flags ``--T``, ``--channels``, ``--hidden``, ``--neuron``, ``--beta``,
``--epochs``, ``--lr``, ``--batch-size``, ``--encoder``...).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

RECIPES: dict[str, dict] = {
    "cpu": {"T": 2, "channels": "16,32", "hidden": "256", "neuron": "lif", "beta": 0.5, "threshold": 1.0,
            "learn": "", "dropout": 0.0, "pool": "max", "epochs": 8, "lr": 2e-3, "batch_size": 128,
            "encoder": "current", "weight_decay": 0.0, "surrogate": "atan"},
    "full": {"T": 4, "channels": "128,128", "hidden": "2048", "neuron": "lif", "beta": 0.5, "threshold": 1.0,
             "learn": "beta", "dropout": 0.5, "pool": "max", "epochs": 64, "lr": 1e-3, "batch_size": 128,
             "encoder": "current", "weight_decay": 0.0, "surrogate": "atan"},
}


def resolve(cfg: dict) -> dict:
    """The recipe's defaults with every field of ``cfg`` that is not ``None`` on top."""
    from neurosynth.errors import UserError

    name = cfg.get("recipe") or "cpu"
    if name not in RECIPES:
        raise UserError(f"--recipe must be one of {sorted(RECIPES)}; got {name!r}")
    out = {**RECIPES[name], **{k: v for k, v in cfg.items() if v is not None}}
    out["recipe"] = name
    return out


def _ints(value, flag: str) -> list[int]:
    from neurosynth.errors import UserError

    try:
        vals = [int(v) for v in str(value).split(",") if v.strip()]
    except ValueError as e:
        raise UserError(f"{flag} must be comma-separated integers, e.g. 16,32; got {value!r}") from e
    if any(v < 1 for v in vals):
        raise UserError(f"{flag} sizes must be positive; got {value!r}")
    return vals


def build_spec(cfg: dict, input_shape, n_out: int) -> dict:
    from neurosynth.arch import csnn_spec
    from neurosynth.errors import UserError
    from neurosynth.neurons import NEURONS

    channels = _ints(cfg["channels"], "--channels")
    if not channels:
        raise UserError("--channels needs at least one conv block, e.g. 16,32")
    hidden = _ints(cfg.get("hidden", ""), "--hidden")
    try:
        cls = NEURONS.get(cfg["neuron"])
    except ValueError as e:
        raise UserError(str(e)) from e
    params = {k: cfg[k] for k in ("beta", "threshold") if k in cls.defaults and cfg.get(k) is not None}
    kw = {"surrogate": cfg.get("surrogate", "atan")}
    learn = [s for s in str(cfg.get("learn") or "").split(",") if s and s in cls.defaults]
    if learn:
        kw["learn"] = learn
    if cfg.get("reset"):
        kw["reset"] = cfg["reset"]
    try:
        return csnn_spec(list(input_shape), channels, n_out, hidden, neuron=cfg["neuron"], neuron_params=params,
                         readout="li", pool=cfg.get("pool", "max"), dropout=float(cfg.get("dropout", 0.0)), **kw)
    except ValueError as e:
        raise UserError(f"cannot build the conv SNN for input {list(input_shape)}: {e}") from e


def load_data(cfg: dict):
    """Train and test :class:`EncodedImages` ([C, H, W] images), each recorded with its SHA-256 in the manifest's
    ``datasets``."""
    from neurosynth.datasets import DATASETS, entries, load
    from neurosynth.errors import UserError
    from neurosynth.rundir import record_dataset

    name = cfg["dataset"]
    if name not in DATASETS or not DATASETS.get(name).is_image:
        raise UserError(f"--arch csnn trains on static image datasets {[e.name for e in entries(is_image=True)]}; "
                        f"got {name!r} (for event data use examples/train_dvs_gesture.py)")
    T = int(cfg["T"])
    if T < 1:
        raise UserError(f"--T must be >= 1; got {T}")
    encoding = {"current": "direct"}.get(cfg["encoder"], cfg["encoder"])
    kw = {"T": T, "encoding": encoding, "seed": int(cfg.get("seed", 0)), "flatten": False}
    if cfg.get("download"):
        kw["download"] = True
    limit = cfg.get("limit")
    if limit:
        kw["limit"] = int(limit)
    root = cfg.get("root")
    train = load(name, root, "train", **kw)
    test = load(name, root, "test", **{k: v for k, v in kw.items() if k != "limit"})
    for split, ds in (("train", train), ("test", test)):
        record_dataset(name, split, sha256=_sha256(ds.images, ds.targets), samples=len(ds),
                       **({"limit": int(limit)} if limit and split == "train" else {}))
    bs = int(cfg["batch_size"])
    if bs < 1:
        raise UserError(f"--batch-size must be >= 1; got {bs}")
    return train, test


def _sha256(*tensors) -> str:
    import hashlib

    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def _subset(ds, idx: list[int], split: str):
    """The images ``idx`` of an :class:`EncodedImages` as a new one (same encoding)."""
    from neurosynth.datasets.static import EncodedImages

    return EncodedImages(ds.name, split, ds.images[idx], ds.targets[idx], ds.classes, ds.T, ds.encoding, ds.seed,
                         ds.encoder_kwargs)


def split_data(cfg: dict, train):
    """``(fit, val, Split)``: the validation split carved from the training images (``val_fraction``, default 0.1,
    stratified by class, seeded by ``split_seed``); ``val_fraction=0``: no validation (``val`` is None)."""
    from neurosynth.workflow import DEFAULT_VAL_FRACTION, Split, split_indices

    fraction = cfg.get("val_fraction")
    fraction = DEFAULT_VAL_FRACTION if fraction is None else float(fraction)
    if fraction == 0:
        return train, None, Split("none", len(train), 0, 0.0, source="no validation split (--val-fraction 0)")
    fit, val, split = split_indices(train.labels(), fraction, int(cfg.get("split_seed") or 0))
    return _subset(train, fit, "fit"), _subset(train, val, "val"), split


def train_csnn(cfg: dict) -> dict:
    """Train the conv SNN from a config dict (CLI arguments; ``None`` means the recipe's default), write the run
    directory ``cfg['out']`` and return the metrics."""
    import torch

    from neurosynth.arch import build
    from neurosynth.errors import UserError
    from neurosynth.plots import plot_history, plot_raster
    from neurosynth.rundir import RunDir
    from neurosynth.utils import seed_all
    from neurosynth.workflow import (
        TrainConfig,
        check_fresh,
        check_resume_options,
        results,
        resume_checkpoint,
        selection_record,
        train_and_test,
    )

    cfg = resolve({k: v for k, v in cfg.items() if not k.startswith("_") and not callable(v)})
    device = str(cfg.get("device") or "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was requested but no CUDA device is available; use --device cpu")
    epochs = int(cfg["epochs"])
    if epochs < 1:
        raise UserError(f"--epochs must be >= 1; got {epochs}")
    if not float(cfg["lr"]) > 0:
        raise UserError(f"--lr must be > 0; got {cfg['lr']}")
    torch.set_num_threads(max(1, int(cfg.get("threads") or 1)))
    resume = bool(cfg.get("resume"))
    if resume:
        check_resume_options(resume_checkpoint(cfg["out"], "train"), _resume_config(cfg), cfg["out"])
    else:
        check_fresh(cfg["out"], "train")
    seed = int(cfg.get("seed", 0))
    seed_all(seed)
    train, test = load_data(cfg)
    fit, val, split = split_data(cfg, train)
    spec = build_spec(cfg, train.images.shape[1:], train.n_classes)
    model = build(spec)
    loss = "mean_membrane_ce"
    bs = int(cfg["batch_size"])
    fit_batches = fit.batches(bs, shuffle=True, seed=seed)
    val_batches = None if val is None else val.batches(1000, shuffle=False)
    tc = TrainConfig(epochs=epochs, lr=float(cfg["lr"]), loss=loss, device=device, amp=cfg.get("amp"),
                     weight_decay=float(cfg.get("weight_decay", 0.0)))
    command = cfg.get("_command") or sys.argv
    command = " ".join(map(str, command)) if isinstance(command, (list, tuple)) else str(command)
    with RunDir.create(cfg["out"], kind="train", resume=resume) as run_dir:
        c0 = time.process_time()
        outcome = train_and_test(model, fit_batches, val_batches, test.batches(1000, shuffle=False), tc,
                                 rule=str(cfg.get("select") or "best_val"), run=run_dir, resume=resume,
                                 progress=not cfg.get("no_progress", False),
                                 extra={"config": _resume_config(cfg), "command": command})
        ev = outcome.test
        metrics = {
            "dataset": f"{cfg['dataset']} (train {len(fit)}, validation {split.n_val}, test {len(test)})",
            "recipe": cfg["recipe"],
            **results(outcome, split),
            "firing_rates": ev["firing_rates"],
            "train_cpu_seconds": time.process_time() - c0,
            "threads": torch.get_num_threads(),
        }
        run_dir.save_model(model, spec)
        run_dir.write_json("metrics.json", metrics)
        plot_history(metrics["history"], run_dir.plot_path("curves"), title=f"{cfg['dataset']} conv SNN, T={cfg['T']}")
        from neurosynth.losses import get_loss

        x, y = next(iter((val if val is not None else fit).batches(1, shuffle=False)))  # never the test set
        with torch.no_grad():
            out, rec = model(x, record=True)
        plot_raster(rec, run_dir.plot_path("raster"), title="spike raster, a validation sample", output=out,
                    label=int(y[0]), prediction=int(get_loss(loss).predict(out)[0]))
        run_dir.write_manifest(command, {**cfg, "out": str(Path(cfg["out"]))}, seed,
                               {"test_accuracy": ev["accuracy"], "train_seconds": metrics["train_seconds"],
                                "chosen_epoch": metrics["chosen_epoch"], "val_accuracy": metrics["val_accuracy"]},
                               split=split.to_dict(), selection=selection_record(outcome))
    return metrics


def _resume_config(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if not k.startswith("_") and not callable(v) and v is not None}
