"""ANN -> SNN conversion on scikit-learn digits: train a ReLU CNN, convert it, compare accuracy vs T.

Runs the same steps as ``neurosynth convert --train-ann`` and adds an ablation of the two corrections
(half-threshold initial membrane, percentile vs max normalisation) at the same time steps.

    python examples/ann2snn_digits.py --out runs/ann2snn --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from neurosynth.apps.recipes.ann2snn_digits import convert_run, train_ann_digits
from neurosynth.conversion import accuracy_vs_T, convert


def main(argv=None) -> int:
    from neurosynth.apps.cli import ScriptHelpFormatter

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=ScriptHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--calib-batches", type=int, default=4)
    ap.add_argument("--T", default="1,2,4,8,16,32,64,128,256")
    ap.add_argument("--out", type=Path, default=Path("runs/ann2snn"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    Ts = [int(t) for t in args.T.split(",")]
    command = ["python", "examples/ann2snn_digits.py", *(argv if argv is not None else sys.argv[1:])]
    ann_dir, snn_dir = args.out / "ann", args.out / "snn"
    ann = train_ann_digits(ann_dir, seed=args.seed, epochs=args.epochs, command=command)
    m = convert_run(ann_dir, snn_dir, args.calib_batches, Ts, command=command)
    print((snn_dir / "accuracy_vs_T.md").read_text())
    print(f"ANN {100 * ann['test_accuracy']:.2f}%; first T within 1 pp: {m['first_T_within_1pp']}")

    # ablation of the corrections on the same ANN and calibration data
    from neurosynth.datasets.digits import load_digits_split
    from neurosynth.rundir import load_run

    model, _, _ = load_run(ann_dir)
    xtr, _, xte, yte = load_digits_split(image=True)
    calib = xtr[: args.calib_batches * 64]
    ablation = {}
    for name, kw in {"p99.9 + v0=0.5 (default)": dict(percentile=99.9, v_init=0.5),
                     "p99.9 + v0=0": dict(percentile=99.9, v_init=0.0),
                     "max-norm + v0=0.5": dict(percentile=100.0, v_init=0.5),
                     "max-norm + v0=0 (plain)": dict(percentile=100.0, v_init=0.0)}.items():
        snn, _ = convert(model, calib, **kw)
        ablation[name] = {str(T): a for T, a in accuracy_vs_T(snn, xte, yte, Ts).items()}
    (args.out / "ablation.json").write_text(json.dumps(ablation, indent=2) + "\n")
    print("| variant | " + " | ".join(f"T={T}" for T in Ts) + " |")
    print("|---|" + "---:|" * len(Ts))
    for name, acc in ablation.items():
        print(f"| {name} | " + " | ".join(f"{100 * acc[str(T)]:.1f}" for T in Ts) + " |")
    return 0


if __name__ == "__main__":
    from neurosynth.errors import run_script

    raise SystemExit(run_script(main))
