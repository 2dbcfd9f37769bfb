"""``neurosynth convert``: ANN -> SNN conversion of a trained ReLU network (digits runs).

    neurosynth convert --train-ann --ann runs/ann --out runs/snn --calib-batches 4
    neurosynth convert --ann runs/ann --calib-batches 4 --T 8,16,32,64,128,256 --out runs/snn
"""

from __future__ import annotations

import argparse


def _ts(text: str) -> list[int]:
    try:
        ts = [int(t) for t in text.split(",") if t.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--T takes comma-separated integers like 8,16,32; got {text!r}") from e
    if not ts or min(ts) < 1:
        raise argparse.ArgumentTypeError(f"--T needs positive integers; got {text!r}")
    return ts


def register(subparsers):
    p = subparsers.add_parser(
        "convert", help="convert a trained ReLU ANN (run directory) to an SNN of IF neurons",
        description="ANN->SNN conversion: BatchNorm folding, percentile threshold balancing, IF neurons with reset "
                    "by subtraction and half-threshold initial membrane; reports accuracy vs T and SynOps.")
    p.add_argument("--ann", required=True, metavar="RUN_DIR",
                   help="run directory of the trained ReLU ANN (with --train-ann: where to write it)")
    p.add_argument("--out", required=True, metavar="DIR", help="run directory to write the converted SNN to")
    p.add_argument("--calib-batches", type=int, default=4, metavar="N",
                   help="training batches used to calibrate the thresholds (default 4)")
    p.add_argument("--batch-size", type=int, default=64, help="calibration batch size (default 64)")
    p.add_argument("--T", type=_ts, default=[8, 16, 32, 64, 128, 256], metavar="T1,T2,...",
                   help="time steps to evaluate (default 8,16,32,64,128,256)")
    p.add_argument("--percentile", type=float, default=99.9,
                   help="activation percentile used as each layer's scale (default 99.9; 100 = max-norm)")
    p.add_argument("--v-init", type=float, default=0.5,
                   help="initial membrane as a fraction of the threshold (default 0.5; 0 disables the correction)")
    p.add_argument("--synops-samples", type=int, default=128,
                   help="test samples on which SynOps are counted (default 128; 0 skips counting)")
    p.add_argument("--train-ann", action="store_true", help="first train the digits ReLU CNN into --ann")
    p.add_argument("--epochs", type=int, default=40, help="ANN training epochs with --train-ann (default 40)")
    p.add_argument("--seed", type=int, default=0, help="seed of the ANN training and data split (default 0)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def run(args) -> int:
    import sys
    from pathlib import Path

    from neurosynth.errors import UserError

    if args.calib_batches < 1:
        raise UserError(f"--calib-batches must be >= 1, got {args.calib_batches}")
    if not 0 < args.percentile <= 100:
        raise UserError(f"--percentile must be in (0, 100], got {args.percentile}")
    if not 0 <= args.v_init <= 1:
        raise UserError(f"--v-init must be in [0, 1], got {args.v_init}")
    from neurosynth.apps.recipes.ann2snn_digits import convert_run, train_ann_digits

    command = ["neurosynth", *sys.argv[1:]] if sys.argv and sys.argv[0].endswith("neurosynth") else None
    ann_dir, out_dir = Path(args.ann), Path(args.out)
    if ann_dir.resolve() == out_dir.resolve():
        raise UserError("--ann and --out must be different directories")
    if args.train_ann:
        m = train_ann_digits(ann_dir, seed=args.seed, epochs=args.epochs, progress=not args.no_progress,
                             command=command)
        print(f"ANN trained: test accuracy {100 * m['test_accuracy']:.2f}% -> {ann_dir}")
    elif not ann_dir.is_dir():
        raise UserError(f"{ann_dir} does not exist; train an ANN first (add --train-ann to do it here)")
    m = convert_run(ann_dir, out_dir, args.calib_batches, args.T, percentile=args.percentile, v_init=args.v_init,
                    batch_size=args.batch_size, synops_samples=args.synops_samples,
                    progress=not args.no_progress, command=command)
    print((out_dir / "accuracy_vs_T.md").read_text(), end="")
    within = m["first_T_within_1pp"]
    print(f"first T within 1 pp of the ANN: {within if within is not None else 'none of ' + str(args.T)}")
    print(f"run directory: {out_dir}")
    return 0
