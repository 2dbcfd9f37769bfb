"""Searched vs random: the MSE-NAS (GA + training-free RDM fitness) winner against 10 random architectures of
similar size (parameters within [P/2, 2P]), all trained the same way on digits.

    python benchmarks/msenas_search_vs_random.py --population 8 --generations 5 --epochs 3 --out runs/msenas_vs_random
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--population", type=int, default=8)
    p.add_argument("--generations", type=int, default=5)
    p.add_argument("--strategy", default="ga")
    p.add_argument("--fitness", default="rdm")
    p.add_argument("--n-random", type=int, default=10)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--T", type=int, default=4)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/msenas_vs_random")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    from tqdm.auto import tqdm

    from neurosynth.io import write_json
    from snn_nas.engine import spec_hash
    from snn_nas.engine.space import derive_seed
    from snn_nas.mse.builder import count_params
    from snn_nas.mse.data import load_task
    from snn_nas.mse.evaluator import TrainEvaluator
    from snn_nas.mse.run import SearchConfig, run_search
    from snn_nas.mse.space import MSESpace, MSESpaceConfig

    out = Path(args.out)
    space_over = {"widths": [4, 8, 16], "stem_widths": [4, 8], "depth": [1, 3]}
    cfg = SearchConfig(out=str(out / "search"), T=args.T, population=args.population, generations=args.generations,
                       strategy=args.strategy, fitness=args.fitness, batch=args.batch, seed=args.seed,
                       resume=(out / "search" / "archive.sqlite").exists(), space=space_over, progress=True)
    s = run_search(cfg, command=["python", "benchmarks/msenas_search_vs_random.py"])
    best = s["best"]["spec"]
    P = count_params(best)
    task = load_task("digits", T=args.T, conv=True, seed=args.seed, encoding="direct")
    space = MSESpace(MSESpaceConfig.from_dict({"input_shape": task.input_shape, "num_classes": 10, **space_over}))
    rng = np.random.default_rng(args.seed + 1)
    randoms, seen, tries = [], {spec_hash(best)}, 0
    while len(randoms) < args.n_random and tries < 5000:
        tries += 1
        r = space.sample(rng)
        if spec_hash(r) not in seen and P / 2 <= count_params(r) <= 2 * P:
            seen.add(spec_hash(r))
            randoms.append(r)
    train = TrainEvaluator(task, epochs=args.epochs, lr=args.lr)
    rows = []
    for kind, spec in tqdm([("searched", best)] + [("random", r) for r in randoms], desc="training"):
        res = train.evaluate(spec, derive_seed(args.seed, spec_hash(spec)))
        rows.append({"kind": kind, "hash": spec_hash(spec), "params": count_params(spec),
                     "test_accuracy": res["test_accuracy"], "epoch_seconds": res["epoch_seconds"]})
    racc = np.array([r["test_accuracy"] for r in rows if r["kind"] == "random"])
    result = {"searched": rows[0], "random_mean": float(racc.mean()), "random_std": float(racc.std(ddof=1)),
              "random_n": int(len(racc)), "random_params": [r["params"] for r in rows[1:]],
              "searched_rank": int(1 + (racc > rows[0]["test_accuracy"]).sum()),
              "search_evaluations": s["evaluations"], "search_seconds": s["search_seconds"],
              "best_fitness": s["best"]["fitness"], "epochs": args.epochs, "lr": args.lr, "T": args.T,
              "seed": args.seed, "rows": rows}
    write_json(out / "search_vs_random.json", result)
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))
    return result


if __name__ == "__main__":
    main()
