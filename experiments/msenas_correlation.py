"""Does the training-free fitness predict trained accuracy? Kendall tau over random MSE architectures on digits.

For ``--n-archs`` random architectures of the MSE space (seeded), compute every training-free score
(``rdm`` = CKA x participation ratio of the readout RDM, ``rdm_spikes``, ``dissimilarity``, ``snasnet``) on
one fixed batch, and the test
accuracy after ``--epochs`` epochs of surrogate-gradient training. Reports Kendall tau of each score (and of
the parameter count, as a naive baseline) with test accuracy, and the cost of one fitness evaluation vs one
training epoch. Results are appended to ``OUT/results.jsonl`` as they come (re-running resumes).

    python experiments/msenas_correlation.py --n-archs 30 --epochs 3 --out runs/msenas_corr
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _msenas_common import ResultsLog, sample_unique

# the arguments that define how a row of results.jsonl was measured (a resumed run must match them)
PROTOCOL = ("epochs", "T", "encoding", "batch", "extra_batches", "lr", "widths", "depth", "seed")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-archs", type=int, default=30)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--T", type=int, default=4)
    p.add_argument("--encoding", default="direct", help="digits encoding: direct (analog current) or rate")
    p.add_argument("--batch", type=int, default=64, help="fitness batch size")
    p.add_argument("--extra-batches", default="32", help="other fitness batch sizes to score (comma separated)")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--widths", default="4,8,16")
    p.add_argument("--depth", default="1,3")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/msenas_corr")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    from scipy.stats import kendalltau
    from tqdm.auto import tqdm

    from neurosynth.io import write_json
    from snn_nas.engine import spec_hash
    from snn_nas.engine.space import derive_seed
    from snn_nas.mse import builder  # noqa: F401
    from snn_nas.mse.data import fitness_batch, load_task
    from snn_nas.mse.evaluator import RDMFitnessEvaluator, TrainEvaluator
    from snn_nas.mse.space import MSESpace, MSESpaceConfig

    out = Path(args.out)
    task = load_task("digits", T=args.T, conv=True, seed=args.seed, encoding=args.encoding)
    widths = tuple(int(w) for w in args.widths.split(","))
    depth = tuple(int(d) for d in args.depth.split(","))
    space = MSESpace(MSESpaceConfig(input_shape=tuple(task.input_shape), widths=widths,
                                    stem_widths=widths[:2], depth=depth))
    x, y = fitness_batch(task, args.batch, args.seed)
    fit_ev = RDMFitnessEvaluator(x, y)
    batches = [args.batch] + [int(b) for b in args.extra_batches.split(",") if b.strip()]
    evs = {}
    for b in batches:
        xb, yb = fitness_batch(task, b, args.seed)
        # all scores (for tau) and the default fitness alone (for the cost of one search evaluation)
        evs[b] = (RDMFitnessEvaluator(xb, yb), RDMFitnessEvaluator(xb, yb, all_scores=False))
    train_ev = TrainEvaluator(task, epochs=args.epochs, lr=args.lr)
    specs = sample_unique(space, args.n_archs, args.seed)
    log = ResultsLog(out, protocol={k: getattr(args, k) for k in PROTOCOL})
    for s in tqdm(specs, desc="architectures"):
        h = spec_hash(s)
        if h in log:
            continue
        seed = derive_seed(args.seed, h)
        f = fit_ev.evaluate(s, seed)
        by_batch = {}
        for b, (ev_all, ev_one) in evs.items():
            fa = ev_all.evaluate(s, seed)
            t0 = time.perf_counter()
            ev_one.evaluate(s, seed)
            by_batch[str(b)] = {"scores": fa["scores"], "rdm_seconds": time.perf_counter() - t0}
        t = train_ev.evaluate(s, seed)
        r = {"hash": h, "scores": f["scores"], "params": f["params"], "synops": f["synops"],
             "firing_rate": f["firing_rate"], "fitness_seconds": by_batch[str(args.batch)]["rdm_seconds"],
             "by_batch": by_batch, "test_accuracy": t["test_accuracy"], "epoch_seconds": t["epoch_seconds"],
             "spec": s}
        log.append(r)
    rows = log.ordered(specs)
    acc = np.array([r["test_accuracy"] for r in rows])
    taus = {}
    for name in rows[0]["scores"]:
        v = np.array([r["scores"][name] for r in rows])
        v = np.where(np.isfinite(v), v, -1e9)
        tau, pval = kendalltau(v, acc)
        taus[name] = {"tau": float(tau), "p": float(pval)}
    for name in ("params", "synops", "firing_rate"):
        tau, pval = kendalltau([r[name] for r in rows], acc)
        taus[name] = {"tau": float(tau), "p": float(pval)}
    per_batch = {}
    for b in batches:
        bt = {}
        for name in rows[0]["scores"]:
            v = np.array([r["by_batch"][str(b)]["scores"][name] for r in rows])
            bt[name] = float(kendalltau(np.where(np.isfinite(v), v, -1e9), acc)[0])
        ratio_b = float(np.median([r["epoch_seconds"] / r["by_batch"][str(b)]["rdm_seconds"] for r in rows]))
        per_batch[str(b)] = {"kendall_tau": bt, "rdm_seconds_median":
                             float(np.median([r["by_batch"][str(b)]["rdm_seconds"] for r in rows])),
                             "epoch_over_rdm_median": ratio_b}
    fit_s = float(np.median([r["fitness_seconds"] for r in rows]))
    ep_s = float(np.median([r["epoch_seconds"] for r in rows]))
    ratio = float(np.median([r["epoch_seconds"] / r["fitness_seconds"] for r in rows]))
    res = {"n_archs": len(rows), "epochs": args.epochs, "T": args.T, "encoding": args.encoding,
           "batch": args.batch, "lr": args.lr, "seed": args.seed, "kendall_tau": taus,
           "accuracy": {"min": float(acc.min()), "median": float(np.median(acc)), "max": float(acc.max())},
           "per_batch": per_batch, "fitness_seconds_median": fit_s, "epoch_seconds_median": ep_s, "epoch_over_fitness_median": ratio,
           "train_samples": int(task.x_train.shape[1])}
    write_json(out / "correlation.json", res)
    _plot(rows, taus, out / "correlation.png")
    print(json.dumps({k: v for k, v in res.items()}, indent=1))
    return res


def _plot(rows, taus, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neurosynth.rundir import save_figure

    names = list(rows[0]["scores"]) + ["params"]
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.5))
    acc = [r["test_accuracy"] for r in rows]
    for ax, n in zip(axes, names):
        v = [r["scores"][n] if n in r["scores"] else r[n] for r in rows]
        ax.scatter(v, acc, s=14)
        ax.set_xlabel(n)
        ax.set_title(f"tau = {taus[n]['tau']:.2f}")
        if n == "params":
            ax.set_xscale("log")
    axes[0].set_ylabel("test accuracy")
    save_figure(fig, path)


if __name__ == "__main__":
    main()
