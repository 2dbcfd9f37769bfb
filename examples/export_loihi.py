"""Train a Loihi-exact spiking MLP on digits (QAT), export it to netx HDF5 and verify it in Lava.

    python examples/export_loihi.py --out runs/loihi_digits [--epochs 15] [--alpha 0.0] [--verify 450]
    python examples/export_loihi.py --out runs/loihi_conv --conv 8 --epochs 10     # strided-conv variant

Steps: ``loihi_mlp_spec`` (QLinear -> Delay(1) -> LIF/CubaLIF(reset='zero'), parameters on Loihi's grids)
-> ``neurosynth.workflow.train_and_test`` on rate-coded digits (the epoch chosen on validation images carved
from the training images, the test images read once) -> run directory (arch.json, model.pt, metrics.json,
manifest.json) -> ``neurosynth export loihi --model RUN --out RUN/net.h5 --verify N``, which checks Lava float
spikes == torch spikes, Lava fixed point == our integer reference bit for bit, and prints torch vs Lava
accuracy on N test samples.
"""

from __future__ import annotations

import argparse
import sys

import torch

from neurosynth.apps.cli import main as cli_main
from neurosynth.arch import build
from neurosynth.datasets.digits import digits_split_loaders
from neurosynth.hardware.lava import loihi_conv_spec, loihi_mlp_spec
from neurosynth.rundir import RunDir
from neurosynth.utils import seed_all
from neurosynth.workflow import TrainConfig, describe, results, train_and_test


def parse(argv=None):
    from neurosynth.apps.cli import ScriptHelpFormatter

    p = argparse.ArgumentParser(description=__doc__, formatter_class=ScriptHelpFormatter)
    p.add_argument("--out", default="runs/loihi_digits")
    p.add_argument("--hidden", type=int, nargs="*", default=[64])
    p.add_argument("--conv", type=int, nargs="*", default=None,
                   help="channels of strided 3x3 conv layers on the 1x8x8 image (instead of the MLP)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--T", type=int, default=16)
    p.add_argument("--beta", type=float, default=0.9)
    p.add_argument("--alpha", type=float, default=0.0, help="current decay factor (0: LIF, >0: CubaLIF)")
    p.add_argument("--threshold", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verify", type=int, default=450, help="test samples to verify in Lava (0: skip)")
    return p.parse_args(argv)


def run(args) -> int:
    torch.set_num_threads(1)
    seed_all(args.seed)
    neuron = {"beta": args.beta, "alpha": args.alpha, "threshold": args.threshold}
    if args.conv:
        spec = loihi_conv_spec((1, 8, 8), args.conv, 10, **neuron)
    else:
        spec = loihi_mlp_spec(64, args.hidden, 10, **neuron)
    model = build(spec)
    # the epoch is chosen on validation images carved from the training images; the test images are read once
    train, val, test, split = digits_split_loaders(T=args.T, batch_size=64, seed=args.seed, image=bool(args.conv))
    outcome = train_and_test(model, train, val, test, TrainConfig(epochs=args.epochs, lr=args.lr), log=None)
    metrics = results(outcome, split)
    with RunDir.create(args.out, kind="example") as rd:
        rd.save_model(model, spec)
        rd.write_json("metrics.json", metrics)
        config = {"dataset": "digits", "T": args.T, "encoder": "rate", **{k: v for k, v in vars(args).items() if k != "T"}}
        rd.write_manifest(sys.argv, config, args.seed, {"accuracy": metrics["test_accuracy"]})
        print(f"torch test accuracy {metrics['test_accuracy']:.4f} ({describe(metrics)}); run directory {rd.final}")
    return cli_main(["export", "loihi", "--model", str(rd.final), "--out", str(rd.final / "net.h5"),
                     "--verify", str(args.verify), "--seed", str(args.seed)])


if __name__ == "__main__":
    from neurosynth.errors import run_script

    raise SystemExit(run_script(lambda: run(parse())))
