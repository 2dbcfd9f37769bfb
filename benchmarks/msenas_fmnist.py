"""Fashion-MNIST evidence for the Loihi-deployable MSE-NAS space: does any training-free score predict
trained accuracy, and how much cheaper than an epoch is it?

For ``--n-archs`` random architectures of ``--target loihi`` (seeded, distinct), record every registered
fitness (on one fixed class-balanced batch of training images), the naive baselines (parameter count, width
of the last cell, SynOps, Loihi 2 cores, a NASWOT-style Jacobian-covariance score) and the test accuracy after
``--epochs`` of surrogate-gradient training on ``--train-limit`` training images (test on ``--test-limit``
test images; 0 = the full 10,000). Kendall tau is reported on two disjoint architecture sets (the first and
second half of the sample) and on all of them. Results are appended to ``OUT/results.jsonl`` as they come,
so a run can be split into several shorter jobs (re-running resumes).

    python benchmarks/msenas_fmnist.py --n-archs 60 --out runs/msenas_fmnist
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch


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
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--T", type=int, default=6)
    p.add_argument("--train-limit", type=int, default=2000)
    p.add_argument("--test-limit", type=int, default=2000, help="0: the full test set")
    p.add_argument("--pool", type=int, default=2,
                   help="OR-pool the rate-coded spike images by this factor (2: 28x28 -> 14x14 binary spikes; 1: off)")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--batch", type=int, default=64, help="fitness batch (all scores)")
    p.add_argument("--cheap-batch", type=int, default=32, help="fitness batch of the timed cheap setting")
    p.add_argument("--cheap-T", type=int, default=2, help="fitness horizon of the timed cheap setting")
    p.add_argument("--space", default='{"widths": [4, 8, 16], "stem_widths": [4, 8], "kernels": [1, 3], '
                                      '"depth": [1, 2], "max_nodes": 2}')
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/msenas_fmnist")
    p.add_argument("--max-seconds", type=float, default=0, help="stop adding architectures after this long")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    t_start = time.perf_counter()

    from scipy.stats import kendalltau

    from neurosynth.io import write_json
    from snn_nas.engine import spec_hash
    from snn_nas.engine.space import derive_seed
    from snn_nas.mse import builder  # noqa: F401
    from snn_nas.mse.data import fitness_batch, load_task
    from snn_nas.mse.evaluator import RDMFitnessEvaluator, TrainEvaluator, build_seeded
    from snn_nas.mse.space import MSESpace, MSESpaceConfig

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    task = load_task("fashion_mnist", T=args.T, conv=True, seed=args.seed, limit=args.train_limit,
                     test_limit=args.test_limit or None, encoding="rate")
    if args.pool > 1:  # a spike at any of the k x k pixels -> one spike (binary, like a lower-resolution sensor)
        import torch.nn.functional as F

        def pool(v):
            T, N = v.shape[:2]
            return (F.max_pool2d(v.reshape(T * N, *v.shape[2:]), args.pool) > 0).float().reshape(T, N, v.shape[2],
                                                                                                   *(s // args.pool for s in v.shape[3:]))
        task.x_train, task.x_test = pool(task.x_train), pool(task.x_test)
    space = MSESpace(MSESpaceConfig.from_dict({"input_shape": task.input_shape, "num_classes": 10, "target": "loihi",
                                               "max_layers": max(3, 3 * args.T // 4), **json.loads(args.space)}))
    x, y = fitness_batch(task, args.batch, args.seed)
    ev_all = RDMFitnessEvaluator(x, y, cost="synops,loihi_cores")
    xc, yc = fitness_batch(task, args.cheap_batch, args.seed)
    ev_cheap = RDMFitnessEvaluator(xc, yc, all_scores=False, fitness_T=args.cheap_T)
    ev_default = RDMFitnessEvaluator(x, y, all_scores=False)
    train_ev = TrainEvaluator(task, epochs=args.epochs, lr=args.lr)
    rng = np.random.default_rng(args.seed)
    specs, seen = [], set()
    while len(specs) < args.n_archs:
        s = space.sample(rng)
        if spec_hash(s) not in seen:
            seen.add(spec_hash(s))
            specs.append(s)
    log = out / "results.jsonl"
    done = {}
    if log.exists():
        for line in log.read_text().splitlines():
            r = json.loads(line)
            done[r["hash"]] = r
    for i, s in enumerate(specs):
        h = spec_hash(s)
        if h in done:
            continue
        if args.max_seconds and time.perf_counter() - t_start > args.max_seconds:
            print(f"stopping after {i} architectures (--max-seconds)")
            break
        seed = derive_seed(args.seed, h)
        f = ev_all.evaluate(s, seed)
        t0 = time.perf_counter()
        cheap = ev_cheap.evaluate(s, seed)
        cheap_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ev_default.evaluate(s, seed)
        default_s = time.perf_counter() - t0
        m = build_seeded(s, seed)
        jc = jacob_cov(m, x)
        t = train_ev.evaluate(s, seed)
        r = {"hash": h, "scores": f["scores"], "params": f["params"], "synops": f["synops"],
             "loihi_cores": f["loihi_cores"], "last_width": s["cells"][-1]["width"], "jacob_cov": jc,
             "firing_rate": f["firing_rate"], "rdm_cheap": cheap["fitness"], "cheap_seconds": cheap_s,
             "default_seconds": default_s, "test_accuracy": t["test_accuracy"], "epoch_seconds": t["epoch_seconds"],
             "spec": s}
        with open(log, "a") as fh:
            fh.write(json.dumps(r) + "\n")
        done[h] = r
        print(f"[{len(done)}/{len(specs)}] acc {t['test_accuracy']:.3f} rdm {f['scores']['rdm']:.3f} "
              f"epoch {t['epoch_seconds']:.1f}s fitness {default_s:.3f}s", flush=True)
    rows = [done[spec_hash(s)] for s in specs if spec_hash(s) in done]
    res = summarise(rows, args, kendalltau)
    res["input_shape"] = task.input_shape
    res["train_samples"], res["test_samples"] = int(task.x_train.shape[1]), int(task.x_test.shape[1])
    write_json(out / "correlation.json", res)
    _plot(rows, res, out / "correlation.png")
    print(json.dumps(res, indent=1))
    return res


def _clean(v):
    v = np.asarray(v, dtype=float)
    return np.where(np.isfinite(v), v, -1e30)


def summarise(rows: list[dict], args, kendalltau) -> dict:
    n = len(rows)
    half = n // 2
    sets = {"A": rows[:half], "B": rows[half:], "all": rows}
    names = list(rows[0]["scores"]) + ["rdm_cheap", "params", "last_width", "synops", "loihi_cores", "jacob_cov",
                                      "firing_rate"]

    def val(r, k):
        return r["scores"][k] if k in r["scores"] else r[k]

    taus = {}
    for k in names:
        taus[k] = {}
        for sname, rs in sets.items():
            if len(rs) < 4:
                continue
            tau, pv = kendalltau(_clean([val(r, k) for r in rs]), [r["test_accuracy"] for r in rs])
            taus[k][sname] = {"tau": float(tau), "p": float(pv)}
    acc = np.array([r["test_accuracy"] for r in rows])
    ep = np.array([r["epoch_seconds"] for r in rows])
    ratio_default = np.median(ep / np.array([r["default_seconds"] for r in rows]))
    ratio_cheap = np.median(ep / np.array([r["cheap_seconds"] for r in rows]))
    full_epoch = 60000 / max(getattr(args, "train_limit", 60000), 1)
    return {"n_archs": n, "sets": {"A": half, "B": n - half}, "epochs": args.epochs, "T": args.T, "lr": args.lr,
            "fitness_batch": args.batch, "cheap": {"batch": args.cheap_batch, "T": args.cheap_T},
            "kendall_tau": taus,
            "accuracy": {"min": float(acc.min()), "median": float(np.median(acc)), "max": float(acc.max())},
            "epoch_seconds_median": float(np.median(ep)),
            "fitness_seconds_median": float(np.median([r["default_seconds"] for r in rows])),
            "cheap_fitness_seconds_median": float(np.median([r["cheap_seconds"] for r in rows])),
            "subset_epoch_over_fitness_median": float(ratio_default),
            "subset_epoch_over_cheap_fitness_median": float(ratio_cheap),
            "full_epoch_over_fitness_median_extrapolated": float(ratio_default * full_epoch),
            "full_epoch_over_cheap_fitness_median_extrapolated": float(ratio_cheap * full_epoch)}


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
    axes[0].set_ylabel("test accuracy")
    fig.suptitle("Fashion-MNIST, Loihi-deployable MSE space: score vs trained accuracy", fontsize=10)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
