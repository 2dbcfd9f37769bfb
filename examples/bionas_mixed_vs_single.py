"""BioNAS evidence: a searched mixed-rule architecture vs the same architecture with a single rule.

Trains the derived genotype (from ``neurosynth search bio ... --out DIR``: ``DIR/genotype.json``) on digits or
Fashion-MNIST with the same recipe for every configuration and several seeds:

* ``mixed`` : the searched (op, rule) pairs, frame (stem / reduction blocks / classifier) trained by BP, as in
  the paper's BioNAS models;
* ``<rule> e2e`` : every layer, frame included, trained by one rule (the paper's single-rule baselines);
* ``<rule> edges`` : the searched ops with one rule on every edge, frame BP (the controlled comparison: only
  the mixing differs from ``mixed``);
* ``random-k`` : the searched ops with rules drawn at random per edge (the paper's Table 5 analogue).

Per-epoch gradient variance (the paper's Fig. 3) is logged for every run. Writes ``results.json``,
``table.md``, ``grad_variance_*.png`` and ``test_accuracy_*.png`` into ``--out``. ``results.json`` appears
only when every configuration has finished, written to a temporary file and renamed (never a partial
table); progress is kept meanwhile in ``results.partial.json`` (also replaced atomically), and ``--resume``
continues from it. ``--save-models`` keeps a run directory per (configuration, seed) under ``OUT/models/``
for ``neurosynth robustness --model``.

    python examples/bionas_mixed_vs_single.py --genotype runs/bionas/search_darts_nb201/genotype.json \
        --out runs/bionas/mixed_vs_single --epochs 10 --seeds 0 1 2
    python examples/bionas_mixed_vs_single.py --genotype G --dataset fashion_mnist --limit-train 2000 \
        --test-every 4 --epochs 4 --configs mixed,e2e,edges --save-models --out runs/bionas_fmnist/mvs
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

from neurosynth.errors import UserError
from neurosynth.io import read_json, write_json
from snn_nas.bionas.data import load_image_data
from snn_nas.bionas.model import build_model, make_spec
from snn_nas.bionas.plot import plot_curves
from snn_nas.bionas.space import CellSpace, edge_rules, with_rule
from snn_nas.bionas.train import train_model


def random_rules(genotype: dict, rules: tuple[str, ...], rng: np.random.Generator) -> dict:
    g = json.loads(json.dumps(genotype))
    for key in ("normal", "reduce", "edges"):
        for e in g.get(key, []):
            if e["rule"] is not None:
                e["rule"] = str(rules[int(rng.integers(len(rules)))])
    return g


PARTIAL = "results.partial.json"
SETTINGS = ("dataset", "limit_train", "epochs", "seeds", "C", "layers", "batch_size")


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.replace("(searched)", "").lower()).strip("_")


def main(argv=None) -> int:
    from neurosynth.apps.cli import ScriptHelpFormatter

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=ScriptHelpFormatter)
    ap.add_argument("--genotype", help="genotype.json of a search (required unless --merge)")
    ap.add_argument("--merge", nargs="+", default=None, metavar="DIR",
                    help="only combine the results.json of earlier runs (e.g. config groups run in parallel)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--dataset", choices=["digits", "fashion_mnist", "cifar10"], default="digits")
    ap.add_argument("--data-root", default=None, help="cifar10 (required) / fashion_mnist (optional) data folder")
    ap.add_argument("--limit-train", type=int, default=None, help="train on the first N training images only")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--test-every", type=int, default=1,
                    help="score the test set every N epochs (always after the last); >1 saves time on big test sets")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--rules", default="bp,fa,usf,brsf,frsf")
    ap.add_argument("--random", type=int, default=3, help="number of random rule assignments")
    ap.add_argument("--configs", default="mixed,e2e,edges,random", help="which groups to run")
    ap.add_argument("--save-models", action="store_true",
                    help="save a run directory per (configuration, seed) under OUT/models/ (for `neurosynth robustness`)")
    ap.add_argument("--resume", action="store_true", help=f"skip the configurations already in OUT/{PARTIAL}")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.merge:
        results = None
        for d in args.merge:
            if not Path(d, "results.json").exists() and Path(d, PARTIAL).exists():
                raise UserError(f"{d} holds only {PARTIAL} (an unfinished run); finish it with --resume first")
            r = read_json(f"{d}/results.json")
            if results is None:
                results = r
            else:
                diff = [k for k in SETTINGS if r.get(k) != results.get(k)]
                if diff:
                    raise UserError(f"{d} was run with different settings ({', '.join(diff)}); not merging")
                results["configs"].update(r["configs"])
        write_json(f"{args.out}/results.json", results)
        report(results, args.out)
        return 0
    if not args.genotype:
        ap.error("--genotype is required")
    genotype = read_json(args.genotype)
    space = CellSpace(genotype["space"])
    space.validate(genotype)
    layers = args.layers or (5 if genotype["space"] == "darts" else 1)
    data = load_image_data(args.dataset, args.data_root, limit_train=args.limit_train)
    rules = tuple(r for r in args.rules.split(",") if r)
    groups = set(args.configs.split(","))
    configs: dict[str, tuple[dict, str]] = {}
    if "mixed" in groups:
        configs["mixed (searched)"] = (genotype, "bp")
    for r in rules:
        if "e2e" in groups:
            configs[f"{r} e2e"] = (with_rule(genotype, r), r)
        if "edges" in groups and r != "bp":
            configs[f"{r} edges"] = (with_rule(genotype, r), "bp")
    if "random" in groups:
        rng = np.random.default_rng(1234)
        bio = tuple(r for r in rules if r != "bp")
        for k in range(args.random):
            configs[f"mixed random-{k + 1}"] = (random_rules(genotype, bio, rng), "bp")

    results: dict = {"genotype": genotype, "dataset": args.dataset, "limit_train": args.limit_train,
                     "n_train": len(data.y_train), "n_test": len(data.y_test), "epochs": args.epochs,
                     "seeds": args.seeds, "C": args.C, "layers": layers, "batch_size": args.batch_size,
                     "command": ["python", *sys.argv], "threads": torch.get_num_threads(),
                     "cpu_count": os.cpu_count(), "load_average_start": list(os.getloadavg()), "configs": {}}
    partial = Path(args.out) / PARTIAL
    if args.resume and partial.exists():
        old = read_json(partial)
        diff = [k for k in SETTINGS if old.get(k) != results.get(k)]
        if diff:
            raise UserError(f"{partial} was run with different settings ({', '.join(diff)}); use another --out")
        results["configs"] = {k: v for k, v in old["configs"].items() if k in configs}
        print(f"resuming: {len(results['configs'])} configurations already done", flush=True)
    t0 = time.time()
    for name, (g, frame) in configs.items():
        if name in results["configs"]:
            continue
        runs, cpu = [], []
        for seed in args.seeds:
            torch.manual_seed(seed)
            spec = make_spec(g, C=args.C, layers=layers, num_classes=data.num_classes, input_shape=data.input_shape,
                             frame_rule=frame)
            model = build_model(spec)
            c0 = time.process_time()
            hist = train_model(model, data.x_train, data.y_train, data.x_test, data.y_test, epochs=args.epochs,
                               batch_size=args.batch_size, seed=seed, test_every=args.test_every)
            cpu.append(time.process_time() - c0)
            runs.append(hist)
            if args.save_models:
                save_model(Path(args.out) / "models" / f"{slug(name)}-s{seed}", model, spec, hist, args, name, seed)
            print(f"[{time.time() - t0:7.1f}s] {name:22s} seed {seed}: test {hist['test_accuracy'][-1]:.4f} "
                  f"gradvar {hist['grad_variance'][-1]:.3e} ({cpu[-1]:.1f} s CPU)", flush=True)
        acc = np.array([h["test_accuracy"][-1] for h in runs])
        results["configs"][name] = {
            "frame_rule": frame, "edge_rules": edge_rules(g), "test_accuracy": acc.tolist(),
            "mean": float(acc.mean()), "std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            "grad_variance": [h["grad_variance"] for h in runs], "test_curve": [h["test_accuracy"] for h in runs],
            "train_loss": [h["train_loss"] for h in runs], "train_accuracy": [h["train_accuracy"] for h in runs],
            "cpu_seconds": cpu}
        write_json(partial, results)  # progress only (atomic); results.json is written once, complete
    results["load_average_end"] = list(os.getloadavg())
    write_json(Path(args.out) / "results.json", results)
    partial.unlink(missing_ok=True)
    report(results, args.out)
    return 0


def save_model(path: Path, model, spec, hist, args, name: str, seed: int) -> None:
    from neurosynth.rules import alignment_angles
    from neurosynth.rundir import RunDir

    with RunDir.create(path, kind="example") as rd:
        rd.save_model(model, spec)
        rd.write_json("metrics.json", {"test_accuracy": hist["test_accuracy"][-1], "history": hist,
                                       "alignment_angles": alignment_angles(model), "configuration": name})
        rd.write_manifest(["python", *sys.argv], {"dataset": args.dataset, "configuration": name,
                                                  "limit_train": args.limit_train, "epochs": args.epochs,
                                                  "C": args.C}, seed, {"test_accuracy": hist["test_accuracy"][-1]})


def report(results: dict, out: str) -> None:
    n_train = results.get("n_train")
    lines = [f"{results.get('dataset', 'digits')}, {results['epochs']} epochs"
             f"{f' on {n_train} training images' if n_train else ''}, seeds {results['seeds']}; "
             f"test accuracy (%) on {results.get('n_test', 'all')} test images, mean ± sd over seeds.", "",
             "| configuration | frame | test accuracy (%) | final grad variance |", "|---|---|---|---|"]
    for name, r in results["configs"].items():
        gv = np.mean([v[-1] for v in r["grad_variance"]])
        lines.append(f"| {name} | {r['frame_rule']} | {100 * r['mean']:.2f} ± {100 * r['std']:.2f} | {gv:.3e} |")
    table = "\n".join(lines)
    from neurosynth.io import atomic_write

    with atomic_write(f"{out}/table.md") as f:
        f.write(table + "\n")
    print(table)
    keep = [n for n in results["configs"] if "random" not in n]
    for suffix, title in (("e2e", "end to end"), ("edges", "on the searched edges, frame BP")):
        names = [n for n in keep if n.startswith("mixed") or n.endswith(suffix)]
        if len(names) > 1:
            plot_curves({n: results["configs"][n]["grad_variance"] for n in names}, f"{out}/grad_variance_{suffix}.png",
                        "gradient variance (mean over weights)", f"Gradient variance per epoch: mixed vs single rule "
                        f"({title})", log=True)
            curves = {n: results["configs"][n]["test_curve"] for n in names}
            if all(v == v for c in curves.values() for run in c for v in run):  # skipped epochs are nan
                plot_curves(curves, f"{out}/test_accuracy_{suffix}.png", "test accuracy",
                            f"Test accuracy per epoch ({title})")


if __name__ == "__main__":
    from neurosynth.errors import run_script

    raise SystemExit(run_script(main))
