"""``neurosynth train``: train a spiking network and write a run directory."""

from __future__ import annotations

import argparse

# the MLP recipe (train_digits, STDP) trains on digits' own loaders (digits_split_loaders); every other dataset goes to the
# conv recipe, which asks the dataset entry (apps/recipes/csnn.py)
MLP_DATASET = "digits"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("train", help="train a spiking network (digits by default) and write a run directory",
                              description="Train a spiking MLP with surrogate gradients (or STDP) and write DIR/"
                                          "{model.pt, arch.json, metrics.json, manifest.json, plots/}.")
    p.add_argument("--dataset", default="digits",
                   help="dataset name: digits (ships offline; MLP) or a static image dataset for the conv SNN, e.g. "
                        "fashion_mnist (Debian package dataset-fashion-mnist, or --data-root/--download); "
                        "`neurosynth data list` lists them")
    p.add_argument("--arch", default=None, choices=["mlp", "csnn"],
                   help="mlp (default for digits) or csnn: conv-BN-spiking-pool blocks (default for fashion_mnist)")
    p.add_argument("--recipe", default=None, choices=["cpu", "full"],
                   help="csnn presets: cpu (default; T=2, 16,32 channels, 8 epochs: >= 90%% on Fashion-MNIST on a "
                        "2-core CPU) or full (SpikingJelly-size net, T=4, 64 epochs; for a GPU)")
    p.add_argument("--channels", default=None, help="csnn conv channels per block, comma separated (cpu: 16,32)")
    p.add_argument("--data-root", dest="root", default=None,
                   help="folder holding the dataset files (fashion_mnist: default the Debian folder "
                        "/usr/share/datasets/fashion-mnist)")
    p.add_argument("--root", dest="root", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument("--download", action="store_true", help="download the dataset if missing (torchvision)")
    p.add_argument("--limit", type=int, default=None, help="csnn: train on the first N training images only")
    p.add_argument("--out", default=None, help="run directory to write (required unless --resume)")
    p.add_argument("--method", default="surrogate", choices=["surrogate", "stdp"],
                   help="surrogate-gradient BPTT or unsupervised STDP (Diehl & Cook style)")
    p.add_argument("--epochs", type=int, default=None, help="default: 20 (surrogate), 3 (stdp), 8 (csnn cpu)")
    p.add_argument("--T", type=int, default=None, help="time steps per sample (default 20; csnn cpu: 2)")
    p.add_argument("--hidden", default=None, help="hidden sizes, comma separated (default 256; csnn: FC layers "
                                                  "after the conv blocks, cpu recipe: 256)")
    p.add_argument("--neuron", default="lif", help="neuron name from the registry (e.g. lif, cubalif, alif, if)")
    p.add_argument("--beta", type=float, default=None, help="membrane decay (default 0.9; csnn cpu: 0.5)")
    p.add_argument("--threshold", type=float, default=1.0)
    p.add_argument("--reset", default=None, help="subtract | zero | none (default: the neuron's)")
    p.add_argument("--surrogate", default="atan")
    p.add_argument("--readout", default="spiking", choices=["spiking", "li"])
    p.add_argument("--encoder", default=None, choices=["rate", "latency", "current"],
                   help="default rate (digits MLP), current = the image as input current every step (csnn)")
    p.add_argument("--lr", type=float, default=None, help="default 2e-3")
    p.add_argument("--batch-size", type=int, default=None, help="default 64 (csnn: 128)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", default=None, choices=[None, "bf16"], help="bfloat16 autocast")
    p.add_argument("--loihi", action="store_true",
                   help="train the Loihi-2-compatible family (CubaLIF, zero reset, per-layer delay, 8-bit QAT)")
    p.add_argument("--max-delay", type=int, default=None, metavar="K",
                   help="--loihi: learnable synaptic delays of 0..K-1 steps on every synapse (K <= 63; exported as "
                        "netx delays, Lava DelayDense; docs/delays.md)")
    p.add_argument("--no-progress", action="store_true")
    add_workflow_options(p)
    return p


def add_workflow_options(p: argparse.ArgumentParser, shipped: str = "") -> None:
    """The options of the training workflow (``neurosynth.workflow``), shared by ``train`` and the examples.
    ``shipped``: what the --val-fraction help says about datasets with their own validation split."""
    p.add_argument("--val-fraction", type=float, default=None, metavar="F",
                   help="hold out the fraction F of the training data (stratified by class, seeded by --split-seed) "
                        "as the validation split the epoch is chosen on; the test split is read once, at the end. "
                        "Default: the dataset's own validation split if it ships one" + (f" ({shipped})" if shipped
                                                                                          else "") +
                        ", else 0.1; an explicit F carves F of the training data even then. 0: no validation "
                        "(needs --select last)")
    p.add_argument("--split-seed", type=int, default=0,
                   help="seed of the validation split (independent of --seed: runs with other training seeds "
                        "share the split)")
    p.add_argument("--select", default="best_val", choices=["best_val", "last"],
                   help="which epoch's weights are kept and tested: best_val = the highest validation accuracy "
                        "(ties -> the earliest epoch), last = the last epoch (the rule with --val-fraction 0)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue the interrupted run whose --out was RUN_DIR from its last finished epoch (a "
                        "checkpoint is written every epoch); give the same options as the interrupted run. The "
                        "result is identical to an uninterrupted run")


def workflow_out(args, default: str | None = None) -> str:
    """``--out`` (or ``--resume RUN_DIR``, which names it): the run directory; UserError if neither or both
    differ."""
    import os

    from neurosynth.errors import UserError

    resume = getattr(args, "resume", None)
    if resume and args.out and os.path.abspath(args.out) != os.path.abspath(resume):
        raise UserError(f"--resume {resume} continues the run in {resume}; --out {args.out} names another directory "
                        "(drop --out, or pass the same one)")
    out = resume or args.out or default
    if not out:
        raise UserError("--out DIR is required (the run directory to write), or --resume RUN_DIR")
    return out


def run(args) -> int:
    from neurosynth.datasets import DATASETS, entries
    from neurosynth.errors import UserError
    from neurosynth.workflow import check_val_fraction

    args.out = workflow_out(args)
    check_val_fraction(args.val_fraction, args.select)

    if args.dataset not in DATASETS:  # named first: no talk of an --arch that was never passed
        raise UserError(f"--dataset {args.dataset!r} is not a registered dataset; `neurosynth train` takes "
                        f"{', '.join(e.name for e in entries(is_image=True))} (`neurosynth data list` lists all)")
    arch = args.arch or ("csnn" if args.dataset != MLP_DATASET else "mlp")
    if arch == "csnn":
        if args.method != "surrogate" or args.loihi:
            raise UserError("--arch csnn trains with surrogate gradients; --method stdp and --loihi are for the "
                            "digits MLP")
        from neurosynth.apps.recipes.csnn import train_csnn

        result = train_csnn(vars(args))
        print(_summary(result, args.out))
        return 0
    if args.dataset != MLP_DATASET:
        raise UserError(f"`neurosynth train --arch mlp` supports --dataset {MLP_DATASET}; for {args.dataset!r} use --arch csnn "
                        "or the example scripts in examples/ (train_shd.py, train_dvs_gesture.py)")
    for key, value in (("T", 20), ("hidden", "256"), ("beta", 0.9), ("encoder", "rate"), ("lr", 2e-3),
                       ("batch_size", 64)):
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.epochs is None:
        args.epochs = 3 if args.method == "stdp" else 20
    if args.method == "stdp":
        from pathlib import Path

        from neurosynth.apps.recipes.stdp_digits import train_stdp_digits

        if args.resume or args.val_fraction is not None or args.select != "best_val":
            raise UserError("--method stdp learns without labels and has no epoch selection: --resume, "
                            "--val-fraction and --select are for surrogate-gradient training")
        _positive("--epochs", args.epochs)
        _positive("--threads", args.threads)
        metrics = train_stdp_digits(Path(args.out), seed=args.seed, epochs=args.epochs, progress=not args.no_progress)
        print(f"STDP on digits: test accuracy {metrics.get('test_accuracy', float('nan')):.4f}; run directory {args.out}")
        return 0
    result = train_digits(vars(args))
    print(_summary(result, args.out))
    return 0


def _summary(m: dict, out) -> str:
    from neurosynth.workflow import describe

    return (f"test accuracy {m['test_accuracy']:.4f} (read once; {describe(m)}); {m['train_seconds']:.1f} s of "
            f"training; run directory {out}")


def _positive(flag: str, value, kind=int) -> None:
    import math

    from neurosynth.errors import UserError

    if value is None or not math.isfinite(float(value)) or value <= 0:
        example = "1" if kind is int else "1e-3"
        raise UserError(f"{flag} must be a positive {'integer' if kind is int else 'number'} (e.g. {flag} {example}); "
                        f"got {value}")


def check_train_config(cfg: dict) -> tuple[list[int], str]:
    """Validate the train options before anything is written; returns (hidden sizes, torch device)."""
    import math

    from neurosynth.errors import UserError
    from neurosynth.neurons import NEURONS, RESETS
    from neurosynth.surrogate import SURROGATES

    for flag, key in (("--epochs", "epochs"), ("--T", "T"), ("--batch-size", "batch_size"), ("--threads", "threads")):
        if key in cfg:
            _positive(flag, cfg[key])
    _positive("--lr", cfg.get("lr", 2e-3), float)
    raw = str(cfg.get("hidden", "256"))
    try:
        hidden = [int(h) for h in raw.split(",") if h.strip()]
    except ValueError as e:
        raise UserError(f"--hidden must be comma-separated integers, e.g. 128 or 256,128; got {raw!r}") from e
    if not hidden or any(h < 1 for h in hidden):
        raise UserError(f"--hidden sizes must be integers >= 1 (e.g. --hidden 128 or 256,128); got {raw!r}")
    if cfg.get("max_delay") is not None:
        if not cfg.get("loihi"):
            raise UserError("--max-delay adds learnable synaptic delays to the --loihi MLP; add --loihi (float "
                            "networks with delays: examples/train_shd.py --arch delays --max-delay K)")
        if not 2 <= int(cfg["max_delay"]) <= 63:
            raise UserError(f"--max-delay must be in 2..63 (delays 0..K-1 steps; netx stores at most 62); "
                            f"got {cfg['max_delay']}")
    if not cfg.get("loihi"):
        name = str(cfg.get("neuron", "lif"))
        if name not in NEURONS:
            raise UserError(f"--neuron {name!r} is not a registered neuron; choose one of {NEURONS.names()}")
        cls = NEURONS.get(name)
        beta, thr = cfg.get("beta", 0.9), cfg.get("threshold", 1.0)
        if cls.membrane_decay in cls.defaults and not (beta is not None and 0.0 <= beta <= 1.0):
            raise UserError(f"--beta must lie in [0, 1] (the membrane decay per step, exp(-dt/tau)); got {beta}")
        if "threshold" in cls.defaults and not (thr is not None and math.isfinite(thr) and thr > 0):
            raise UserError(f"--threshold must be a positive finite number (e.g. 1.0); got {thr}")
        reset = cfg.get("reset")
        if reset and str(reset).lower() not in RESETS:
            raise UserError(f"--reset {reset!r} is not a reset; choose one of {RESETS.names()}")
        surrogate = str(cfg.get("surrogate", "atan"))
        if surrogate not in SURROGATES:
            raise UserError(f"--surrogate {surrogate!r} is not a surrogate gradient; choose one of "
                            f"{SURROGATES.names()}")
    from neurosynth.utils import check_device

    device = str(cfg.get("device", "cpu"))
    check_device(device)
    return hidden, device


def _check_memory(hidden: list[int], T: int, batch: int, n_in: int = 64, n_out: int = 10,
                  n_samples: int = 1797) -> None:
    """Refuse absurd sizes (``--hidden 1000000000``, ``--T 100000000``) with the estimate, before allocating:
    float32 weights with their gradient and two Adam moments, the encoded data set, and per step of the unrolled
    batch the input, membrane and spikes of every layer (kept for backpropagation through time)."""
    from neurosynth.io import require_memory

    sizes = [n_in, *hidden, n_out]
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    need = 4 * (4 * params + T * n_samples * n_in + 3 * T * batch * sum(sizes))
    require_memory(need, f"training a {'-'.join(map(str, sizes))} network with T={T} and batch {batch}",
                   "use a smaller --hidden, --T or --batch-size")


def train_digits(cfg: dict) -> dict:
    """Train on digits from a config dict (the CLI arguments) and write the run directory. Returns metrics.

    The validation split is carved from the 1,347 training images (``val_fraction``, default 0.1, stratified,
    ``split_seed``); the epoch is chosen on it and the 450 test images are read once (``neurosynth.workflow``)."""

    from neurosynth.arch import build, mlp_spec
    from neurosynth.datasets.digits import digits_split_loaders, load_digits_split
    from neurosynth.errors import UserError
    from neurosynth.rundir import RunDir, record_dataset
    from neurosynth.utils import seed_all
    from neurosynth.workflow import (
        DEFAULT_VAL_FRACTION,
        check_fresh,
        check_resume_options,
        check_val_fraction,
        resume_checkpoint,
    )

    cfg = {k: v for k, v in cfg.items() if not k.startswith("_") and not callable(v) and v is not None}
    hidden, _ = check_train_config(cfg)
    check_val_fraction(cfg.get("val_fraction"), cfg.get("select", "best_val"))
    _check_memory(hidden, int(cfg.get("T", 20)), int(cfg.get("batch_size", 64)))
    resume = bool(cfg.get("resume"))
    if resume:
        check_resume_options(resume_checkpoint(cfg["out"], "train"), _resume_config(cfg), cfg["out"])
    else:
        check_fresh(cfg["out"], "train")
    seed = int(cfg.get("seed", 0))
    seed_all(seed)
    if cfg.get("loihi"):
        try:
            from neurosynth.hardware.targets.loihi_qat import loihi_mlp_spec
        except ImportError as e:
            raise UserError(f"--loihi needs neurosynth.hardware.lava ({e})") from e
        max_delay = cfg.get("max_delay")
        spec = loihi_mlp_spec(64, hidden, 10, max_delay=None if max_delay is None else int(max_delay))
        loss = "rate_ce"
    else:
        params = {"beta": cfg.get("beta", 0.9), "threshold": cfg.get("threshold", 1.0)}
        kw = {"surrogate": cfg.get("surrogate", "atan")}
        if cfg.get("reset"):
            kw["reset"] = cfg["reset"]
        from neurosynth.neurons import NEURONS

        cls = NEURONS.get(cfg.get("neuron", "lif"))
        params = {cls.membrane_decay if k == "beta" else k: v for k, v in params.items()}  # adLIF's is alpha
        params = {k: v for k, v in params.items() if k in cls.defaults}
        spec = mlp_spec(64, hidden, 10, neuron=cfg.get("neuron", "lif"), readout=cfg.get("readout", "spiking"),
                        neuron_params=params, **kw)
        loss = "rate_ce" if cfg.get("readout", "spiking") == "spiking" else "mean_membrane_ce"
    try:
        model = build(spec)
    except ValueError as e:
        raise UserError(f"invalid network settings: {e}") from e
    T, bs, encoder = int(cfg.get("T", 20)), int(cfg.get("batch_size", 64)), cfg.get("encoder", "rate")
    pin = str(cfg.get("device", "cpu")).startswith("cuda")
    xtr, ytr, xte, yte = load_digits_split()
    record_dataset("digits", "train", sha256=_tensor_sha256(xtr, ytr), samples=len(ytr),
                   source="sklearn load_digits, the project's stratified split (random_state=0)")
    record_dataset("digits", "test", sha256=_tensor_sha256(xte, yte), samples=len(yte))
    fraction = cfg.get("val_fraction")
    train, val, test, split = digits_split_loaders(
        T=T, batch_size=bs, seed=seed, encoder=encoder, pin_memory=pin, split_seed=int(cfg.get("split_seed", 0)),
        val_fraction=DEFAULT_VAL_FRACTION if fraction is None else fraction)
    with RunDir.create(cfg["out"], kind="train", resume=resume) as run_dir:
        return _train_into(run_dir, cfg, model, spec, loss, train, val, test, seed, split, resume)


def _tensor_sha256(*tensors) -> str:
    import hashlib

    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def _resume_config(cfg: dict) -> dict:
    """The options a resumed run must share with the interrupted one (the CLI's config)."""
    return {k: v for k, v in cfg.items() if not k.startswith("_") and not callable(v) and v is not None}


def _train_into(run_dir, cfg, model, spec, loss, train, val, test, seed, split, resume) -> dict:
    import sys

    import torch

    from neurosynth.plots import plot_history, plot_raster
    from neurosynth.workflow import TrainConfig, results, selection_record, train_and_test

    tc = TrainConfig(epochs=int(cfg.get("epochs", 20)), lr=float(cfg.get("lr", 2e-3)), loss=loss,
                     device=str(cfg.get("device", "cpu")), amp=cfg.get("amp"))
    command = cfg.get("_command") or sys.argv
    outcome = train_and_test(model, train, val, test, tc, rule=str(cfg.get("select", "best_val")), run=run_dir,
                             resume=resume, progress=not cfg.get("no_progress", False),
                             extra={"config": _resume_config(cfg),
                                    "command": " ".join(map(str, command)) if isinstance(command, list) else command})
    ev = outcome.test
    metrics = {"dataset": "digits (sklearn, 25% stratified test split; validation carved from the training images)",
               **results(outcome, split), "firing_rates": ev["firing_rates"]}
    hist = metrics["history"]
    run_dir.save_model(model, spec)
    run_dir.write_json("metrics.json", metrics)
    plot_history(hist, run_dir.plot_path("curves"), title=f"digits, T={cfg.get('T', 20)}")
    from neurosynth.losses import get_loss

    x, y = next(iter(val if val is not None else train))  # never the test set: it is read once, for the report
    with torch.no_grad():
        out, rec = model(x[:, :1], record=True)
    plot_raster(rec, run_dir.plot_path("raster"), title="spike raster, a validation sample", model=model, output=out,
                label=int(y[0]), prediction=int(get_loss(loss).predict(out)[0]))
    run_dir.write_manifest(command, cfg, seed,
                           {"test_accuracy": ev["accuracy"], "train_seconds": metrics["train_seconds"],
                            "chosen_epoch": metrics["chosen_epoch"], "val_accuracy": metrics["val_accuracy"]},
                           split=split.to_dict(), selection=selection_record(outcome))
    return metrics
