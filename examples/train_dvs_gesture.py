"""Train a convolutional SNN on DVS128 Gesture (11 classes) or on nfashion_mnist (``--dataset nfashion_mnist``:
Fashion-MNIST converted by the simulated event camera with the N-MNIST saccades, 34x34, 10 classes; the
events are generated into --data-root on first use).

Events are binned by tonic into ``--T`` frames spanning each recording and downsampled from 128x128 to
``--size`` (default 32x32, two polarity channels). Network: two conv(3x3) + LIF + 2x2 max-pool blocks,
a fully connected LIF layer and 11 leaky-integrator readouts scored by their mean membrane over time.

    python examples/train_dvs_gesture.py --data-root ~/data --epochs 30 --T 16 --out runs/dvs_gesture

Writes a run directory like ``neurosynth train``: ``arch.json``, ``model.pt``, ``metrics.json``,
``manifest.json`` and ``plots/training.png``.
"""

from __future__ import annotations

import argparse
import sys
import time


def build_model(size: int = 32, channels: int = 16, hidden: int = 128, n_out: int = 11, beta: float = 0.9):
    import torch.nn as nn

    from neurosynth.layers import SNN
    from neurosynth.neurons import LI, LIF

    if size < 4:
        raise ValueError(f"the frame side must be at least 4 (two 2x2 poolings); got {size}")
    return SNN(
        nn.Conv2d(2, channels, 3, padding=1),
        LIF(beta=beta),
        nn.MaxPool2d(2),
        nn.Conv2d(channels, 2 * channels, 3, padding=1),
        LIF(beta=beta),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * channels * (size // 2 // 2) ** 2, hidden),
        LIF(beta=beta),
        nn.Linear(hidden, n_out),
        LI(beta=beta),
    )


def build_model_from(args):
    if getattr(args, "dataset", "dvs_gesture") == "nfashion_mnist":  # 34x34 sensor, 10 classes
        return build_model(34, args.channels, args.hidden, n_out=10)
    return build_model(args.size, args.channels, args.hidden)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", required=True, help="folder holding DVSGesture/ibmGesture{Train,Test}/ "
                                                      "(nfashion_mnist: where the generated events go)")
    p.add_argument("--dataset", default="dvs_gesture", choices=["dvs_gesture", "nfashion_mnist"])
    p.add_argument("--n-samples", default=None, metavar="TRAIN[,TEST]",
                   help="nfashion_mnist: Fashion-MNIST images to convert per split (default 4000,1000)")
    p.add_argument("--download", action="store_true", help="download DVS128 Gesture into --data-root if missing")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--T", type=int, default=16, help="frames per recording")
    p.add_argument("--size", type=int, default=32, choices=[16, 32, 64, 128], help="frame side after downsampling")
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--limit", type=int, default=None, help="use only the first N samples of each split")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/dvs_gesture")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--benchmark", type=int, default=0, metavar="N",
                   help="no data needed: time N training batches on generated inputs of the real shapes and "
                        "extrapolate to one epoch of the real training set (1077 samples)")
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
        return benchmark(args, build_model_from(args), (args.T, args.batch_size, 2, args.size, args.size), 11, 1077, g)
    if args.dataset == "nfashion_mnist":
        n = [int(v) for v in args.n_samples.split(",")] if args.n_samples else [None, None]
        train = load("nfashion_mnist", args.data_root, "train", T=args.T, n_samples=n[0])
        test = load("nfashion_mnist", args.data_root, "test", T=args.T, n_samples=n[-1] if len(n) > 1 else None)
    else:
        kw = {"T": args.T, "spatial_factor": args.size / 128, "download": args.download}
        train = load("dvs_gesture", args.data_root, "train", **kw)
        test = load("dvs_gesture", args.data_root, "test", **kw)
    if args.limit:
        train, test = (Subset(d, range(min(args.limit, len(d)))) for d in (train, test))
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, generator=g,
                              collate_fn=collate_time_first)
    test_loader = DataLoader(test, batch_size=args.batch_size, collate_fn=collate_time_first)

    model = build_model_from(args)
    loss = "mean_membrane_ce"
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
    save_figure(_curves(hist, f"{args.dataset} conv SNN"), run.plot_path("training"))
    config = dict(vars(args)) | {"loss": loss}
    run.write_manifest([sys.executable, *sys.argv] if argv is None else ["examples/train_dvs_gesture.py", *argv],
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
    for ax, key, label in ((a, "loss", "loss"), (b, "accuracy", "accuracy")):
        ax.plot(hist["epoch"], hist[f"train_{key}"], "o-", label="train")
        ax.plot(hist["epoch"], hist[f"val_{key}"], "o-", label="test")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend()
    fig.suptitle(title)
    return fig


if __name__ == "__main__":
    sys.exit(main())
