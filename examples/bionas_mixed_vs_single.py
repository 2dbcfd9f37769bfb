"""BioNAS evidence: a searched mixed-rule architecture vs the same architecture with a single rule.

Trains the derived genotype (from ``neurosynth search bio ... --out DIR``: ``DIR/genotype.json``) on digits
with the same recipe for every configuration and several seeds:

* ``mixed`` : the searched (op, rule) pairs, frame (stem / reduction blocks / classifier) trained by BP, as in
  the paper's BioNAS models;
* ``<rule> e2e`` : every layer, frame included, trained by one rule (the paper's single-rule baselines);
* ``<rule> edges`` : the searched ops with one rule on every edge, frame BP (the controlled comparison: only
  the mixing differs from ``mixed``);
* ``random-k`` : the searched ops with rules drawn at random per edge (the paper's Table 5 analogue).

Per-epoch gradient variance (the paper's Fig. 3) is logged for every run. Writes ``results.json``,
``table.md``, ``grad_variance.png`` and ``test_accuracy.png`` into ``--out``.

    python examples/bionas_mixed_vs_single.py --genotype runs/bionas/search_darts_nb201/genotype.json \
        --out runs/bionas/mixed_vs_single --epochs 10 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--genotype", help="genotype.json of a search (required unless --merge)")
    ap.add_argument("--merge", nargs="+", default=None, metavar="DIR",
                    help="only combine the results.json of earlier runs (e.g. config groups run in parallel)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--rules", default="bp,fa,usf,brsf,frsf")
    ap.add_argument("--random", type=int, default=3, help="number of random rule assignments")
    ap.add_argument("--configs", default="mixed,e2e,edges,random", help="which groups to run")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.merge:
        results = None
        for d in args.merge:
            r = read_json(f"{d}/results.json")
            if results is None:
                results = r
            else:
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
    data = load_image_data("digits")
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

    results: dict = {"genotype": genotype, "epochs": args.epochs, "seeds": args.seeds, "C": args.C,
                     "layers": layers, "configs": {}}
    t0 = time.time()
    for name, (g, frame) in configs.items():
        runs = []
        for seed in args.seeds:
            torch.manual_seed(seed)
            spec = make_spec(g, C=args.C, layers=layers, num_classes=10, input_shape=data.input_shape, frame_rule=frame)
            model = build_model(spec)
            hist = train_model(model, data.x_train, data.y_train, data.x_test, data.y_test, epochs=args.epochs,
                               seed=seed)
            runs.append(hist)
            print(f"[{time.time() - t0:7.1f}s] {name:22s} seed {seed}: test {hist['test_accuracy'][-1]:.4f} "
                  f"gradvar {hist['grad_variance'][-1]:.3e}", flush=True)
        acc = np.array([h["test_accuracy"][-1] for h in runs])
        results["configs"][name] = {
            "frame_rule": frame, "edge_rules": edge_rules(g), "test_accuracy": acc.tolist(),
            "mean": float(acc.mean()), "std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            "grad_variance": [h["grad_variance"] for h in runs], "test_curve": [h["test_accuracy"] for h in runs],
            "train_loss": [h["train_loss"] for h in runs]}
        write_json(f"{args.out}/results.json", results)
    report(results, args.out)
    return 0


def report(results: dict, out: str) -> None:
    lines = [f"Digits, {results['epochs']} epochs, seeds {results['seeds']}; test accuracy (%) mean ± std.", "",
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
            plot_curves({n: results["configs"][n]["test_curve"] for n in names}, f"{out}/test_accuracy_{suffix}.png",
                        "test accuracy", f"Test accuracy per epoch ({title})")


if __name__ == "__main__":
    from neurosynth.errors import run_script

    raise SystemExit(run_script(main))
