"""Fashion-MNIST evidence for the Loihi-deployable MSE-NAS space: does any training-free score predict
trained accuracy, and how much cheaper than an epoch is it?

For ``--n-archs`` random architectures of ``--target loihi`` (seeded, distinct), record every registered
fitness (on one fixed class-balanced batch of training images), the naive baselines (parameter count, width
of the last cell, SynOps, Loihi 2 cores, a NASWOT-style Jacobian-covariance score) and the test accuracy after
``--epochs`` of surrogate-gradient training on ``--train-limit`` training images (test on ``--test-limit``
test images; 0 = the full 10,000). Kendall tau is reported on disjoint architecture sets (the first and
second half of the sample, and ``--folds`` folds) and on all of them; ``goal`` says, per fitness, whether it
reaches tau >= 0.6 and beats every naive baseline on every held-out set. Results are appended to
``OUT/results.jsonl`` as they come (``OUT/protocol.json`` holds the settings), so a run can be split into several
shorter jobs (re-running with the same settings resumes; other settings are refused).

    python experiments/msenas_fmnist.py --n-archs 60 --epochs 2 --train-limit 2000 --out runs/msenas_fmnist
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from _msenas_common import FMNIST_SPACE, ResultsLog, fashion_task, loihi_space, sample_unique

# the arguments that define how a row of results.jsonl was measured (a resumed run must match them)
PROTOCOL = ("epochs", "T", "train_limit", "test_limit", "pool", "lr", "batch", "cheap_batch", "cheap_T", "space",
            "seed")


def jacob_cov(model, x: torch.Tensor, k: float = 1e-5) -> float:
    """NASWOT-style score (Mellor et al. 2021, v1 "jacob_cov"): correlation of the per-sample input gradients
    of the summed output (through the surrogate gradient), ``-sum(log(l + k) + 1 / (l + k))`` over its
    eigenvalues ``l``. A silent network (zero gradients) scores -inf."""
    x = x.clone().requires_grad_(True)
    model.zero_grad(set_to_none=True)
    out = model(x)
    out.float().sum().backward()
    g = x.grad.detach().transpose(0, 1).reshape(x.shape[1], -1).double().numpy()
    if not np.isfinite(g).all() or (g.std(axis=1) == 0).any():
        return -math.inf
    v = np.linalg.eigvalsh(np.corrcoef(g))
    return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-archs", type=int, default=60)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--T", type=int, default=6)
    p.add_argument("--train-limit", type=int, default=2000)
    p.add_argument("--test-limit", type=int, default=0, help="0: the full 10,000-image test set")
    p.add_argument("--pool", type=int, default=2,
                   help="OR-pool the rate-coded spike images by this factor (2: 28x28 -> 14x14 binary spikes; 1: off)")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--batch", type=int, default=64, help="fitness batch (all scores)")
    p.add_argument("--cheap-batch", type=int, default=32, help="fitness batch of the timed cheap setting")
    p.add_argument("--cheap-T", type=int, default=4,
                   help="fitness horizon of the timed cheap setting (>= the deepest candidate: Loihi's one-step "
                        "delays leave a shorter horizon's readout silent)")
    p.add_argument("--folds", type=int, default=3, help="also report tau on this many disjoint folds")
    p.add_argument("--space", default=json.dumps(FMNIST_SPACE), help="MSESpaceConfig overrides (JSON)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/msenas_fmnist")
    p.add_argument("--reverse", action="store_true",
                   help="measure the architectures from the last one backwards (a second process can share a run)")
    p.add_argument("--start", type=int, default=None, help="first architecture (index) to measure")
    p.add_argument("--summarise-only", action="store_true",
                   help="train nothing: summarise and plot the rows already in OUT/results.jsonl")
    p.add_argument("--max-seconds", type=float, default=0, help="stop adding architectures after this long")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    t_start = time.perf_counter()


    from snn_nas.engine import spec_hash
    from snn_nas.engine.space import derive_seed
    from snn_nas.mse import builder  # noqa: F401
    from snn_nas.mse.data import fitness_batch
    from snn_nas.mse.evaluator import RDMFitnessEvaluator, TrainEvaluator, build_seeded

    out = Path(args.out)
    if args.summarise_only:
        log = ResultsLog(out, protocol={k: getattr(args, k) for k in PROTOCOL})
        specs = sample_unique(loihi_space([1, 28 // args.pool, 28 // args.pool], args.T, json.loads(args.space)),
                              args.n_archs, args.seed)
        return _report(log.ordered(specs), args, out, [1, 28 // args.pool, 28 // args.pool], args.train_limit,
                       args.test_limit or 10000)
    task = fashion_task(T=args.T, seed=args.seed, train_limit=args.train_limit, test_limit=args.test_limit,
                        pool=args.pool)
    space = loihi_space(task.input_shape, args.T, json.loads(args.space))
    x, y = fitness_batch(task, args.batch, args.seed)
    ev_all = RDMFitnessEvaluator(x, y, cost="synops,loihi_cores")
    xc, yc = fitness_batch(task, args.cheap_batch, args.seed)
    ev_cheap = RDMFitnessEvaluator(xc, yc, all_scores=False, fitness_T=args.cheap_T)
    ev_default = RDMFitnessEvaluator(x, y, all_scores=False)
    train_ev = TrainEvaluator(task, epochs=args.epochs, lr=args.lr)
    specs = sample_unique(space, args.n_archs, args.seed)
    log = ResultsLog(out, protocol={k: getattr(args, k) for k in PROTOCOL})
    order = list(enumerate(specs))
    order = list(reversed(order[:args.start + 1] if args.start is not None else order)) if args.reverse else \
        order[args.start or 0:]
    for i, s in order:
        h = spec_hash(s)
        log.refresh()  # another process (e.g. a --reverse one) may have measured it meanwhile
        if h in log:
            continue
        if args.max_seconds and time.perf_counter() - t_start > args.max_seconds:
            print(f"stopping after {i} architectures (--max-seconds)")
            break
        seed = derive_seed(args.seed, h)
        c0 = time.process_time()
        f = ev_all.evaluate(s, seed)
        t0 = time.perf_counter()
        cheap = ev_cheap.evaluate(s, seed)
        cheap_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ev_default.evaluate(s, seed)
        default_s = time.perf_counter() - t0
        m = build_seeded(s, seed)
        jc = jacob_cov(m, x)
        c1 = time.process_time()
        t = train_ev.evaluate(s, seed)
        r = {"hash": h, "scores": f["scores"], "params": f["params"], "synops": f["synops"],
             "loihi_cores": f["loihi_cores"], "last_width": s["cells"][-1]["width"], "jacob_cov": jc,
             "firing_rate": f["firing_rate"], "rdm_cheap": cheap["fitness"], "cheap_seconds": cheap_s,
             "default_seconds": default_s, "test_accuracy": t["test_accuracy"], "epoch_seconds": t["epoch_seconds"],
             "train_accuracy": t["train_accuracy"], "scores_cpu_seconds": c1 - c0,
             "train_test_cpu_seconds": time.process_time() - c1, "spec": s}
        log.append(r)
        print(f"[{len(log)}/{len(specs)}] acc {t['test_accuracy']:.3f} rdm {f['scores']['rdm']:.3f} "
              f"epoch {t['epoch_seconds']:.1f}s fitness {default_s:.3f}s cpu {time.process_time() - c0:.1f}s",
              flush=True)
    rows = log.ordered(specs)
    return _report(rows, args, out, task.input_shape, int(task.x_train.shape[1]), int(task.x_test.shape[1]))


def _report(rows, args, out, input_shape, n_train, n_test) -> dict:
    from scipy.stats import kendalltau

    from neurosynth.io import write_json

    res = summarise(rows, args, kendalltau)
    res["input_shape"] = list(input_shape)
    res["train_samples"], res["test_samples"] = int(n_train), int(n_test)
    write_json(out / "correlation.json", res)
    _plot(rows, res, out / "correlation.png")
    _plot_taus(res, out / "correlation_taus.png")
    print(json.dumps(res, indent=1))
    return res


def _clean(v):
    v = np.asarray(v, dtype=float)
    return np.where(np.isfinite(v), v, -1e30)


FITNESS_KEYS = ("rdm", "rdm_spikes", "dissimilarity", "snasnet", "rdm_cheap")  # training-free fitnesses
BASELINES = ("params", "last_width", "synops", "jacob_cov", "snasnet")  # naive / published baselines


def summarise(rows: list[dict], args, kendalltau) -> dict:
    n = len(rows)
    half = n // 2
    k = max(2, int(getattr(args, "folds", 3)))
    sets = {"A": rows[:half], "B": rows[half:]}
    sets.update({f"fold{i + 1}": rows[i * n // k:(i + 1) * n // k] for i in range(k)})
    sets["all"] = rows
    names = list(rows[0]["scores"]) + ["rdm_cheap", "params", "last_width", "synops", "loihi_cores", "jacob_cov",
                                      "firing_rate"]

    def val(r, k):
        return r["scores"][k] if k in r["scores"] else r[k]

    taus = {}
    for name in names:
        taus[name] = {}
        for sname, rs in sets.items():
            if len(rs) < 4:
                continue
            tau, pv = kendalltau(_clean([val(r, name) for r in rs]), [r["test_accuracy"] for r in rs])
            taus[name][sname] = {"tau": float(tau), "p": float(pv)}
    # the goal: a fitness with tau >= 0.6 that beats every naive baseline on every held-out set (A, B and each fold)
    held_out = [s for s in sets if s != "all" and s in taus["rdm"]]
    verdict = {}
    for f in FITNESS_KEYS:
        if f not in taus:
            continue
        per = {}
        for sname in held_out:
            t = taus[f][sname]["tau"]
            best_b = max((b for b in BASELINES if b != f), key=lambda b: _nan0(taus[b][sname]["tau"]))
            per[sname] = {"tau": t, "best_baseline": best_b, "best_baseline_tau": taus[best_b][sname]["tau"],
                          "beats_all": bool(_nan0(t) > _nan0(taus[best_b][sname]["tau"])), "ge_0.6": bool(t >= 0.6)}
        verdict[f] = {"sets": per, "goal_met": bool(per) and all(v["beats_all"] and v["ge_0.6"] for v in per.values())}
    acc = np.array([r["test_accuracy"] for r in rows])
    ep = np.array([r["epoch_seconds"] for r in rows])
    ratio_default = np.median(ep / np.array([r["default_seconds"] for r in rows]))
    ratio_cheap = np.median(ep / np.array([r["cheap_seconds"] for r in rows]))
    full_epoch = 60000 / max(getattr(args, "train_limit", 60000), 1)
    cpu = [r.get("scores_cpu_seconds", 0) + r.get("train_test_cpu_seconds", 0) for r in rows]
    return {"n_archs": n, "sets": {s: len(v) for s, v in sets.items()}, "epochs": args.epochs, "T": args.T,
            "lr": args.lr, "fitness_batch": args.batch, "cheap": {"batch": args.cheap_batch, "T": args.cheap_T},
            "kendall_tau": taus, "goal": verdict,
            "accuracy": {"min": float(acc.min()), "median": float(np.median(acc)), "max": float(acc.max())},
            "epoch_seconds_median": float(np.median(ep)),
            "fitness_seconds_median": float(np.median([r["default_seconds"] for r in rows])),
            "cheap_fitness_seconds_median": float(np.median([r["cheap_seconds"] for r in rows])),
            "subset_epoch_over_fitness_median": float(ratio_default),
            "subset_epoch_over_cheap_fitness_median": float(ratio_cheap),
            "full_epoch_over_fitness_median_extrapolated": float(ratio_default * full_epoch),
            "full_epoch_over_cheap_fitness_median_extrapolated": float(ratio_cheap * full_epoch),
            "cpu_seconds_per_arch_median": float(np.median(cpu)), "cpu_seconds_total": float(np.sum(cpu))}


def _nan0(v: float) -> float:
    return -1.0 if v != v else v


def _plot(rows, res, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neurosynth.rundir import save_figure

    names = ["rdm", "snasnet", "jacob_cov", "params", "last_width", "synops"]
    fig, axes = plt.subplots(1, len(names), figsize=(3.3 * len(names), 3.2))
    acc = [r["test_accuracy"] for r in rows]
    for ax, n in zip(axes, names):
        v = _clean([r["scores"][n] if n in r["scores"] else r[n] for r in rows])
        ok = v > -1e29
        ax.scatter(v[ok], np.array(acc)[ok], s=12)
        ax.set_xlabel(n)
        ax.set_title(f"tau(all) = {res['kendall_tau'][n].get('all', {}).get('tau', float('nan')):.2f}", fontsize=9)
        if n in ("params", "synops"):
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        if n == "jacob_cov":  # one very negative outlier; tau is rank-based
            ax.set_xscale("symlog")
    axes[0].set_ylabel("test accuracy")
    fig.suptitle("Fashion-MNIST, Loihi-deployable MSE space: score vs trained accuracy", fontsize=10)
    save_figure(fig, path)


def _plot_taus(res, path):
    """Kendall tau of every score on every disjoint architecture set (and all), the 0.6 goal as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neurosynth.rundir import save_figure

    taus = res["kendall_tau"]
    names = [n for n in ("rdm", "rdm_cheap", "rdm_spikes", "dissimilarity", "snasnet", "jacob_cov", "params",
                         "last_width", "synops", "loihi_cores", "firing_rate") if n in taus]
    sets = [s for s in taus["rdm"]]
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(names) * len(sets) / 3, 3.6))
    w = 0.8 / len(sets)
    for j, sname in enumerate(sets):
        ax.bar(np.arange(len(names)) + (j - (len(sets) - 1) / 2) * w,
               [taus[n].get(sname, {}).get("tau", np.nan) for n in names], w,
               label=f"{sname} ({res['sets'][sname]})")
    ax.axhline(0.6, color="red", ls="--", lw=0.8, label="goal 0.6")
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xticks(np.arange(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("Kendall tau with test accuracy")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(f"Fashion-MNIST, {res['n_archs']} random Loihi-space archs, {res['train_samples']} train / "
                 f"{res['test_samples']} test images, {res['epochs']} epochs", fontsize=9)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
