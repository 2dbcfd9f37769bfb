"""Paired evidence for issue 19: does the multi-fidelity search beat random sampling and the hand-designed network?

Per dataset (``fashion_mnist``, ``spoken_digits``) and per seed, on the same data, five arms pick a network of the
chain space (``snn_nas.mse.space.fashion_space`` / ``spoken_digits_space``, which contain the hand networks):

* ``searched``  (a) the new search: multi-fidelity evolution (DEHB-like) of ``snn_nas.engine`` on
  successive-halving rungs, promotion by validation accuracy (``promotion``; v1 used Pareto rank on accuracy and
  SynOps, see docs/msenas.md); the member of the top rung's (accuracy, SynOps) front with the best validation
  accuracy;
* ``random``    (b) random sampling at equal compute: random networks trained at the top rung's budget until the
  arm has used the CPU time arm (a) used; the best on validation;
* ``random_sh`` (c) random sampling + successive halving at the same rung schedule (compute recorded);
* ``old_ga``    (d) the former MSE-NAS mode: GA on the training-free ``rdm`` fitness (population 8, 5 generations);
* ``hand``      (e) the hand-designed default network (the CPU Fashion-MNIST recipe; ``examples/train_shd.py``'s
  default recurrent LIF for spoken digits), a point of the same space.

Every chosen network is retrained with the same standard budget (``final_epochs`` on the training subset, the
seed's training seed) and tested once on the test set. Selection only ever reads the validation split.
Compute = CPU seconds of the process and its children (``getrusage`` self + children) spent in an arm's search.

Resumable: every finished arm and every final retrain is appended to ``RUN/rows.jsonl`` as it finishes; a re-run
skips what is there (a killed run loses at most the arm in flight). After each row the summary is rewritten
atomically to ``benchmarks/results/search_vs_random_<tag>.json``.

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/search_vs_random.py --dataset fashion_mnist --noise-floor
    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/search_vs_random.py --dataset fashion_mnist --seeds 0-9
    python benchmarks/search_vs_random.py --dataset fashion_mnist --summarise-only
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

# ---- the protocol of each dataset (every size stated; nothing here is tuned on test data) -----------------------
PROTOCOLS = {
    "fashion_mnist": {
        "tag": "fmnist", "T": 2, "encoding": "direct (analog image repeated over T, the recipe's current input)",
        "data_seed": 0, "train_images": 2000, "val_images": 500,
        "test_images": 3000,  # a fixed random subset of the 10,000 test images (data_seed)
        "final_epochs": 2, "lr": 2e-3, "batch_size": 128,
        "unit_images": 150,  # one fidelity unit = 1 epoch on this many training images
        "rungs_units": [1, 3, 9], "eta": 3, "brackets": 3, "n0": 9,
        "search_batch_size": 32,  # search budgets train with batch 32: rung 0 (150 images) is 5 Adam steps, not 2
        "promotion": ["accuracy"],  # v1 promoted by Pareto rank on (accuracy, SynOps): see docs/msenas.md
        "ga": {"population": 8, "generations": 5, "fitness": "rdm", "batch": 64},
        "synops_samples": 200,
    },
    "spoken_digits": {
        "tag": "spoken_digits", "T": 20, "dt_s": 0.04, "groups": 140,
        "encoding": "onset-aligned log(1+count), 20 bins of 40 ms x 140 groups of 5 channels",
        "data_seed": 0, "train_images": "full train split", "val_images": "full valid split (voices unseen in train)",
        "test_images": "full test split",
        "final_epochs": 8,  # 2 epochs gave a seed-to-seed sd of ~4 points (noise floor, first try): too noisy
        "lr": 2e-3, "batch_size": 64,
        "unit_images": 300, "rungs_units": [1, 3, 9], "eta": 3, "brackets": 3, "n0": 9,
        "search_batch_size": 32, "promotion": ["accuracy"],
        "ga": {"population": 8, "generations": 5, "fitness": "rdm", "batch": 64},
        "synops_samples": 200,
    },
}
SEARCH_KEYS = ("unit_images", "rungs_units", "eta", "brackets", "n0", "ga", "search_batch_size", "promotion")  # may differ between arm rows
ARMS = ("searched", "random", "random_sh", "old_ga", "hand")


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its waited-for children."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


# ---- data --------------------------------------------------------------------------------------------------
class Data:
    """Train / validation / test tensors ``[T, N, ...]`` of one dataset, fixed for every seed and arm."""

    def __init__(self, dataset: str, proto: dict, data_root: str | None):
        import torch

        if dataset == "fashion_mnist":
            from snn_nas.mse.data import load_task

            n = proto["train_images"] + proto["val_images"]
            task = load_task("fashion_mnist", data_root, T=proto["T"], conv=True, seed=proto["data_seed"], limit=n,
                             test_limit=proto["test_images"], encoding="direct")
            g = torch.Generator().manual_seed(proto["data_seed"])
            perm = torch.randperm(task.x_train.shape[1], generator=g)
            tr, va = perm[: proto["train_images"]], perm[proto["train_images"]:]
            self.x_train, self.y_train = task.x_train[:, tr].contiguous(), task.y_train[tr].contiguous()
            self.x_val, self.y_val = task.x_train[:, va].contiguous(), task.y_train[va].contiguous()
            self.x_test, self.y_test = task.x_test, task.y_test
            self.num_classes = 10
        else:
            from snn_nas.mse.data import spoken_digits_split

            kw = {"T": proto["T"], "dt": proto["dt_s"], "groups": proto["groups"]}
            self.x_train, self.y_train = spoken_digits_split(data_root, "train", **kw)
            self.x_val, self.y_val = spoken_digits_split(data_root, "valid", **kw)
            self.x_test, self.y_test = spoken_digits_split(data_root, "test", **kw)
            self.num_classes = 20
        self.input_shape = list(self.x_train.shape[2:])

    def sizes(self) -> dict:
        return {"train": int(self.x_train.shape[1]), "val": int(self.x_val.shape[1]), "test": int(self.x_test.shape[1])}


def space_for(dataset: str, data: Data):
    from snn_nas.mse.space import fashion_space, spoken_digits_space

    if dataset == "fashion_mnist":
        return fashion_space(data.input_shape, data.num_classes)
    return spoken_digits_space(data.input_shape[0], data.num_classes)


def hand_point(dataset: str, space) -> dict:
    from snn_nas.mse.space import fashion_recipe_point, train_shd_point

    return fashion_recipe_point(space) if dataset == "fashion_mnist" else train_shd_point(space)


# ---- training at a budget ----------------------------------------------------------------------------------
def train_at(spec: dict, seed: int, data: Data, proto: dict, *, epochs: int, images: int | None,
             test: bool = False, batch_size: int | None = None) -> dict:
    """Train ``spec`` (weights, shuffling and the image subset from ``seed``) for ``epochs`` on the first ``images``
    of a seeded permutation of the training set (all when None); validation accuracy, SynOps per sample (on the
    first ``synops_samples`` validation samples), and, when ``test``, test accuracy."""
    import torch

    from neurosynth.training import evaluate, fit
    from snn_nas.mse.data import TensorLoader
    from snn_nas.mse.evaluator import build_seeded, count_synops, loss_for, seeded

    c0 = cpu_seconds()
    n = data.x_train.shape[1]
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))[: images or n]
    x, y = data.x_train[:, idx], data.y_train[idx]
    loss = loss_for(spec)
    model = build_seeded(spec, seed)
    with seeded(seed):
        fit(model, TensorLoader(x, y, batch_size or proto["batch_size"], True, seed), epochs=epochs, lr=proto["lr"], loss=loss,
            progress=False)
    model.eval()
    out = {"params": int(sum(p.numel() for p in model.parameters()))}
    with torch.no_grad():
        out["val_accuracy"] = float(evaluate(model, TensorLoader(data.x_val, data.y_val, 500, False, 0),
                                             loss=loss)["accuracy"])
        out["synops"] = float(count_synops(model, data.x_val[:, : proto["synops_samples"]]))
        if test:
            out["test_accuracy"] = float(evaluate(model, TensorLoader(data.x_test, data.y_test, 500, False, 0),
                                                  loss=loss)["accuracy"])
    out["cpu_s"] = cpu_seconds() - c0
    return out


def candidate_seed(seed: int, spec: dict) -> int:
    from snn_nas.engine import derive_seed, spec_hash

    return int(derive_seed(seed, spec_hash(spec)))


# ---- arms --------------------------------------------------------------------------------------------------
def arm_random(space, data, proto, seed: int, cpu_budget: float, log) -> dict:
    """(b) random networks at the top rung's budget until ``cpu_budget`` CPU seconds are used (the last one is
    kept only if that brings the total closer to the budget); the best on validation."""
    rng = np.random.default_rng([seed, 1])
    sched = schedule_for(proto, data.x_train.shape[1])
    top = sched.budget(sched.s_max)  # the top rung's budget, as the engine arms train their finalists
    c0 = cpu_seconds()
    tried = []
    while True:
        spec = space.sample(rng)
        before = cpu_seconds() - c0
        r = train_at(spec, candidate_seed(seed, spec), data, proto, epochs=top.epochs, images=top.images,
                     batch_size=proto["search_batch_size"])
        used = cpu_seconds() - c0
        if tried and abs(used - cpu_budget) > abs(before - cpu_budget):
            used = before  # this one overshoots more than stopping before it would have: not counted
            break
        tried.append({"spec": spec, **r})
        log(f"  random: {len(tried)} trained, val {r['val_accuracy']:.3f}, {used:.0f}/{cpu_budget:.0f} CPU s")
        if used >= cpu_budget:
            break
    best = max(tried, key=lambda t: t["val_accuracy"])
    return {"spec": best["spec"], "val_accuracy": best["val_accuracy"], "cpu_s": used, "n_trained": len(tried),
            "front": [{"val_accuracy": t["val_accuracy"], "synops": t["synops"]} for t in tried]}


def arm_old_ga(space, data, proto, seed: int, log) -> dict:
    """(d) the training-free MSE-NAS mode: GA on the ``rdm`` fitness of a fixed class-balanced training batch."""
    from snn_nas.engine import Archive, Runner
    from snn_nas.mse.evaluator import RDMFitnessEvaluator
    from snn_nas.strategies import STRATEGIES

    ga = proto["ga"]
    c0 = cpu_seconds()
    rng = np.random.default_rng([seed, 4])
    per = max(1, ga["batch"] // data.num_classes)
    y = data.y_train.numpy()
    idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), per, replace=False)
                                  for c in range(data.num_classes)]))
    evaluator = RDMFitnessEvaluator(data.x_train[:, idx], data.y_train[idx], fitness=ga["fitness"], cost="params")
    strategy = STRATEGIES.get("ga")(space, np.random.default_rng(seed))
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        archive = Archive(Path(tmp) / "archive.sqlite")
        Runner(space, strategy, evaluator, archive, generations=ga["generations"], population=ga["population"],
               seed=seed, workers=0, progress=False).run()
        best = archive.best(1)[0]
        spec, n_ok = best["spec"], len(archive.records("ok"))
    log(f"  old_ga: {n_ok} evaluated, best rdm {best['fitness']:.3f}")
    return {"spec": spec, "fitness": float(best["fitness"]), "cpu_s": cpu_seconds() - c0, "n_evaluated": n_ok}


class BudgetTrainer:
    """The benchmark's budget-aware evaluator for the engine (``supports_budget``): :func:`train_at` at
    ``Budget(epochs, images)``; fitness = validation accuracy; metrics ``synops``, ``params``. Arms (a), (b), (c)
    and the final retrain all train through :func:`train_at`, so they differ only in how they choose."""

    name = "svr_train"
    supports_budget = True

    def __init__(self, data: Data, proto: dict):
        self.data, self.proto = data, proto

    def evaluate(self, spec: dict, seed: int, budget=None) -> dict:
        epochs, images = (self.proto["final_epochs"], 0) if budget is None else (budget.epochs, budget.images)
        r = train_at(spec, seed, self.data, self.proto, epochs=epochs, images=images or None,
                     batch_size=self.proto["search_batch_size"])
        return {"fitness": r["val_accuracy"], "synops": r["synops"], "params": r["params"]}

    def describe(self) -> dict:
        return {"name": self.name}


def schedule_for(proto: dict, n_train: int):
    from snn_nas.multifidelity import RungSchedule

    u = proto["rungs_units"]
    return RungSchedule(min_budget=float(u[0]), max_budget=float(u[-1]), eta=int(proto["eta"]),
                        unit_images=int(proto["unit_images"]), max_images=int(n_train), n0=int(proto["n0"]))


def arm_engine(kind: str, space, data, proto, seed: int, log) -> dict:
    """(a) ``kind="searched"``: DEHB-like evolution on successive-halving rungs with Pareto promotion on
    (validation accuracy, SynOps); (c) ``kind="random_sh"``: random sampling on the same rungs. ``brackets``
    brackets of the schedule; the pick is the member of the final (top-rung) front with the best validation
    accuracy."""
    import tempfile

    from snn_nas.engine import Archive
    from snn_nas.multifidelity import run_multifidelity

    c0 = cpu_seconds()
    sched = schedule_for(proto, data.x_train.shape[1])
    with tempfile.TemporaryDirectory() as tmp, Archive(Path(tmp) / "archive.sqlite") as archive:
        summ = run_multifidelity(space, BudgetTrainer(data, proto), archive,
                                 strategy="dehb" if kind == "searched" else "random_sh",
                                 fidelity="sh", schedule=sched, brackets=int(proto["brackets"]),
                                 objectives=tuple(proto["promotion"]), seed=int(seed) + (0 if kind == "searched" else 7919))
        recs = archive.budget_records()
    top_rung = max(int(r["rung"]) for r in recs if r["status"] == "ok")
    top = [r for r in recs if r["status"] == "ok" and int(r["rung"]) == top_rung]
    # the (validation accuracy, SynOps) front of the top rung; "searched" = its member with the best accuracy
    pts = sorted(top, key=lambda r: (float(r["metrics"]["synops"]), -float(r["fitness"])))
    front, best_acc = [], -1.0
    for r in pts:
        if float(r["fitness"]) > best_acc:
            front.append({"val_accuracy": float(r["fitness"]), "synops": float(r["metrics"]["synops"]), "hash": r["hash"]})
            best_acc = float(r["fitness"])
    pick = max(front, key=lambda f: (f["val_accuracy"], -f["synops"]))
    best_in_front = {"fitness": pick["val_accuracy"]}
    spec = next(r["spec"] for r in top if r["hash"] == pick["hash"])
    log(f"  {kind}: {summ['evaluations']} evaluations, {len(top)} at the top rung, front {len(front)}, "
        f"best val {best_in_front['fitness']:.3f}")
    return {"spec": spec, "val_accuracy": float(best_in_front["fitness"]), "cpu_s": cpu_seconds() - c0,
            "evaluation_cpu_s": float(summ["evaluation_cpu_seconds"]), "n_evaluations": int(summ["evaluations"]),
            "units": float(summ["units"]), "front": front,
            "top_rung": [{"val_accuracy": float(r["fitness"]), "synops": float(r["metrics"]["synops"])} for r in top],
            "schedule": summ["schedule"]}


# ---- the run -------------------------------------------------------------------------------------------------
class Rows:
    """``RUN/rows.jsonl``: one JSON row per finished arm / final retrain / noise-floor training, keyed by ``key``."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, dict] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:  # a line cut by kill -9: measured again
                    continue
                self.rows[r["key"]] = r

    def get(self, key: str):
        return self.rows.get(key)

    def add(self, row: dict) -> dict:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()
        self.rows[row["key"]] = row
        return row


class SeedClaim:
    """``RUN/claims/seed_S``: created exclusively (holding the pid) while a process works on seed ``S``; a claim whose
    process is gone is stale and taken over. ``with SeedClaim(run, s) as ok:`` -- ``ok`` is False when another live
    process holds it."""

    def __init__(self, run: Path, seed: int):
        self.path = run / "claims" / f"seed_{seed}"
        self.ok = False

    def __enter__(self) -> bool:
        import os

        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text() or 0)
                    os.kill(pid, 0)
                    return False  # alive
                except (ValueError, ProcessLookupError, FileNotFoundError):
                    self.path.unlink(missing_ok=True)  # stale
                    continue
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            self.ok = True
            return True
        return False

    def __exit__(self, *exc) -> bool:
        if self.ok:
            self.path.unlink(missing_ok=True)
        return False


def run_seed(dataset, proto, data, space, seed: int, rows: Rows, arms, log) -> None:
    from snn_nas.engine import spec_hash

    picks = {}
    order = [a for a in ("searched", "random_sh", "random", "old_ga", "hand") if a in arms]
    for arm in order:
        key = f"arm/{seed}/{arm}"
        r = rows.get(key)
        if r is None:
            log(f"seed {seed}: arm {arm}")
            if arm == "hand":
                c0 = cpu_seconds()
                r = {"spec": hand_point(dataset, space), "cpu_s": cpu_seconds() - c0}
            elif arm == "old_ga":
                r = arm_old_ga(space, data, proto, seed, log)
            elif arm == "random":
                ref = rows.get(f"arm/{seed}/searched")
                if ref is None:
                    log(f"seed {seed}: random needs the searched arm's CPU time first; skipped")
                    continue
                r = arm_random(space, data, proto, seed, ref["cpu_s"], log)
            else:
                r = arm_engine(arm, space, data, proto, seed, log)
            r = rows.add({"key": key, "seed": seed, "arm": arm, "search": {k: proto[k] for k in SEARCH_KEYS}, **r})
        picks[arm] = r["spec"]
    for arm, spec in picks.items():  # the standard retrain, one per distinct network of the seed
        h = spec_hash(spec)
        key = f"final/{seed}/{h}"
        if rows.get(key) is None:
            log(f"seed {seed}: final retrain of {arm} ({h})")
            r = train_at(spec, seed, data, proto, epochs=proto["final_epochs"], images=None, test=True)
            rows.add({"key": key, "seed": seed, "hash": h, "spec": spec, **r})
            log(f"seed {seed}: {arm} test {r['test_accuracy']:.4f} val {r['val_accuracy']:.4f} "
                f"({r['cpu_s']:.0f} CPU s)")


def noise_floor(dataset, proto, data, space, rows: Rows, n_archs: int, seeds: list[int], log) -> None:
    """Retrain a fixed set of networks (the hand network + ``n_archs - 1`` random ones, drawn with seed 12345) with
    several training seeds at the standard final budget."""
    from snn_nas.engine import spec_hash

    rng = np.random.default_rng(12345)
    specs = [hand_point(dataset, space)] + [space.sample(rng) for _ in range(n_archs - 1)]
    for s in seeds:
        for i, spec in enumerate(specs):
            key = f"noise/{spec_hash(spec)}/{s}"
            if rows.get(key) is None:
                r = train_at(spec, s, data, proto, epochs=proto["final_epochs"], images=None, test=True)
                rows.add({"key": key, "seed": s, "arch": i, "hash": spec_hash(spec), "spec": spec, **r})
                log(f"noise floor: arch {i} seed {s}: test {r['test_accuracy']:.4f} ({r['cpu_s']:.0f} CPU s)")


# ---- summary -------------------------------------------------------------------------------------------------
def t_interval(d: list[float]) -> dict:
    from scipy import stats

    d = np.asarray(d, float)
    n = len(d)
    if n < 2:
        return {"n": n, "mean": float(d.mean()) if n else None}
    m, sd = float(d.mean()), float(d.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mean": m, "sd": sd, "ci95": [m - half, m + half]}


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Non-dominated (accuracy max, synops min) points, sorted by synops."""
    front = []
    for a, s in sorted(points, key=lambda p: (p[1], -p[0])):
        if not front or a > front[-1][0]:
            front.append((a, s))
    return front


def hypervolume(points: list[tuple[float, float]], ref_synops: float) -> float:
    """Area dominated by ``points`` (accuracy up from 0, SynOps down from ``ref_synops``), normalised by
    ``ref_synops`` (so an accuracy-1 point at 0 SynOps scores 1)."""
    front = [(a, s) for a, s in pareto_front(points) if s <= ref_synops]
    hv = 0.0
    for i, (a, s) in enumerate(front):
        nxt = front[i + 1][1] if i + 1 < len(front) else ref_synops
        hv += a * (nxt - s)  # a holds from s until the next (more accurate, costlier) point
    return hv / ref_synops


def summarise(dataset, proto, rows: Rows, data_sizes: dict | None, ref_synops: float | None, extra: dict) -> dict:
    from snn_nas.engine import spec_hash

    seeds = sorted({r["seed"] for k, r in rows.rows.items() if k.startswith("arm/")})
    per_seed = []
    for s in seeds:
        arms = {a: rows.get(f"arm/{s}/{a}") for a in ARMS}
        if any(v is None for v in arms.values()):
            continue
        fin = {a: rows.get(f"final/{s}/{spec_hash(arms[a]['spec'])}") for a in ARMS}
        if any(v is None for v in fin.values()):
            continue
        row = {"seed": s, **{a: fin[a]["test_accuracy"] for a in ARMS},
               "hand_synops": fin["hand"]["synops"], "searched_synops": fin["searched"]["synops"],
               "synops": {a: fin[a]["synops"] for a in ARMS}, "val": {a: fin[a]["val_accuracy"] for a in ARMS},
               "params": {a: fin[a]["params"] for a in ARMS},
               "cpu_s": {a: arms[a]["cpu_s"] for a in ("searched", "random", "random_sh")},
               "cpu_s_old_ga": arms["old_ga"]["cpu_s"],
               "fronts": {a: arms[a].get("front") for a in ("searched", "random_sh", "random")},
               "specs": {a: arms[a]["spec"] for a in ARMS}}
        per_seed.append(row)
    noise = [r for k, r in rows.rows.items() if k.startswith("noise/")]
    by_arch: dict[str, list[float]] = {}
    for r in noise:
        by_arch.setdefault(r["hash"], []).append(r["test_accuracy"])
    sds = [float(np.std(v, ddof=1)) for v in by_arch.values() if len(v) >= 2]
    pooled = float(math.sqrt(np.mean(np.square(sds)))) if sds else None
    out = {"protocol": {**proto, "dataset": dataset, "sizes": data_sizes, "machine": platform.platform(),
                        "cpu": platform.processor() or platform.machine(), "threads": 1, **extra},
           "noise_floor_sd": pooled,
           "noise_floor": {"per_arch": {h: {"test_accuracies": v, "mean": float(np.mean(v)),
                                             "sd": float(np.std(v, ddof=1)) if len(v) > 1 else None}
                                        for h, v in by_arch.items()}},
           "seeds": per_seed}
    if per_seed:
        acc = {a: [r[a] for r in per_seed] for a in ARMS}
        summ = {"mean": {a: float(np.mean(v)) for a, v in acc.items()},
                "sd": {a: float(np.std(v, ddof=1)) if len(v) > 1 else None for a, v in acc.items()},
                "paired_differences": {f"searched-{b}": t_interval([x - y for x, y in zip(acc["searched"], acc[b])])
                                       for b in ARMS if b != "searched"},
                "wins": {f"searched>{b}": int(sum(x > y for x, y in zip(acc["searched"], acc[b]))) for b in ARMS
                         if b != "searched"},
                "ties": {f"searched={b}": int(sum(x == y for x, y in zip(acc["searched"], acc[b]))) for b in ARMS
                         if b != "searched"},
                "mean_cpu_s": {a: float(np.mean([r["cpu_s"][a] for r in per_seed]))
                               for a in ("searched", "random", "random_sh")},
                "searched_synops_le_hand": int(sum(r["searched_synops"] <= r["hand_synops"] for r in per_seed))}
        if ref_synops:
            hv = {}
            for a in ("searched", "random_sh", "random"):
                vals = [hypervolume([(p["val_accuracy"], p["synops"]) for p in r["fronts"][a]], ref_synops)
                        for r in per_seed if r["fronts"].get(a)]
                hv[a] = {"mean": float(np.mean(vals)) if vals else None, "per_seed": vals}
            summ["hypervolume_validation_fronts"] = {"reference": {"accuracy": 0.0, "synops": ref_synops}, **hv}
            summ["hypervolume_final_networks"] = {
                a: float(np.mean([hypervolume([(r[a], r["synops"][a])], ref_synops) for r in per_seed])) for a in ARMS}
        out["summary"] = summ
    return out


def markdown(d: dict) -> str:
    """The per-seed table and the summary lines of a summary JSON, as Markdown (for docs/msenas.md)."""
    pct = lambda v: f"{100 * v:.2f}"  # noqa: E731
    lines = ["| seed | searched | random | random + SH | old GA (rdm) | hand | searched / hand SynOps | CPU s: searched / "
             "random / random + SH |", "|---|---|---|---|---|---|---|---|"]
    for r in d["seeds"]:
        c = r["cpu_s"]
        lines.append(f"| {r['seed']} | {pct(r['searched'])} | {pct(r['random'])} | {pct(r['random_sh'])} | "
                     f"{pct(r['old_ga'])} | {pct(r['hand'])} | {r['searched_synops']:,.0f} / {r['hand_synops']:,.0f} | "
                     f"{c['searched']:.0f} / {c['random']:.0f} / {c['random_sh']:.0f} |")
    s = d.get("summary")
    if s:
        lines.append("| mean ± sd | " + " | ".join(f"{pct(s['mean'][a])} ± {pct(s['sd'][a] or 0)}" for a in ARMS)
                     + f" | | {s['mean_cpu_s']['searched']:.0f} / {s['mean_cpu_s']['random']:.0f} / "
                       f"{s['mean_cpu_s']['random_sh']:.0f} |")
        lines.append("")
        for k, v in s["paired_differences"].items():
            ci = v.get("ci95")
            w = s["wins"][k.replace("-", ">")]
            t = s["ties"][k.replace("-", "=")]
            lines.append(f"- {k}: {pct(v['mean'])} points" + (f", 95% CI [{pct(ci[0])}, {pct(ci[1])}]" if ci else "")
                         + f"; searched wins {w} of {v['n']} seeds ({t} ties)")
        hv = s.get("hypervolume_validation_fronts")
        if hv:
            lines.append("- hypervolume of the top-rung validation fronts (reference: accuracy 0, "
                         f"{hv['reference']['synops']:,.0f} SynOps): " + ", ".join(
                             f"{a} {hv[a]['mean']:.4f}" for a in ("searched", "random_sh", "random") if hv[a]["mean"]))
            lines.append("- hypervolume of the retrained networks (test accuracy): " + ", ".join(
                f"{a} {v:.4f}" for a, v in s["hypervolume_final_networks"].items()))
        lines.append(f"- searched network at no more SynOps than the hand network: {s['searched_synops_le_hand']} of "
                     f"{len(d['seeds'])} seeds")
    lines.append(f"- noise floor: pooled seed-to-seed sd of test accuracy {d['noise_floor_sd']}")
    return "\n".join(lines)


def plot(summary: dict, path: Path, title: str) -> None:
    """Per-seed test accuracy of every arm (paired by seed), and the final networks on (SynOps, accuracy) with the
    validation fronts of the search arms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neurosynth.io import atomic_path

    seeds = summary["seeds"]
    if not seeds:
        return
    colors = {"searched": "C3", "random": "C0", "random_sh": "C2", "old_ga": "C7", "hand": "k"}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in seeds:
        ax1.plot(range(len(ARMS)), [r[a] for a in ARMS], color="0.8", lw=0.8, zorder=1)
    for j, a in enumerate(ARMS):
        v = [r[a] for r in seeds]
        ax1.scatter([j] * len(v), v, color=colors[a], s=18, zorder=2)
        ax1.errorbar([j + 0.15], [np.mean(v)], yerr=[np.std(v, ddof=1) if len(v) > 1 else 0], fmt="D",
                     color=colors[a], capsize=3)
    ax1.set_xticks(range(len(ARMS)), ARMS)
    ax1.set_ylabel("test accuracy (standard retrain)")
    ax1.set_title(f"{title}: {len(seeds)} paired seeds")
    for a in ARMS:
        ax2.scatter([r["synops"][a] for r in seeds], [r[a] for r in seeds], color=colors[a], s=22, label=a,
                    marker="*" if a == "hand" else "o")
    for a in ("searched", "random_sh"):
        for r in seeds:
            f = sorted(r["fronts"].get(a) or [], key=lambda p: p["synops"])
            if f:
                ax2.plot([p["synops"] for p in f], [p["val_accuracy"] for p in f], color=colors[a], lw=0.6, alpha=0.4)
    ax2.set_xscale("log")
    ax2.set_xlabel("SynOps per sample (trained network)")
    ax2.set_ylabel("test accuracy; lines: top-rung validation fronts")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def largest_synops(space, data, proto) -> dict:
    """The largest SynOps per sample of the space: its maximal network (every layer present, at its widest, with the
    largest kernel, recurrent where the space allows) with every input element and every neuron active at every step
    (the bound no network of the space can pass; the reference point of the hypervolume), and the same network's
    measured SynOps, untrained, on validation samples (for scale)."""
    import torch

    from snn_nas.mse.evaluator import build_seeded, count_synops

    c = space.cfg
    nd = {"neuron": "lif", "beta": max(c.betas)}
    big = space.validate(space.make_spec(
        [{"width": max(c.widths), "kernel": max(c.kernels), "pool": c.pools[0], **nd}
         for _ in range(c.blocks[1] if c.conv else 0)],
        [{"width": max(c.hidden_widths), "recurrent": c.recurrent[-1], **nd} for _ in range(c.hidden[1])],
        c.readouts[0], max(c.readout_betas)))
    model = build_seeded(big, 0).eval()
    x = data.x_val[:, : min(100, proto["synops_samples"])]
    dense = [0.0]

    def hook(m, inp, out):
        fan = (m.out_channels * m.kernel_size[0] * m.kernel_size[1] / m.groups if isinstance(m, torch.nn.Conv2d)
               else m.out_features)
        dense[0] += float(inp[0].numel()) * fan

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    with torch.no_grad():
        measured = count_synops(model, x)
    return {"maximal_network_all_active": dense[0] / x.shape[1], "maximal_network_measured_untrained": float(measured),
            "reference": dense[0] / x.shape[1]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=sorted(PROTOCOLS), required=True)
    p.add_argument("--data-root", default=None, help="fashion_mnist: the torchvision/Debian root (default: found); "
                                                     "spoken_digits: the folder holding SpokenDigits/")
    p.add_argument("--seeds", default="0-9", help="e.g. 0-9 or 0,1,2")
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--noise-floor", action="store_true", help="retrain a fixed set of networks with several seeds")
    p.add_argument("--noise-archs", type=int, default=3)
    p.add_argument("--noise-seeds", default="100-103")
    p.add_argument("--run", default=None, help="the resumable run folder (default runs/search_vs_random_<tag>)")
    p.add_argument("--out", default=None, help="summary JSON (default benchmarks/results/search_vs_random_<tag>.json)")
    p.add_argument("--summarise-only", action="store_true")
    p.add_argument("--markdown", action="store_true", help="print the per-seed and summary tables (docs)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, to check the harness end to end (needs --run, --out)")
    a = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    proto = dict(PROTOCOLS[a.dataset])
    if a.smoke:
        if not (a.run and a.out):
            p.error("--smoke needs --run and --out (it must not touch the real results)")
        proto.update({"final_epochs": 1, "unit_images": 20, "brackets": 2, "synops_samples": 50,
                      "ga": {**proto["ga"], "population": 4, "generations": 2}})
        if a.dataset == "fashion_mnist":
            proto.update({"train_images": 300, "val_images": 100, "test_images": 200})
    tag = proto["tag"]
    run = Path(a.run or ROOT / "runs" / f"search_vs_random_{tag}")
    out = Path(a.out or RESULTS / f"search_vs_random_{tag}.json")
    rows = Rows(run / "rows.jsonl")

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def rng_list(s: str) -> list[int]:
        if "-" in s and "," not in s:
            lo, hi = s.split("-")
            return list(range(int(lo), int(hi) + 1))
        return [int(v) for v in s.split(",") if v.strip()]

    meta_path = run / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    final_keys = [k for k in proto if k not in SEARCH_KEYS]  # the arms store their own search settings
    if meta and any(meta.get("protocol", {}).get(k) != json.loads(json.dumps(proto[k])) for k in final_keys):
        raise SystemExit(f"{run} holds rows measured under another protocol ({meta_path}); use another --run")
    fresh = "maximal_network_all_active" in meta.get("synops_reference", {})
    data = None if a.summarise_only and meta and fresh else Data(a.dataset, proto, a.data_root)
    if data is not None:
        space = space_for(a.dataset, data)
        if "synops_reference" not in meta or "maximal_network_all_active" not in meta["synops_reference"]:
            meta = {"protocol": proto, "sizes": data.sizes(), "space": space.describe(), "command": sys.argv, **meta,
                    "synops_reference": largest_synops(space, data, proto)}
            meta_path.write_text(json.dumps(meta, indent=1))

    def write_summary() -> None:
        from neurosynth.io import write_json

        rows.__init__(rows.path)  # re-read: other processes may work on other seeds of the same run

        extra = {"space": meta.get("space"), "synops_reference": meta.get("synops_reference"),
                 "rows": str(run / "rows.jsonl"), "data_root": a.data_root}
        man = Path(a.data_root or ".") / "SpokenDigits" / "spoken_digits.json"
        if a.dataset == "spoken_digits" and man.exists():  # which files: their SHA-256 from the generator's manifest
            m = json.loads(man.read_text())
            extra["files_sha256"] = {k: v.get("sha256") for k, v in m.get("files", {}).items()}
            extra["generator_options"] = m.get("options")
        summ = summarise(a.dataset, proto, rows, meta.get("sizes"),
                         (meta.get("synops_reference") or {}).get("reference"), extra)
        write_json(out, summ)
        plot(summ, out.with_suffix(".png"), a.dataset)

    if not a.summarise_only:
        if a.noise_floor:
            noise_floor(a.dataset, proto, data, space, rows, a.noise_archs, rng_list(a.noise_seeds), log)
        else:
            arms = [x.strip() for x in a.arms.split(",") if x.strip()]
            for s in rng_list(a.seeds):
                with SeedClaim(run, s) as claimed:  # several processes may share a run: one seed each at a time
                    if not claimed:
                        log(f"seed {s}: another process is on it; next")
                        continue
                    run_seed(a.dataset, proto, data, space, s, rows, arms, log)
                write_summary()
    write_summary()
    log(f"wrote {out}")
    if a.markdown:
        print(markdown(json.loads(out.read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
