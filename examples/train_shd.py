"""Train a recurrent LIF network on the Spiking Heidelberg Digits (SHD).

700 input channels -> Linear -> recurrent LIF hidden layer -> Linear -> 20 leaky-integrator (LI) readouts;
the class score is the maximum (``--readout max``) or the mean (``--readout mean``) of each readout
membrane over time (Cramer et al. 2022 used max-over-time). Standard preprocessing: spikes binned into
``--T`` steps spanning 1.4 s from t = 0 (100 steps of 14 ms by default).

    python examples/train_shd.py --data-root ~/data --epochs 30 --out runs/shd          # data in ~/data/SHD/
    python examples/train_shd.py --data-root ~/data --download ...                      # fetch it first

To hand the model to snnTorch or another NIR tool, train it with NIR's reset and a spiking readout, then export
(``export nir`` refuses the default subtract reset, and snnTorch 1.0 has no importer for the LI readout)::

    python examples/train_shd.py --data-root ~/data --reset zero --readout count --out runs/shd_nir
    neurosynth export nir --model runs/shd_nir --out shd.nir   # then snntorch.import_nir.import_from_nir

Writes a run directory like ``neurosynth train``: ``arch.json``, ``model.pt``, ``metrics.json``,
``manifest.json`` and ``plots/training.png``. The epoch is chosen on a validation split (``--dataset spoken_digits``:
its ``valid`` voices, unheard in training; SHD: ``--val-fraction``, default 0.1 of the training data, stratified by
class, ``--split-seed``) and the test split is read once, at the end; a checkpoint is written every epoch, and
``--resume RUN_DIR`` finishes an interrupted run with the result of an uninterrupted one (``docs/training.md``).

``--loihi`` trains the model Loihi 2 runs exactly (``neurosynth.hardware.targets.loihi_qat.loihi_rsnn_spec``): binary input
spikes, QLinear (8-bit grid) -> Delay(1) -> QRecurrent (LIF, or CubaLIF with ``--alpha``; zero reset; 8-bit
recurrent weights; one-step recurrent delay) -> QLinear -> Delay(1) -> spiking LIF output read out by spike count.
Every synapse carries Lava's one-step delay. ``--verify N`` then writes ``loihi.h5`` (netx, ``dense_rec``) into
the run directory and checks N test samples in Lava's simulator (float spike-exact vs torch, fixed point
bit-exact vs the integer reference; accuracies side by side) and estimates the energy per inference at ``--T``:

    python examples/train_shd.py --data-root ~/data --loihi --epochs 20 --verify 500 --out runs/shd_loihi

``--dataset spoken_digits`` trains on the synthetic spoken digits generated under ``DATA_ROOT/SpokenDigits``
(``neurosynth data generate spoken_digits --data-root DATA_ROOT``; SHD layout, test voices unseen in training).
``--verify N --verify-run RUN_DIR`` runs only the Lava check, on a saved ``--loihi`` run (dataset, data root and
T from its manifest), and writes ``RUN_DIR/loihi.h5`` and ``RUN_DIR/loihi_verify.json``:

    python examples/train_shd.py --data-root ~/data --dataset spoken_digits --loihi --T 50 --hidden 64 --out runs/sd
    python examples/train_shd.py --verify 480 --verify-run runs/sd
"""

from __future__ import annotations

import argparse
import sys
import time

from neurosynth.errors import UserError

PROGRAM = "examples/train_shd.py"


def build_model(hidden: int, n_in: int = 700, n_out: int = 20, beta: float = 0.95, beta_out: float = 0.95,
                arch: str = "recurrent", reset: str = "subtract", readout: str = "li"):
    """``arch``: ``recurrent`` (recurrent LIF, the default), ``ff`` (feed-forward LIF hidden layer) or ``alif``
    (recurrent adaptive-threshold LIF, Bellec et al. 2018; adaptation decay 0.98, scale 0.5). ``reset``: the
    hidden neurons' reset, ``subtract`` or ``zero`` (NIR's reset: ``neurosynth export nir`` takes only that one).
    ``readout``: ``li`` (membrane readout) or ``lif`` (spiking output neurons, zero reset: every node of the model
    then has an snnTorch 1.0 importer)."""
    import torch.nn as nn

    from neurosynth.layers import SNN, Recurrent
    from neurosynth.neurons import ALIF, LI, LIF

    if arch == "ff":
        hidden_layer = LIF(beta=beta, threshold=1.0, reset=reset)
    elif arch == "alif":
        hidden_layer = Recurrent(hidden, ALIF(beta=beta, threshold=1.0, adapt_decay=0.98, adapt_scale=0.5,
                                              reset=reset))
    elif arch == "recurrent":
        hidden_layer = Recurrent(hidden, LIF(beta=beta, threshold=1.0, reset=reset))
    else:
        raise ValueError(f"arch must be recurrent, ff or alif; got {arch!r}")
    out = LI(beta=beta_out) if readout == "li" else LIF(beta=beta_out, threshold=1.0, reset="zero")
    return SNN(nn.Linear(n_in, hidden), hidden_layer, nn.Linear(hidden, n_out), out)


def build_loihi_model(hidden: int, n_in: int = 700, n_out: int = 20, beta: float = 0.95, alpha: float = 0.0,
                      threshold: float = 1.0):
    from neurosynth.arch import build
    from neurosynth.hardware.targets.loihi_qat import loihi_rsnn_spec

    return build(loihi_rsnn_spec(n_in, hidden, n_out, beta=beta, alpha=alpha, threshold=threshold))


def build_model_from(args, n_in: int = 700):
    if getattr(args, "loihi", False):
        from neurosynth.hardware.targets.loihi_qat import scale_synapses

        return scale_synapses(build_loihi_model(args.hidden, n_in=n_in, beta=args.beta, alpha=args.alpha),
                              args.init_gain)
    return build_model(args.hidden, n_in=n_in, arch=getattr(args, "arch", "recurrent"),
                       reset=getattr(args, "reset", "subtract"),
                       readout="lif" if getattr(args, "readout", "max") == "count" else "li")


def parse_args(argv=None):
    from neurosynth.apps.cli import ScriptHelpFormatter

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=ScriptHelpFormatter)
    p.add_argument("--data-root", default=None, help="folder holding SHD/shd_{train,test}.h5 (not needed with --benchmark)")
    p.add_argument("--dataset", choices=["shd", "spoken_digits"], default="shd",
                   help="shd (default): DATA_ROOT/SHD/shd_*.h5; spoken_digits: the generated synthetic speech under "
                        "DATA_ROOT/SpokenDigits (`neurosynth data generate spoken_digits --data-root DATA_ROOT`; read "
                        "as generated, whatever its options, and generated with the defaults if missing)")
    p.add_argument("--download", action="store_true", help="download SHD into --data-root if missing")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--T", type=int, default=100, help="time steps spanning 1.4 s (default 100 = 14 ms bins)")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--readout", choices=["max", "mean", "count"], default="max",
                   help="max / mean: over time of an LI membrane readout; count: spiking output neurons read out by "
                        "spike count (with --reset zero every node of the model then imports into snnTorch 1.0)")
    p.add_argument("--arch", choices=["recurrent", "ff", "alif"], default="recurrent",
                   help="hidden layer: recurrent LIF (default), feed-forward LIF, or recurrent adaptive LIF (ALIF)")
    p.add_argument("--reset", choices=["subtract", "zero"], default="subtract",
                   help="hidden neurons' reset; zero is NIR's, so `neurosynth export nir` can hand the model to "
                        "snnTorch and other NIR tools (--loihi models always reset to zero)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N samples of each split")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", default=None, help="run directory to write (default runs/shd; --resume RUN_DIR names it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--loihi", action="store_true",
                   help="train the Loihi-exact recurrent model (binary spikes, 8-bit QAT, zero reset, one-step "
                        "synaptic delays, spike-count readout); see the module docstring")
    p.add_argument("--alpha", type=float, default=0.0, help="--loihi: current decay (0: LIF, > 0: CubaLIF)")
    p.add_argument("--beta", type=float, default=0.95, help="--loihi: membrane decay")
    p.add_argument("--init-gain", type=float, default=3.0,
                   help="--loihi: multiply the initial weights by this (8-bit rounding zeroes small initial weights; "
                        "default 3.0)")
    p.add_argument("--verify", type=int, default=0, metavar="N",
                   help="--loihi: export loihi.h5 and verify it in Lava (float and fixed point) on N test samples")
    p.add_argument("--copies", type=int, default=None, metavar="R",
                   help="--verify: network copies side by side per Lava run (default: auto_copies)")
    p.add_argument("--verify-run", default=None, metavar="RUN_DIR",
                   help="with --verify N, no training: verify the model of an earlier --loihi run directory (its "
                        "--dataset, --data-root and --T are read from its manifest); writes RUN_DIR/loihi.h5 and "
                        "RUN_DIR/loihi_verify.json. Lets a long Lava check run after (and apart from) the training")
    p.add_argument("--benchmark", type=int, default=0, metavar="N",
                   help="no data needed: time N training batches on generated inputs of the real shapes and "
                        "extrapolate to one epoch of the real training set (8156 samples)")
    from neurosynth.apps.recipes.examples import add_options

    add_options(p, shipped="spoken_digits: its valid split, voices unheard in training, whereas a carved "
                          "fraction shares the training voices; shd ships none")
    args = p.parse_args(argv)
    if args.verify_run and not args.verify:
        p.error("--verify-run RUN_DIR needs --verify N")
    if not args.data_root and not args.benchmark and not args.verify_run:
        p.error("--data-root DIR is required (only --benchmark N and --verify-run RUN_DIR run without it)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from neurosynth.utils import check_device

    check_device(args.device)  # before any data is read: one error line, as the CLI prints
    import torch
    from torch.utils.data import Subset

    from neurosynth.datasets import load
    from neurosynth.utils import seed_all

    torch.set_num_threads(args.threads)
    g = seed_all(args.seed)
    if args.benchmark:
        return benchmark(args, build_model_from(args), (args.T, args.batch_size, 700), 20, 8156, g)
    if args.verify_run:
        return verify_run(args.verify_run, args.verify, argv, copies=args.copies)
    if args.verify and not args.loihi:
        raise UserError("--verify needs --loihi")
    from neurosynth.apps.recipes import examples as ex

    ex.check_options(args, argv, PROGRAM, default_out="runs/shd")
    binning = {"binary": True} if args.loihi else {}  # Loihi's input layer takes binary spikes
    train = load(args.dataset, args.data_root, "train", T=args.T, download=args.download, **binning)
    test = load(args.dataset, args.data_root, "test", T=args.T, download=args.download, **binning)
    shipped = None
    if args.dataset == "spoken_digits" and args.val_fraction is None:  # its own validation voices
        shipped = load(args.dataset, args.data_root, "valid", T=args.T, **binning)
    n_in = int(train[0][0].shape[-1])  # 700 for SHD; spoken_digits may be generated with other --channels
    if args.limit:
        train, test = (Subset(d, range(min(args.limit, len(d)))) for d in (train, test))
        if shipped is not None:
            shipped = Subset(shipped, range(min(args.limit, len(shipped))))
    fit, val, split = ex.split(args, train, shipped, "the dataset's valid split: voice variants held out by family "
                                                    "(datasets/spoken_digits.py)")
    model = build_model_from(args, n_in)
    loss = {"max": "max_membrane_ce", "mean": "mean_membrane_ce", "count": "rate_ce"}[args.readout]
    if args.loihi:
        loss = "rate_ce"  # Loihi's output neurons spike: read out by spike count

    def verify(run, model, results):
        if args.loihi and args.verify:
            from neurosynth.hardware.lava.verify import verify_samples

            t1 = time.perf_counter()
            results["loihi"] = verify_samples(model, test, args.verify, run.path / "loihi.h5", (n_in,),
                                              copies=args.copies)
            results["loihi"]["verify_seconds"] = time.perf_counter() - t1

    title = ("SHD" if args.dataset == "shd" else "spoken_digits") + " recurrent LIF" + \
        (" (Loihi-exact)" if args.loihi else "")
    return ex.train_example(args, argv, program=PROGRAM, model=model, fit=fit, val=val, test=test, split=split,
                            loss=loss, generator=g, config=ex.config_of(args, loss=loss), title=title,
                            curves=_curves, after=verify)


def verify_run(run_dir, n: int, argv=None, copies: int | None = None) -> int:
    """``--verify N --verify-run RUN_DIR``: the Lava check of :func:`main` on a saved ``--loihi`` run."""
    import json
    from pathlib import Path

    from neurosynth.datasets import load
    from neurosynth.hardware.lava.verify import verify_samples
    from neurosynth.io import write_json
    from neurosynth.rundir import load_run

    run = Path(run_dir)
    model, _, _ = load_run(run)
    cfg = json.loads((run / "manifest.json").read_text(encoding="utf-8")).get("config", {})
    if not cfg.get("loihi"):
        raise UserError(f"{run} was not trained with --loihi; only --loihi runs can be verified in Lava")
    test = load(cfg.get("dataset", "shd"), cfg["data_root"], "test", T=int(cfg["T"]), binary=True)
    t0 = time.perf_counter()
    res = verify_samples(model, test, n, run / "loihi.h5", (int(test[0][0].shape[-1]),), copies=copies)
    res["verify_seconds"] = time.perf_counter() - t0
    command = [sys.executable, *sys.argv] if argv is None else ["examples/train_shd.py", *argv]
    write_json(run / "loihi_verify.json", {"command": " ".join(map(str, command)), "dataset": cfg.get("dataset", "shd"),
                                           "data_root": cfg["data_root"], "n_test": len(test), **res})
    return 0 if res.get("netx_file") else 1


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

    loss = {"max": "max_membrane_ce", "mean": "mean_membrane_ce", "count": "rate_ce"}[getattr(args, "readout", "mean")]
    if getattr(args, "loihi", False):
        loss = "rate_ce"
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
    a.plot(hist["epoch"], hist["val_loss"], "o-", label="validation")
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.legend()
    b.plot(hist["epoch"], hist["train_accuracy"], "o-", label="train")
    b.plot(hist["epoch"], hist["val_accuracy"], "o-", label="validation")
    b.set_xlabel("epoch")
    b.set_ylabel("accuracy")
    b.legend()
    fig.suptitle(title)
    return fig


if __name__ == "__main__":
    from neurosynth.errors import run_script

    raise SystemExit(run_script(main))
