"""Train a recurrent LIF network on the Spiking Heidelberg Digits (SHD).

700 input channels -> Linear -> recurrent LIF hidden layer -> Linear -> 20 leaky-integrator (LI) readouts;
the class score is the maximum (``--readout max``) or the mean (``--readout mean``) of each readout
membrane over time (Cramer et al. 2022 used max-over-time). Standard preprocessing: spikes binned into
``--T`` steps spanning 1.4 s from t = 0 (100 steps of 14 ms by default).

    python examples/train_shd.py --data-root ~/data --epochs 30 --out runs/shd          # data in ~/data/SHD/
    python examples/train_shd.py --data-root ~/data --download ...                      # fetch it first

Writes a run directory like ``neurosynth train``: ``arch.json``, ``model.pt``, ``metrics.json``,
``manifest.json`` and ``plots/training.png``.
"""

from __future__ import annotations

import argparse
import sys
import time


def build_model(hidden: int, n_in: int = 700, n_out: int = 20, beta: float = 0.95, beta_out: float = 0.95,
                arch: str = "recurrent"):
    """``arch``: ``recurrent`` (recurrent LIF, the default), ``ff`` (feed-forward LIF hidden layer) or ``alif``
    (recurrent adaptive-threshold LIF, Bellec et al. 2018; adaptation decay 0.98, scale 0.5)."""
    import torch.nn as nn

    from neurosynth.layers import SNN, Recurrent
    from neurosynth.neurons import ALIF, LI, LIF

    if arch == "ff":
        hidden_layer = LIF(beta=beta, threshold=1.0)
    elif arch == "alif":
        hidden_layer = Recurrent(hidden, ALIF(beta=beta, threshold=1.0, adapt_decay=0.98, adapt_scale=0.5))
    elif arch == "recurrent":
        hidden_layer = Recurrent(hidden, LIF(beta=beta, threshold=1.0))
    else:
        raise ValueError(f"arch must be recurrent, ff or alif; got {arch!r}")
    return SNN(nn.Linear(n_in, hidden), hidden_layer, nn.Linear(hidden, n_out), LI(beta=beta_out))


def build_model_from(args):
    return build_model(args.hidden, arch=getattr(args, "arch", "recurrent"))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", required=True, help="folder holding SHD/shd_{train,test}.h5")
    p.add_argument("--download", action="store_true", help="download SHD into --data-root if missing")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--T", type=int, default=100, help="time steps spanning 1.4 s (default 100 = 14 ms bins)")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--readout", choices=["max", "mean"], default="max")
    p.add_argument("--arch", choices=["recurrent", "ff", "alif"], default="recurrent",
                   help="hidden layer: recurrent LIF (default), feed-forward LIF, or recurrent adaptive LIF (ALIF)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N samples of each split")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", default="runs/shd")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--benchmark", type=int, default=0, metavar="N",
                   help="no data needed: time N training batches on generated inputs of the real shapes and "
                        "extrapolate to one epoch of the real training set (8156 samples)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    from torch.utils.data import DataLoader, Subset

    from neurosynth.datasets import collate_time_first, load
    from neurosynth.rundir import RunDir, save_figure
    from neurosynth.training import evaluate, fit
    from neurosynth.utils import seed_all

    torch.set_num_threads(args.threads)
    g = seed_all(args.seed)
    if args.benchmark:
        return benchmark(args, build_model_from(args), (args.T, args.batch_size, 700), 20, 8156, g)
    train = load("shd", args.data_root, "train", T=args.T, download=args.download)
    test = load("shd", args.data_root, "test", T=args.T, download=args.download)
    if args.limit:
        train, test = (Subset(d, range(min(args.limit, len(d)))) for d in (train, test))
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, generator=g,
                              collate_fn=collate_time_first)
    test_loader = DataLoader(test, batch_size=args.batch_size, collate_fn=collate_time_first)

    model = build_model_from(args)
    loss = "max_membrane_ce" if args.readout == "max" else "mean_membrane_ce"
    t0 = time.perf_counter()
    hist = fit(model, train_loader, epochs=args.epochs, lr=args.lr, loss=loss, val_loader=test_loader,
               device=args.device, progress=not args.no_progress)
    final = evaluate(model, test_loader, loss=loss, device=args.device)
    seconds = time.perf_counter() - t0

    run = RunDir(args.out)
    model.to("cpu")
    run.save_model(model)
    results = {"test_accuracy": final["accuracy"], "test_loss": final["loss"], "train_seconds": seconds,
               "seconds_per_epoch": sum(hist["seconds"]) / len(hist["seconds"]),
               "n_train": len(train), "n_test": len(test)}
    run.write_json("metrics.json", {"history": hist, "test": final, **results})
    save_figure(_curves(hist, "SHD recurrent LIF"), run.plot_path("training"))
    config = {k: v for k, v in vars(args).items()} | {"dataset": "shd", "loss": loss}
    run.write_manifest([sys.executable, *sys.argv] if argv is None else ["examples/train_shd.py", *argv],
                       config, args.seed, results)
    print(f"test accuracy {final['accuracy']:.3f}; {results['seconds_per_epoch']:.1f} s/epoch; run dir {run.path}")
    return 0


def benchmark(args, model, shape, n_classes, n_train, g) -> int:
    """Time ``args.benchmark`` training batches (after one warm-up batch) with ``fit`` on Bernoulli(0.05)
    inputs; print seconds per batch and the extrapolated seconds per epoch as JSON."""
    import json
    import math
    import platform

    import torch

    from neurosynth.training import fit

    def batches(n):
        return [((torch.rand(shape, generator=g) < 0.05).float(), torch.randint(0, n_classes, (shape[1],), generator=g))
                for _ in range(n)]

    loss = "max_membrane_ce" if getattr(args, "readout", "mean") == "max" else "mean_membrane_ce"
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


def _curves(hist, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(hist["epoch"], hist["train_loss"], "o-", label="train")
    a.plot(hist["epoch"], hist["val_loss"], "o-", label="test")
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.legend()
    b.plot(hist["epoch"], hist["train_accuracy"], "o-", label="train")
    b.plot(hist["epoch"], hist["val_accuracy"], "o-", label="test")
    b.set_xlabel("epoch")
    b.set_ylabel("accuracy")
    b.legend()
    fig.suptitle(title)
    return fig


if __name__ == "__main__":
    sys.exit(main())
