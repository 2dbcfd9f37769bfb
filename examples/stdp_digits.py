"""Unsupervised STDP on scikit-learn digits (Diehl & Cook 2015 style), no labels during learning.

An excitatory layer with hard winner-take-all, adaptive thresholds and weight normalisation learns by pair STDP
(soft bounds); neurons are then labelled by their strongest class response on the training set, and test
digits are classified by the most active label group. Writes a run directory with metrics.json, model.pt and
plots/receptive_fields.png.

    python examples/stdp_digits.py --epochs 3 --seed 0 --out runs/stdp_digits
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from neurosynth.apps.recipes.stdp_digits import train_stdp_digits


def main(argv=None) -> int:
    from neurosynth.apps.cli import ScriptHelpFormatter

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=ScriptHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--neurons", type=int, default=100)
    ap.add_argument("--T", type=int, default=40)
    ap.add_argument("--out", type=Path, default=Path("runs/stdp_digits"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    command = ["python", "examples/stdp_digits.py", *(argv if argv is not None else sys.argv[1:])]
    m = train_stdp_digits(args.out, seed=args.seed, epochs=args.epochs, n_neurons=args.neurons, T=args.T,
                          command=command)
    print(f"test accuracy {100 * m['test_accuracy']:.2f}% (train {100 * m['train_accuracy']:.2f}%), "
          f"{m['n_test']} test digits, {m['train_seconds']} s -> {args.out}")
    return 0


if __name__ == "__main__":
    from neurosynth.errors import run_script

    raise SystemExit(run_script(main))
