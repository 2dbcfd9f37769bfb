"""The plumbing the training examples share (``examples/train_shd.py``, ``examples/train_dvs_gesture.py``): their
workflow options, the validation split, the loaders, :func:`neurosynth.workflow.train_and_test` (epoch chosen on
validation, test read once, a checkpoint every epoch, ``--resume``) and the run directory. The examples keep
their models, data options and extras (Lava verification, plots); this module keeps the loop out of them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

KIND = "example"


def add_options(p, shipped: str = "") -> None:
    """``--val-fraction``, ``--split-seed``, ``--select``, ``--resume`` (as ``neurosynth train``) and ``--grad-clip``."""
    from neurosynth.apps.cli.train import add_workflow_options

    add_workflow_options(p, shipped)
    p.add_argument("--grad-clip", type=float, default=None, metavar="MAX_NORM",
                   help="clip the gradients' global L2 norm to MAX_NORM before every optimiser step (default: no "
                        "clipping)")


def config_of(args, **more) -> dict:
    """The run's config (recorded in the manifest and the checkpoint; compared on ``--resume``)."""
    return {k: v for k, v in vars(args).items() if not callable(v)} | more


def check_options(args, argv, program: str, default_out: str | None = None) -> bool:
    """Validate the workflow options before any data is read; with ``--resume`` set ``args.out`` to the run and
    refuse options other than the interrupted run's (one ``error:`` line). Returns whether this run resumes."""
    from neurosynth.apps.cli.train import workflow_out
    from neurosynth.workflow import check_fresh, check_resume_options, check_val_fraction, resume_checkpoint

    args.out = workflow_out(args, default_out)
    check_val_fraction(args.val_fraction, args.select)
    clip = getattr(args, "grad_clip", None)
    if clip is not None and not (clip > 0 and clip < float("inf")):
        from neurosynth.errors import UserError

        raise UserError(f"--grad-clip {clip}: the largest gradient norm must be a positive number, e.g. --grad-clip 1")
    if not args.resume:
        check_fresh(args.out, KIND)
        return False
    check_resume_options(resume_checkpoint(args.out, KIND), config_of(args), args.out)
    return True


def split(args, train, shipped=None, shipped_name: str = ""):
    """``(fit, val, Split)`` of the training dataset (see :func:`neurosynth.workflow.validation_split`)."""
    from neurosynth.workflow import validation_split

    return validation_split(train, args.val_fraction, args.split_seed, shipped, shipped_name)


def command(argv, program: str) -> list[str]:
    return [sys.executable, *sys.argv] if argv is None else [program, *map(str, argv)]


def train_example(args, argv, *, program: str, model, fit, val, test, split, loss: str, generator,
                  config: dict, title: str, curves: Callable[[dict, str], Any] | None = None,
                  after: Callable[[Any, Any, dict], None] | None = None, results: dict | None = None) -> int:
    """Train ``model`` on the datasets ``fit``/``val`` (epoch chosen on ``val``), test it once on ``test`` and write
    the run directory ``args.out``: ``model.pt``, ``arch.json``, ``metrics.json`` (the test metrics under
    ``"test"``, the chosen epoch, its validation accuracy, the split and the history), ``manifest.json`` (with
    ``"split"`` and ``"selection"``) and ``plots/training.png``. ``after(run, model, results)`` adds to the run
    before the metrics are written (the Lava check). ``curves(history, title)`` draws the plot (default:
    :func:`training_curves`)."""
    from torch.utils.data import DataLoader

    from neurosynth.datasets import collate_time_first
    from neurosynth.rundir import RunDir, save_figure
    from neurosynth.workflow import TrainConfig, describe, selection_record, train_and_test
    from neurosynth.workflow import results as workflow_results

    bs = args.batch_size
    train_loader = DataLoader(fit, batch_size=bs, shuffle=True, generator=generator, collate_fn=collate_time_first)
    val_loader = None if val is None else DataLoader(val, batch_size=bs, collate_fn=collate_time_first)
    test_loader = DataLoader(test, batch_size=bs, collate_fn=collate_time_first)
    tc = TrainConfig(epochs=args.epochs, lr=args.lr, loss=loss, device=args.device,
                     grad_clip=getattr(args, "grad_clip", None))
    cmd = command(argv, program)
    resume = bool(args.resume)
    with RunDir.create(args.out, kind=KIND, resume=resume) as run:
        outcome = train_and_test(model, train_loader, val_loader, test_loader, tc, rule=args.select, run=run,
                                 resume=resume, progress=not args.no_progress,
                                 extra={"config": config_of(args), "command": " ".join(cmd)})
        model.to("cpu")
        run.save_model(model)
        metrics = workflow_results(outcome, split)
        hist = metrics["history"]
        res = {"test_accuracy": metrics["test_accuracy"], "test_loss": metrics["test_loss"],
               "chosen_epoch": metrics["chosen_epoch"], "val_accuracy": metrics["val_accuracy"],
               "train_seconds": metrics["train_seconds"],
               "seconds_per_epoch": sum(hist["seconds"]) / len(hist["seconds"]),
               "n_train": split.n_fit, "n_val": split.n_val, "n_test": len(test), **(results or {})}
        if after is not None:
            after(run, model, res)
        run.write_json("metrics.json", {**metrics, "test": outcome.test, **res})
        save_figure((curves or training_curves)(hist, title), run.plot_path("training"))
        run.write_manifest(cmd, config, args.seed, res, split=split.to_dict(), selection=selection_record(outcome))
        print(f"test accuracy {metrics['test_accuracy']:.3f} (read once; {describe(metrics)}); "
              f"{res['seconds_per_epoch']:.1f} s/epoch; run dir {run.final}")
    return 0


def training_curves(hist: dict, title: str):
    """Loss and accuracy per epoch, training and validation side by side: an example run's ``plots/training.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key in ((a, "loss"), (b, "accuracy")):
        ax.plot(hist["epoch"], hist[f"train_{key}"], "o-", label="train")
        ax.plot(hist["epoch"], hist[f"val_{key}"], "o-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.legend()
    fig.suptitle(title)
    return fig


def benchmark(args, model, shape, n_classes: int, n_train: int, generator, loss: str) -> int:
    """An example's ``--benchmark N``: time ``N`` training batches of ``shape`` (time first) after one warm-up batch,
    with ``fit`` and ``loss`` on Bernoulli(0.05) inputs; print the seconds per batch and the extrapolated seconds per
    epoch of ``n_train`` samples as JSON."""
    import json
    import math
    import platform

    import torch

    from neurosynth.training import fit

    def batches(n):
        return [((torch.rand(shape, generator=generator) < 0.05).float(),
                 torch.randint(0, n_classes, (shape[1],), generator=generator)) for _ in range(n)]

    fit(model, batches(1), epochs=1, lr=args.lr, loss=loss, device=args.device, progress=False, scheduler=None)
    data = batches(args.benchmark)
    hist = fit(model, data, epochs=1, lr=args.lr, loss=loss, device=args.device, progress=False, scheduler=None)
    per_batch = hist["seconds"][0] / args.benchmark
    n_batches = math.ceil(n_train / shape[1])
    print(json.dumps({"input_shape_per_batch": list(shape), "batches_timed": args.benchmark,
                      "seconds_per_batch": round(per_batch, 4), "batches_per_epoch": n_batches,
                      "extrapolated_seconds_per_epoch": round(per_batch * n_batches, 1),
                      "threads": torch.get_num_threads(), "device": str(args.device),
                      "cpu": platform.processor() or platform.machine(), "torch": torch.__version__}))
    return 0
