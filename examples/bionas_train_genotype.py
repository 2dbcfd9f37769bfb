"""Train a BioNAS genotype (optionally with one rule everywhere) and save a run directory.

The run directory (``model.pt`` + ``arch.json`` + ``metrics.json`` + ``manifest.json``) is what
``neurosynth robustness --model DIR`` attacks:

    python examples/bionas_train_genotype.py --genotype runs/bionas/search_darts_nb201/genotype.json \
        --out runs/bionas/model_mixed --epochs 8
    python examples/bionas_train_genotype.py --genotype ... --rule usf --out runs/bionas/model_usf --epochs 8
    neurosynth robustness --model runs/bionas/model_mixed --n-samples 100
"""

from __future__ import annotations

import argparse
import sys

import torch

from neurosynth.io import read_json
from neurosynth.rules import alignment_angles
from neurosynth.rundir import RunDir
from snn_nas.bionas.data import load_image_data
from snn_nas.bionas.model import build_model, make_spec
from snn_nas.bionas.space import with_rule
from snn_nas.bionas.train import train_model


def main(argv=None) -> int:
    from neurosynth.apps.cli import ScriptHelpFormatter

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=ScriptHelpFormatter)
    ap.add_argument("--genotype", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--rule", default=None, help="train with this single rule end to end (frame included)")
    ap.add_argument("--frame-rule", default="bp")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dataset", choices=["digits", "fashion_mnist", "cifar10"], default="digits")
    ap.add_argument("--data-root", default=None, help="cifar10 (required) / fashion_mnist (optional) data folder")
    ap.add_argument("--limit-train", type=int, default=None, help="train on the first N training images only")
    ap.add_argument("--test-every", type=int, default=1, help="score the test set every N epochs (always after the last)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    g = read_json(args.genotype)
    frame = args.frame_rule
    if args.rule:
        g, frame = with_rule(g, args.rule), args.rule
    data = load_image_data(args.dataset, args.data_root, limit_train=args.limit_train)
    layers = args.layers or (5 if g["space"] == "darts" else 1)
    spec = make_spec(g, C=args.C, layers=layers, num_classes=data.num_classes, input_shape=data.input_shape, frame_rule=frame)
    model = build_model(spec)
    hist = train_model(model, data.x_train, data.y_train, data.x_test, data.y_test, epochs=args.epochs,
                       seed=args.seed, progress=True, test_every=args.test_every)
    with RunDir.create(args.out, kind="example") as rd:
        rd.save_model(model, spec)
        rd.write_json("metrics.json", {"test_accuracy": hist["test_accuracy"][-1], "history": hist,
                                       "alignment_angles": alignment_angles(model)})
        rd.write_manifest(["python", *sys.argv], vars(args), args.seed,
                          {"test_accuracy": hist["test_accuracy"][-1]})
        print(f"test accuracy {hist['test_accuracy'][-1]:.4f}; saved {rd.final}")
    return 0


if __name__ == "__main__":
    from neurosynth.errors import run_script

    raise SystemExit(run_script(main))
