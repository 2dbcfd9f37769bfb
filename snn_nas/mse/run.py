"""Orchestration of an MSE-NAS search (used by ``neurosynth search mse`` and the demo stage).

:func:`run_search` loads the data, builds the space, strategy, evaluator and archive, runs the
:class:`~snn_nas.engine.runner.Runner`, and writes into ``out``::

    archive.sqlite        every evaluated architecture (+ strategy state per generation)
    best.json             the best spec (an ArchSpec: neurosynth.arch.build(best) rebuilds it)
    hall_of_fame.json     the 10 best (fitness, spec)
    summary.json          per-generation best/mean, counts, timings
    manifest.json         command, config, seed, versions, hardware, git commit, results
    plots/fitness.png     fitness of every evaluation and the per-generation best/mean
    plots/pareto.png      fitness vs cost (params or SynOps) with the non-dominated front
    best_model/           with train_best > 0: a run directory like `neurosynth train` writes
"""

from __future__ import annotations

import math
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class SearchConfig:
    out: str
    dataset: str = "digits"
    data_root: str | None = None
    T: int | None = None  # None: DEFAULT_T, or on a target with synaptic delay the T its depth needs (default_T)
    encoding: str | None = None  # static images: direct (analog current every step) | rate | latency;
    # None: direct for target float, rate for loihi/nir (their inputs must be spikes)
    target: str = "float"  # a name in neurosynth.hardware.targets.TARGETS: every candidate deployable by construction
    fitness_T: int | None = None  # score on the first fitness_T steps only (None: all T)
    dense: bool = False
    limit: int | None = None
    population: int = 8
    generations: int = 5
    strategy: str = "ga"
    fitness: str = "rdm"
    reference: str = "labels"  # labels | input | a run directory
    cost: str = "params"
    batch: int = 64
    seed: int = 0
    workers: int = 0
    ray: str | None = None
    resume: bool = False
    train_best: int = 0
    train_lr: float = 5e-3
    progress: bool = True
    space: dict = field(default_factory=dict)  # MSESpaceConfig overrides (JSON)


def _user_error(msg: str):
    from neurosynth.errors import UserError

    return UserError(msg)


def check_config(cfg: SearchConfig) -> None:
    from ..strategies import STRATEGIES
    from .fitness import FITNESSES

    if cfg.population < 1 or cfg.generations < 1:
        raise _user_error(f"--population and --generations must be >= 1 (got {cfg.population}, {cfg.generations})")
    if cfg.strategy not in STRATEGIES:
        raise _user_error(f"unknown --strategy {cfg.strategy!r}; choose from {STRATEGIES.names()}")
    if cfg.fitness not in FITNESSES:
        raise _user_error(f"unknown --fitness {cfg.fitness!r}; choose from {FITNESSES.names()}")
    if cfg.workers < 0:
        raise _user_error(f"--workers must be >= 0 (got {cfg.workers})")
    if cfg.T < 1 or cfg.batch < 4:
        raise _user_error(f"--T must be >= 1 and --batch >= 4 (got {cfg.T}, {cfg.batch})")
    from .evaluator import COSTS
    from .targets import TARGETS

    if cfg.target not in TARGETS:
        raise _user_error(f"unknown --target {cfg.target!r}; choose from {list(TARGETS)}")
    tgt = TARGETS.get(cfg.target)
    if tgt.input == "spikes" and cfg.encoding == "direct":
        raise _user_error(f"--target {cfg.target} needs spike inputs (the chip receives spikes): use --encoding rate "
                          "or latency, not direct")
    costs = [c.strip() for c in cfg.cost.split(",") if c.strip()]
    if not costs or set(costs) - set(COSTS):
        raise _user_error(f"--cost takes one or more (comma-separated) of {list(COSTS)}; got {cfg.cost!r}")
    if (not tgt.lowers or tgt.resources is None) and any(c.startswith("loihi") for c in costs):
        with_model = [n for n, t in TARGETS.items() if t.lowers and t.resources is not None]
        raise _user_error(f"--cost loihi_* needs a --target with a resource model ({', '.join(with_model)}): the "
                          "resource estimate of a deployable network")
    if cfg.fitness_T is not None and not 1 <= cfg.fitness_T <= cfg.T:
        raise _user_error(f"--fitness-T must lie in [1, --T={cfg.T}]; got {cfg.fitness_T}")
    if cfg.strategy == "nsga2" and cfg.population < 4:
        raise _user_error("--strategy nsga2 needs --population >= 4")
    out = Path(cfg.out)
    if (out / "archive.sqlite").exists() and not cfg.resume:
        raise _user_error(f"{out} already holds a search (archive.sqlite); pass --resume to continue it "
                          "or choose another --out")


def _synapse_delay(target: str) -> int:
    """Steps of synaptic delay per layer on ``target`` (Loihi: 1), which bound the depth a time window allows."""
    from .targets import get_target

    return get_target(target).synapse_delay


DEFAULT_T = 4  # time steps on a target without synaptic delay (float)
DEFAULT_DELAYED_T = 8  # on a target with one step of delay per layer (loihi, nir): room for 6 spiking layers


def _max_layers(T: int) -> int:
    """The deepest network a window of ``T`` steps allows with one step of delay per layer (>= 1/4 of the window
    left for the output)."""
    return max(3, (3 * T) // 4)


def _min_T(layers: int) -> int:
    """The shortest window whose :func:`_max_layers` is >= ``layers``."""
    T = 1
    while _max_layers(T) < layers:
        T += 1
    return T


def _min_depth(cfg: SearchConfig) -> int:
    depth = (cfg.space or {}).get("depth", [2, 4])
    try:
        return 2 + int(depth[0])  # stem + the fewest cells + output
    except (TypeError, ValueError, IndexError, KeyError):
        return 4  # the space reports the bad value itself


def default_T(cfg: SearchConfig) -> int:
    """``--T`` when unset: 4, or on a target with synaptic delay the longer of 8 and what the space's smallest
    network needs."""
    if not _synapse_delay(cfg.target):
        return DEFAULT_T
    return max(DEFAULT_DELAYED_T, _min_T(_min_depth(cfg)))


def _reference(cfg: SearchConfig):
    if cfg.reference in ("labels", "input"):
        return {"reference": cfg.reference}, None, None
    from neurosynth.rundir import load_run

    run = Path(cfg.reference)
    if not (run / "arch.json").exists() or not (run / "model.pt").exists():
        raise _user_error(f"--reference {cfg.reference!r} is neither 'labels', 'input' nor a run directory "
                          "holding arch.json and model.pt")
    model, spec, _ = load_run(run)  # refuses incomplete or damaged runs with a clear error
    return {}, spec, {k: v.detach().cpu() for k, v in model.state_dict().items()}


def run_search(cfg: SearchConfig, command: str | list[str] | None = None) -> dict:
    """Run (or resume) a search; returns the summary (also written to ``summary.json``)."""
    import torch

    from neurosynth.io import write_json
    from neurosynth.rundir import RunDir

    from ..engine import Archive, Runner
    from ..strategies import STRATEGIES
    from . import builder  # noqa: F401  (registers the "mse" ArchSpec kind)
    from .data import fitness_batch, load_task
    from .evaluator import RDMFitnessEvaluator
    from .space import MSESpace, MSESpaceConfig

    if cfg.encoding is None:
        from .targets import TARGETS

        spikes = cfg.target in TARGETS and TARGETS.get(cfg.target).input == "spikes"
        cfg.encoding = "rate" if spikes else "direct"
    if cfg.T is None:
        cfg.T = default_T(cfg)
    check_config(cfg)
    torch.set_num_threads(1)
    with RunDir.create(cfg.out, kind="search mse", resume=cfg.resume, replace=False) as rd:
        t0 = time.perf_counter()
        try:
            task = load_task(cfg.dataset, cfg.data_root, T=cfg.T, conv=not cfg.dense, seed=cfg.seed, limit=cfg.limit,
                             encoding=cfg.encoding)  # used by static datasets only (their entry says so)
        except (ValueError, FileNotFoundError) as e:
            raise _user_error(f"cannot load dataset {cfg.dataset!r}: {e}") from e
        try:
            base = {"input_shape": task.input_shape, "num_classes": task.num_classes, "target": cfg.target}
            delayed = _synapse_delay(cfg.target)
            if delayed:  # one step of delay per layer: keep >= 1/4 of the window for the output
                base["max_layers"] = _max_layers(cfg.T)
                need = _min_depth(cfg)
                if "max_layers" not in cfg.space and base["max_layers"] < need:
                    raise ValueError(
                        f"--T {cfg.T} is too short for --target {cfg.target}: with one step of synaptic delay per layer "
                        f"it allows {base['max_layers']} spiking layers and the smallest network of the space has "
                        f"{need}; use --T >= {_min_T(need)} (or leave --T unset: {default_T(cfg)} for this target)")
            space = MSESpace(MSESpaceConfig.from_dict({**base, **cfg.space}))
        except (ValueError, TypeError) as e:
            raise _user_error(f"invalid search space: {e}") from e
        if delayed and cfg.fitness_T is not None and cfg.fitness_T < (space.cfg.max_layers or 0):
            raise _user_error(f"--fitness-T {cfg.fitness_T} is shorter than the deepest candidate "
                              f"({space.cfg.max_layers} layers): with one step of synaptic delay per layer the readout "
                              "would still be silent (every score 0); use --fitness-T >= max_layers or leave it unset")
        if cfg.fitness == "rdm" and cfg.reference == "labels" and cfg.batch < 2 * task.num_classes:
            raise _user_error(f"--batch {cfg.batch} is too small for the label RDM of {task.num_classes} classes: "
                              f"use --batch >= {2 * task.num_classes} so that every class has a same-class pair")
        x, y = fitness_batch(task, cfg.batch, cfg.seed)
        ref_kw, ref_spec, ref_state = _reference(cfg)
        evaluator = RDMFitnessEvaluator(x, y, fitness=cfg.fitness, cost=cfg.cost, fitness_kw=ref_kw,
                                        reference_spec=ref_spec, reference_state=ref_state, fitness_T=cfg.fitness_T)
        n_obj = 1 + len(evaluator.costs)
        strategy = STRATEGIES.get(cfg.strategy)(space, np.random.default_rng(cfg.seed),
                                                **({"n_obj": n_obj} if cfg.strategy == "nsga2" else {}))
        config = {k: v for k, v in asdict(cfg).items() if k not in ("out", "resume", "progress", "workers", "ray")}
        config["space"] = space.describe()
        try:
            archive = Archive(rd.path / "archive.sqlite")
            archive.get_meta("config")
        except (ValueError, sqlite3.DatabaseError) as e:
            from neurosynth.errors import disk_full_error

            if disk_full_error(e) is not None:  # the disk, not the archive
                raise disk_full_error(e) from e
            raise _user_error(f"{Path(cfg.out) / 'archive.sqlite'} is not a usable search archive ({e}); delete "
                              f"{cfg.out} (or choose another --out) and search again without --resume") from e
        try:
            runner = Runner(space, strategy, evaluator, archive, generations=cfg.generations, population=cfg.population,
                            seed=cfg.seed, workers=cfg.workers, ray=cfg.ray, progress=cfg.progress, resume=cfg.resume,
                            config={"dataset": cfg.dataset, "fitness": cfg.fitness, "T": cfg.T, "batch": cfg.batch,
                                    "encoding": cfg.encoding, "limit": cfg.limit, "space_overrides": cfg.space,
                                    "dense": cfg.dense, "reference": cfg.reference, "cost": cfg.cost,
                                    **({"target": cfg.target} if cfg.target != "float" else {}),
                                    **({"fitness_T": cfg.fitness_T} if cfg.fitness_T is not None else {})},
                            on_generation=lambda s: _generation_done(rd, s))
            try:
                summary = runner.run()
            except ValueError as e:
                raise _user_error(str(e)) from e
            records = archive.records()
            summary["search_seconds"] = time.perf_counter() - t0
            if summary["best"] is None:
                raise _user_error(f"every candidate failed; see the 'error' column of {rd.path / 'archive.sqlite'} "
                                  "(kept for inspection; delete it or search again with other settings)")
            best = summary["best"]
            write_json(rd.file("best.json"), best["spec"])
            write_json(rd.file("hall_of_fame.json"), [{"fitness": f, "spec": s} for f, s in strategy.hall_of_fame])
            plot_fitness(records, summary["history"], rd.plot_path("fitness"), cfg.fitness)
            front = plot_pareto(records, rd.plot_path("pareto"), cfg.fitness, list(evaluator.costs))
            summary["pareto_front"] = front
            results = {"best_fitness": best["fitness"], "best_hash": best["hash"], "best_metrics": best["metrics"],
                       "evaluations": summary["evaluations"], "failed": summary["failed"],
                       "search_seconds": summary["search_seconds"], "pareto_front": front}
            if cfg.train_best > 0:
                results["best_model"] = train_best(best["spec"], task, cfg, rd.path / BEST_MODEL, command)
                results["best_model"]["dir"] = str(Path(cfg.out) / BEST_MODEL)
            summary["results"] = results
            write_json(rd.file("summary.json"), {k: v for k, v in summary.items() if k != "best"} | {"best": best})
            rd.write_manifest(command, config, cfg.seed, results)
        finally:
            archive.close()
    return summary


def _generation_done(rd, summary: dict) -> None:
    """After each archived generation: the partial run is worth keeping for --resume (kill point for tests)."""
    from neurosynth.rundir import kill_point

    rd.keep_on_error = True
    kill_point(f"search:generation-{summary.get('generation')}")


BEST_MODEL = "best_model"  # run-directory name of the trained winner (MSE-NAS and BioNAS)


def train_best(spec: dict, task, cfg: SearchConfig, out: Path, command=None) -> dict:
    """Train ``spec`` for ``cfg.train_best`` epochs and write a run directory (model.pt, arch.json,
    metrics.json, manifest.json, plots/training.png) that `neurosynth export` can read.

    A deployable spec (target loihi/nir) is saved as the plain sequential ArchSpec it lowers to, so the run
    directory is an ordinary ``SNN`` that ``neurosynth export loihi|nir`` reads without ``snn_nas``; the
    searched spec is kept in ``searched_spec.json``."""
    import torch

    from neurosynth.rundir import RunDir
    from neurosynth.training import evaluate, fit

    from .data import TensorLoader
    from .evaluator import build_seeded, loss_for, seeded

    loss = loss_for(spec)
    model = build_seeded(spec, cfg.seed)
    train = TensorLoader(task.x_train, task.y_train, 64, True, cfg.seed)
    test = TensorLoader(task.x_test, task.y_test, 256, False, 0)
    t0 = time.perf_counter()
    with seeded(cfg.seed):
        hist = fit(model, train, epochs=cfg.train_best, lr=cfg.train_lr, loss=loss, val_loader=test,
                   progress=cfg.progress)
    secs = time.perf_counter() - t0
    ev = evaluate(model, test, loss=loss, record_rates=True)
    with RunDir.create(out, kind="train") as rd:
        if spec.get("target", "float") != "float":
            from .builder import lowered

            rd.write_json("searched_spec.json", spec)
            rd.save_model(model, lowered(spec))
        else:
            rd.save_model(model, spec)
        metrics = {"test_accuracy": ev["accuracy"], "test_loss": ev["loss"], "test_samples": ev["samples"],
                   "firing_rates": ev.get("firing_rates", {}), "train_seconds": secs, "epochs": cfg.train_best,
                   "loss": loss, "history": hist, "params": int(sum(p.numel() for p in model.parameters()))}
        rd.write_json("metrics.json", metrics)
        _plot_history(hist, rd.plot_path("training"))
        rd.write_manifest(command, {"spec": spec, "dataset": cfg.dataset, "T": cfg.T, "epochs": cfg.train_best,
                                    "lr": cfg.train_lr, "loss": loss, "encoding": cfg.encoding,
                                    "target": cfg.target}, cfg.seed,
                          {k: v for k, v in metrics.items() if k != "history"})
        del torch
    return {k: v for k, v in metrics.items() if k != "history"} | {"dir": str(out)}


# ---- plots ---------------------------------------------------------------------------------------------
def plot_fitness(records: list[dict], history: list[dict], path: Path | None, fitness: str):
    from matplotlib.ticker import MaxNLocator

    from neurosynth.plots import figure, finish

    fig, ax = figure(figsize=(6, 4))
    ok = [r for r in records if r["status"] == "ok"]
    ax.scatter([r["generation"] for r in ok], [r["fitness"] for r in ok], s=10, alpha=0.4, label="evaluations")
    g = [h["generation"] for h in history]
    ax.plot(g, [h["best"] for h in history], "o-", label="generation best")
    ax.plot(g, [h["mean"] for h in history], "s--", label="generation mean")
    best_so_far = np.maximum.accumulate([h["best"] if math.isfinite(h["best"]) else -np.inf for h in history]) \
        if history else []
    ax.plot(g, best_so_far, "k-", lw=1, label="best so far")
    ax.set_xlabel("generation")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"fitness ({fitness})")
    ax.set_title("MSE-NAS search")
    ax.legend(fontsize=8)
    return finish(fig, path)


def pareto_indices(F: np.ndarray) -> list[int]:
    """Indices of the non-dominated rows of ``F`` (all objectives minimised)."""
    keep = []
    for i in range(len(F)):
        dominated = np.any(np.all(F <= F[i], axis=1) & np.any(F < F[i], axis=1))
        if not dominated:
            keep.append(i)
    return keep


def plot_pareto(records: list[dict], path: Path, fitness: str, cost: str | list[str]) -> list[dict]:
    """Fitness against each ``--cost`` objective, one panel per cost, with the non-dominated front (over all the
    objectives) marked in every panel. Returns the front (hash, fitness and every cost)."""
    from neurosynth.plots import figure, finish

    costs = [cost] if isinstance(cost, str) else list(cost)
    ok = [r for r in records if r["status"] == "ok" and r["objectives"] is not None]
    fig, axes = figure(1, len(costs), figsize=(5.5 * len(costs), 4), squeeze=False)
    front = []
    F = np.array([r["objectives"] for r in ok], dtype=float) if ok else np.zeros((0, 1 + len(costs)))
    idx = pareto_indices(F) if ok else []
    for k, (ax, name) in enumerate(zip(axes[0], costs)):
        col = 1 + k
        if ok and F.shape[1] > col:
            ax.scatter(F[:, col], -F[:, 0], s=10, alpha=0.4, label="evaluations")
            fi = sorted(idx, key=lambda i: F[i, col])
            ax.plot(F[fi, col], -F[fi, 0], "ro-", label="Pareto front (all objectives)")
            if np.all(F[:, col] > 0):
                ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel(f"fitness ({fitness})")
        ax.set_title(f"fitness vs {name}")
        ax.legend(fontsize=8)
    if ok:
        order = sorted(idx, key=lambda i: F[i, 1])
        front = [{"hash": ok[i]["hash"], "fitness": float(-F[i, 0]),
                  **{name: float(F[i, 1 + k]) for k, name in enumerate(costs) if F.shape[1] > 1 + k}} for i in order]
    finish(fig, path)
    return front


def _plot_history(hist: dict, path: Path | None = None):
    from neurosynth.plots import figure, finish

    fig, ax = figure(figsize=(5, 3.5))
    ax.plot(hist["epoch"], hist["train_accuracy"], "o-", label="train")
    ax.plot(hist["epoch"], hist["val_accuracy"], "s-", label="test")
    ax.set_xlabel("epoch")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("accuracy")
    ax.legend()
    return finish(fig, path)
