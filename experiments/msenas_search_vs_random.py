"""Searched vs random at equal compute, Fashion-MNIST, Loihi-deployable MSE space.

For each seed: an MSE-NAS search (``--strategy`` GA, the training-free ``--fitness`` on one class-balanced batch
of training images, ``--population`` x ``--generations`` candidates) picks an architecture, which is then
trained (``--epochs`` on ``--train-limit`` images) and tested on the full 10,000-image test set. Its compute is
search + that training. The random baseline spends the same compute on training random architectures of the
same space the same way, one after another, keeps the one with the best accuracy on ``--val`` held-out training
images (never the test set) and reports its test accuracy. Compute is CPU time of this single-threaded process
(``time.process_time``), because wall time on a shared machine measures the other jobs; wall times are recorded
too. ``--n-random`` random architectures are trained per seed (more than equal compute needs), so the table can
also show the best of all of them (more compute than the search).

Everything is resumable per seed (``OUT/seed<S>/search.json`` and ``results.jsonl``).

    python experiments/msenas_search_vs_random.py --seeds 0,1,2 --out runs/msenas_vs_random_fmnist
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from _msenas_common import (
    FMNIST_SPACE,
    ResultsLog,
    fashion_task,
    loihi_space,
    sample_unique,
    split_validation,
    train_and_test,
)

PROTOCOL = ("population", "generations", "strategy", "fitness", "epochs", "lr", "T", "pool", "batch",
            "train_limit", "val", "space")


def run_seed(args, seed: int, out: Path) -> dict:
    from snn_nas.engine import Archive, Runner, spec_hash
    from snn_nas.engine.space import derive_seed
    from snn_nas.mse import builder  # noqa: F401
    from snn_nas.mse.data import fitness_batch
    from snn_nas.mse.evaluator import RDMFitnessEvaluator
    from snn_nas.strategies import STRATEGIES

    task = fashion_task(T=args.T, seed=seed, train_limit=args.train_limit + args.val, test_limit=0, pool=args.pool)
    val = split_validation(task, args.val)
    space = loihi_space(task.input_shape, args.T, json.loads(args.space))
    log = ResultsLog(out, protocol={**{k: getattr(args, k) for k in PROTOCOL}, "seed": seed})
    sfile = out / "search.json"
    if sfile.exists():
        search = json.loads(sfile.read_text())
        _warm_up(space, None, task)
    else:
        shutil.rmtree(out / "search", ignore_errors=True)  # an interrupted search is redone from scratch
        (out / "search").mkdir()
        x, y = fitness_batch(task, args.batch, seed)  # from the training images only
        ev = RDMFitnessEvaluator(x, y, fitness=args.fitness, cost="params")
        _warm_up(space, ev, task)
        strat = STRATEGIES.get(args.strategy)(space, np.random.default_rng(seed))
        c0, w0 = time.process_time(), time.perf_counter()
        s = Runner(space, strat, ev, Archive(out / "search" / "archive.sqlite"), generations=args.generations,
                   population=args.population, seed=seed, workers=0, progress=False).run()
        search = {"cpu_seconds": time.process_time() - c0, "wall_seconds": time.perf_counter() - w0,
                  "evaluations": s["evaluations"], "failed": s["failed"], "best_fitness": s["best"]["fitness"],
                  "spec": s["best"]["spec"], "hash": s["best"]["hash"]}
        sfile.write_text(json.dumps(search))
    best = search["spec"]
    todo = [("searched", best)] + [("random", r) for r in
                                   sample_unique(space, args.n_random, 1000 + seed, exclude={search["hash"]})]
    for kind, spec in todo:
        h = spec_hash(spec)
        if h in log:
            continue
        r = train_and_test(spec, derive_seed(seed, h), task, epochs=args.epochs, lr=args.lr, val=val)
        log.append({"hash": h, "kind": kind, **r, "last_width": spec["cells"][-1]["width"], "spec": spec})
        print(f"seed {seed} {kind:8s} val {r['val_accuracy']:.3f} test {r['test_accuracy']:.3f} "
              f"params {r['params']} cpu {r['cpu_seconds']:.1f}s", flush=True)
    rows = log.ordered_hashes([spec_hash(s) for _, s in todo])
    searched, randoms = rows[0], rows[1:]
    budget = search["cpu_seconds"] + searched["cpu_seconds"]
    cum = np.cumsum([r["cpu_seconds"] for r in randoms])
    n_eq = int(np.argmin(np.abs(cum - budget))) + 1  # the number of random trainings closest to the budget
    pick = max(randoms[:n_eq], key=lambda r: r["val_accuracy"])
    pick_all = max(randoms, key=lambda r: r["val_accuracy"])
    racc = np.array([r["test_accuracy"] for r in randoms])
    return {"seed": seed, "search": {k: v for k, v in search.items() if k != "spec"},
            "searched": {k: v for k, v in searched.items() if k != "spec"},
            "budget_cpu_seconds": budget, "random_n_equal_compute": n_eq,
            "random_cpu_seconds_equal_compute": float(cum[n_eq - 1]),
            "budget_exceeds_pool": bool(cum[-1] < budget),
            "random_equal_compute": {"test_accuracy": pick["test_accuracy"], "val_accuracy": pick["val_accuracy"],
                                     "params": pick["params"], "hash": pick["hash"]},
            "random_best_of_all": {"n": len(randoms), "test_accuracy": pick_all["test_accuracy"],
                                   "cpu_seconds": float(cum[-1])},
            "random_test_accuracy": {"mean": float(racc.mean()), "sd": float(racc.std(ddof=1)),
                                     "min": float(racc.min()), "max": float(racc.max())},
            "searched_rank_among_random": int(1 + (racc > searched["test_accuracy"]).sum()),
            "rows": [{k: v for k, v in r.items() if k != "spec"} for r in rows]}


def _warm_up(space, ev, task) -> None:
    """One untimed fitness evaluation and one training step of a throw-away architecture, so that one-off costs
    (lazy imports, first-call kernel set-up) are charged to neither side."""
    from neurosynth.losses import get_loss
    from snn_nas.mse.evaluator import build_seeded, loss_for

    s = space.sample(np.random.default_rng(12345))
    if ev is not None:
        ev.evaluate(s, 0)
    m = build_seeded(s, 0)
    get_loss(loss_for(s))(m(task.x_train[:, :64]), task.y_train[:64]).backward()
    with torch.no_grad():
        m(task.x_test[:, :256])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--population", type=int, default=8)
    p.add_argument("--generations", type=int, default=5)
    p.add_argument("--strategy", default="ga")
    p.add_argument("--fitness", default="rdm")
    p.add_argument("--n-random", type=int, default=8, help="random architectures trained per seed")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--T", type=int, default=6)
    p.add_argument("--pool", type=int, default=2, help="OR-pool the spike images (2: 28x28 -> 14x14)")
    p.add_argument("--batch", type=int, default=64, help="fitness batch")
    p.add_argument("--train-limit", type=int, default=2000, help="training images")
    p.add_argument("--val", type=int, default=1000, help="held-out training images to choose among random archs")
    p.add_argument("--space", default=json.dumps(FMNIST_SPACE), help="MSESpaceConfig overrides (JSON)")
    p.add_argument("--out", default="runs/msenas_vs_random_fmnist")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    from neurosynth.io import write_json

    out = Path(args.out)
    per = [run_seed(args, int(s), out / f"seed{int(s)}") for s in args.seeds.split(",") if s.strip()]

    def ms(v):
        v = np.asarray(v, dtype=float)
        return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "values": v.tolist()}

    res = {"dataset": "fashion_mnist", "space": json.loads(args.space), "target": "loihi",
           "protocol": {k: getattr(args, k) for k in PROTOCOL}, "n_random": args.n_random,
           "searched_test_accuracy": ms([r["searched"]["test_accuracy"] for r in per]),
           "random_equal_compute_test_accuracy": ms([r["random_equal_compute"]["test_accuracy"] for r in per]),
           "random_n_equal_compute": [r["random_n_equal_compute"] for r in per],
           "difference_searched_minus_random_equal_compute": ms([r["searched"]["test_accuracy"]
                                                                 - r["random_equal_compute"]["test_accuracy"]
                                                                 for r in per]),
           "random_best_of_all_test_accuracy": ms([r["random_best_of_all"]["test_accuracy"] for r in per]),
           "random_mean_test_accuracy": ms([r["random_test_accuracy"]["mean"] for r in per]),
           "search_cpu_seconds": ms([r["search"]["cpu_seconds"] for r in per]),
           "training_cpu_seconds_searched": ms([r["searched"]["cpu_seconds"] for r in per]),
           "per_seed": per}
    write_json(out / "search_vs_random.json", res)
    _plot(per, out / "search_vs_random.png")
    print(json.dumps({k: v for k, v in res.items() if k != "per_seed"}, indent=1))
    return res


def _plot(per, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neurosynth.rundir import save_figure

    fig, axes = plt.subplots(1, len(per), figsize=(4 * len(per), 3.4), squeeze=False)
    for ax, r in zip(axes[0], per):
        rand = [x for x in r["rows"] if x["kind"] == "random"]
        cum = np.cumsum([x["cpu_seconds"] for x in rand])
        # best-of-n (chosen on validation) as compute grows, vs the searched network at its compute
        best_test, cur = [], None
        for x in rand:
            if cur is None or x["val_accuracy"] > cur["val_accuracy"]:
                cur = x
            best_test.append(cur["test_accuracy"])
        ax.step(cum, best_test, where="post", label="best random so far (chosen on val)")
        ax.scatter([x for x in cum], [x["test_accuracy"] for x in rand], s=10, c="gray", label="each random")
        ax.scatter([r["budget_cpu_seconds"]], [r["searched"]["test_accuracy"]], marker="*", s=120, c="red",
                   label="searched (search + training)")
        ax.axvline(r["budget_cpu_seconds"], color="red", lw=0.6, ls="--")
        ax.set_xlabel("CPU seconds (1 thread)")
        ax.set_title(f"seed {r['seed']}", fontsize=9)
    axes[0][0].set_ylabel("test accuracy (10,000 images)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Fashion-MNIST, Loihi-deployable MSE space: search vs random at equal compute", fontsize=10)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
