"""Re-score stored architectures with every registered training-free fitness (no retraining) and time them.

Reads ``RUN/results.jsonl`` (specs + test accuracies after short training, written by
``experiments/msenas_correlation.py``), rebuilds each architecture with the same seed, computes every score of
``FITNESSES`` with :class:`RDMFitnessEvaluator` on the same class-balanced training batch(es), and prints
Kendall tau with the stored test accuracy (plus the parameter count and the last cell's width as naive
baselines). The cost of one evaluation of ``--fitness`` is timed per architecture; with ``--time-epochs K``
one training epoch of the first K architectures is re-timed in the same process, so the ratio compares
numbers measured under the same machine load. Writes ``RUN/rescore.json``.

    python experiments/msenas_rescore.py runs/msenas_corr --seed 0 --batches 64,32 --time-epochs 5
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="output directory of msenas_correlation.py")
    p.add_argument("--seed", type=int, default=0, help="the --seed of that run")
    p.add_argument("--batches", default="64,32", help="fitness batch sizes (comma separated)")
    p.add_argument("--T", type=int, default=4, help="the --T of that run")
    p.add_argument("--fitness-T", type=int, default=None, help="run the fitness on the first steps only")
    p.add_argument("--fitness", default="rdm", help="the score whose single evaluation is timed")
    p.add_argument("--time-epochs", type=int, default=0, help="re-time one training epoch of the first K archs")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    from scipy.stats import kendalltau

    from neurosynth.io import write_json
    from snn_nas.engine.space import derive_seed
    from snn_nas.mse.data import fitness_batch, load_task
    from snn_nas.mse.evaluator import RDMFitnessEvaluator, TrainEvaluator

    run = Path(args.run)
    rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    acc = np.array([r["test_accuracy"] for r in rows])
    task = load_task("digits", T=args.T, conv=True, seed=args.seed, encoding="direct")
    res: dict = {"run": str(run), "n_archs": len(rows), "seed": args.seed, "fitness_T": args.fitness_T or args.T,
                 "baselines": {"params": float(kendalltau([r["params"] for r in rows], acc)[0]),
                               "last_width": float(kendalltau([r["spec"]["cells"][-1]["width"] for r in rows],
                                                              acc)[0])},
                 "per_batch": {}}
    for b in (int(s) for s in args.batches.split(",") if s.strip()):
        x, y = fitness_batch(task, b, args.seed)
        if args.fitness_T:
            x = x[: args.fitness_T].contiguous()
        ev_all = RDMFitnessEvaluator(x, y)
        ev_one = RDMFitnessEvaluator(x, y, fitness=args.fitness, all_scores=False)
        scores: dict[str, list[float]] = {}
        secs = []
        for r in rows:
            seed = derive_seed(args.seed, r["hash"])
            for k, v in ev_all.evaluate(r["spec"], seed)["scores"].items():
                scores.setdefault(k, []).append(v)
            t0 = time.perf_counter()
            ev_one.evaluate(r["spec"], seed)
            secs.append(time.perf_counter() - t0)
        taus = {}
        for k, v in scores.items():
            a = np.array(v)
            t, pv = kendalltau(np.where(np.isfinite(a), a, -1e9), acc)
            taus[k] = {"tau": float(t), "p": float(pv)}
        res["per_batch"][str(b)] = {"kendall_tau": taus, "fitness_seconds": secs,
                                    "fitness_seconds_median": float(np.median(secs))}
    if args.time_epochs:
        tr = TrainEvaluator(task, epochs=1)
        ep, ratios = [], {}
        for r in rows[: args.time_epochs]:
            ep.append(tr.evaluate(r["spec"], derive_seed(args.seed, r["hash"]))["epoch_seconds"])
        for b, pb in res["per_batch"].items():
            ratios[b] = float(np.median([e / s for e, s in zip(ep, pb["fitness_seconds"])]))
        res["epoch_seconds"] = ep
        res["epoch_seconds_median"] = float(np.median(ep))
        res["epoch_over_fitness_median"] = ratios
    write_json(run / ("rescore.json" if not args.fitness_T else f"rescore_T{args.fitness_T}.json"), res)
    for b, pb in res["per_batch"].items():
        print(f"batch {b}: " + "  ".join(f"{k} tau={v['tau']:+.2f} (p={v['p']:.3g})"
                                        for k, v in pb["kendall_tau"].items())
              + f"  | fitness {pb['fitness_seconds_median']:.4f} s")
    print("baselines:", {k: round(v, 2) for k, v in res["baselines"].items()})
    if args.time_epochs:
        print("epoch s (median):", res["epoch_seconds_median"], "epoch/fitness:", res["epoch_over_fitness_median"])
    return res


if __name__ == "__main__":
    main()
