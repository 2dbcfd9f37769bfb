"""Orchestration of an MSE-NAS search (used by ``neurosynth search mse`` and the demo stage).

:func:`run_search` loads the data, builds the space, strategy, evaluator and archive, runs the
:class:`~snn_nas.engine.runner.Runner` (``fidelity="none"``: the training-free RDM search) or the multi-fidelity
engine (``fidelity="sh" | "hyperband" | "asha"``: candidates trained at growing budgets and selected on a validation
split carved from the training data, :mod:`snn_nas.engine.fidelity`), and writes into ``out``::

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

from ..engine.archive import open_search_archive
from ..engine.pareto import pareto_indices


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
    strategy: str | None = None  # None: "ga" for fidelity none, "dehb" for a multi-fidelity search
    fitness: str = "rdm"
    reference: str = "labels"  # labels | input | a run directory
    cost: str | None = None  # None: "params" for fidelity none, "synops" for a multi-fidelity search
    batch: int = 64
    seed: int = 0
    workers: int = 0
    ray: str | None = None
    resume: bool = False
    train_best: int = 0
    train_lr: float = 5e-3
    progress: bool = True
    space: dict = field(default_factory=dict)  # MSESpaceConfig overrides (JSON)
    # ---- multi-fidelity search (snn_nas.engine.fidelity); fidelity "none" = the training-free RDM search ----
    fidelity: str | None = None  # none | sh | hyperband | asha; None: snn_nas.engine.fidelity.DEFAULT_FIDELITY
    min_budget: float = 1.0  # budget units of the lowest rung (1 unit = unit_images image presentations)
    max_budget: float = 9.0  # budget units of the top rung
    eta: int = 3  # promotion factor: the best 1/eta go up with eta x the budget
    brackets: int = 1  # successive-halving / Hyperband brackets (asha: this many SH brackets' worth of units)
    total_budget: float | None = None  # cap in units (None: brackets decide)
    n0: int | None = None  # candidates of a bracket's first rung (None: eta ** s_max)
    unit_images: int = 2000  # training images per budget unit (beyond the training split: more epochs)
    val_images: int | None = None  # training images held out for validation (None: 10%, >= 2 per class)
    prefilter: int | None = None  # ask N proposals per rung-0 place set, keep the best by the training-free --fitness
    predictor: bool = False  # rank proposals by a gradient-boosted predictor of rung-0 accuracy


def _user_error(msg: str):
    from neurosynth.errors import UserError

    return UserError(msg)


MF_STRATEGIES = {"sh": ("dehb", "random", "ga", "evo"), "hyperband": ("dehb", "random", "ga"),
                 "asha": ("dehb", "random")}  # which strategies each multi-fidelity mode can drive
POOL_STRATEGIES = ("dehb", "random", "ga")  # strategies that may propose more than they keep (--prefilter/--predictor)


def resolve_defaults(cfg: SearchConfig) -> None:
    """Fill the defaults: ``fidelity`` (the one constant :data:`snn_nas.engine.fidelity.DEFAULT_FIDELITY`), and the
    options whose default depends on it (strategy, cost)."""
    if cfg.fidelity is None:
        from ..engine.fidelity import DEFAULT_FIDELITY

        cfg.fidelity = DEFAULT_FIDELITY
    if cfg.strategy is None:
        cfg.strategy = "ga" if cfg.fidelity == "none" else "dehb"
    if cfg.cost is None:
        cfg.cost = "params" if cfg.fidelity == "none" else "synops"


def check_fidelity(cfg: SearchConfig) -> None:
    """The multi-fidelity options (:class:`~snn_nas.engine.fidelity.RungSchedule` and the flags); ``UserError``."""
    from ..engine.fidelity import FIDELITIES, RungSchedule

    if cfg.fidelity not in FIDELITIES:
        raise _user_error(f"unknown --fidelity {cfg.fidelity!r}; choose from {list(FIDELITIES)}")
    if cfg.fidelity == "none":
        used = [f for f, v in (("--prefilter", cfg.prefilter), ("--predictor", cfg.predictor)) if v]
        if used:
            raise _user_error(f"{' and '.join(used)} rank the candidates of a multi-fidelity search; use them with "
                              "--fidelity sh|hyperband|asha (--fidelity none is the training-free search)")
        return
    try:
        RungSchedule(min_budget=float(cfg.min_budget), max_budget=float(cfg.max_budget), eta=cfg.eta,
                     unit_images=cfg.unit_images, n0=cfg.n0)
    except ValueError as e:
        raise _user_error(f"invalid budget options: {e} (--min-budget, --max-budget, --eta, --unit-images, --n0)") from e
    if cfg.brackets < 1:
        raise _user_error(f"--brackets must be >= 1 (got {cfg.brackets})")
    if cfg.total_budget is not None and not cfg.total_budget > 0:
        raise _user_error(f"--total-budget must be > 0 units (got {cfg.total_budget})")
    if cfg.prefilter is not None and cfg.prefilter < 1:
        raise _user_error(f"--prefilter must be >= 1 (got {cfg.prefilter})")
    if cfg.val_images is not None and cfg.val_images < 1:
        raise _user_error(f"--val-images must be >= 1 (got {cfg.val_images})")
    allowed = MF_STRATEGIES[cfg.fidelity]
    if cfg.strategy not in allowed:
        raise _user_error(f"--fidelity {cfg.fidelity} drives the strategies {list(allowed)}, not {cfg.strategy!r}")
    if (cfg.prefilter or cfg.predictor) and cfg.strategy not in POOL_STRATEGIES:
        raise _user_error(f"--prefilter/--predictor need a strategy that may propose more than it keeps "
                          f"({list(POOL_STRATEGIES)}), not {cfg.strategy!r}")


def check_config(cfg: SearchConfig) -> None:
    from ..strategies import STRATEGIES
    from .fitness import FITNESSES

    resolve_defaults(cfg)
    check_fidelity(cfg)

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
    from .space import make_space

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
            family = cfg.space.get("family", "mse")
            delayed = _synapse_delay(cfg.target) and family == "mse"
            if delayed:  # one step of delay per layer: keep >= 1/4 of the window for the output
                base["max_layers"] = _max_layers(cfg.T)
                need = _min_depth(cfg)
                if "max_layers" not in cfg.space and base["max_layers"] < need:
                    raise ValueError(
                        f"--T {cfg.T} is too short for --target {cfg.target}: with one step of synaptic delay per layer "
                        f"it allows {base['max_layers']} spiking layers and the smallest network of the space has "
                        f"{need}; use --T >= {_min_T(need)} (or leave --T unset: {default_T(cfg)} for this target)")
            # {"family": "chain", ...}: the conv-BN-spiking-pool / dense-recurrent family that holds the hand networks
            space = make_space({**base, **cfg.space})
        except (ValueError, TypeError) as e:
            raise _user_error(f"invalid search space: {e}") from e
        if delayed and cfg.fitness_T is not None and cfg.fitness_T < (space.cfg.max_layers or 0):
            raise _user_error(f"--fitness-T {cfg.fitness_T} is shorter than the deepest candidate "
                              f"({space.cfg.max_layers} layers): with one step of synaptic delay per layer the readout "
                              "would still be silent (every score 0); use --fitness-T >= max_layers or leave it unset")
        if cfg.fitness == "rdm" and cfg.reference == "labels" and cfg.batch < 2 * task.num_classes:
            raise _user_error(f"--batch {cfg.batch} is too small for the label RDM of {task.num_classes} classes: "
                              f"use --batch >= {2 * task.num_classes} so that every class has a same-class pair")
        if cfg.fidelity != "none":
            return _run_multifidelity(cfg, rd, task, space, command, t0)
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


def default_val_images(n_train: int, num_classes: int) -> int:
    """10% of the training split, at least 2 per class (and leaving at least as many for training)."""
    return min(max(n_train // 10, 2 * num_classes), n_train // 2)


def _run_multifidelity(cfg: SearchConfig, rd, task, space, command, t0: float) -> dict:
    """``--fidelity sh|hyperband|asha``: candidates trained at growing budgets (``mse_budget``), selected on a
    validation split carved from the training data; the test split is read only by ``--train-best``."""
    from neurosynth.io import write_json

    from ..engine.fidelity import RungSchedule
    from ..multifidelity import run_multifidelity
    from .data import Task, fitness_batch
    from .evaluator import BudgetTrainEvaluator, RDMFitnessEvaluator

    n_train = int(task.y_train.shape[0])
    val_images = cfg.val_images if cfg.val_images is not None else default_val_images(n_train, task.num_classes)
    if not 1 <= val_images < n_train:
        raise _user_error(f"--val-images {val_images} must be below the {n_train} training samples")
    try:
        evaluator = BudgetTrainEvaluator.from_task(task, val_images=val_images, split_seed=cfg.seed, lr=cfg.train_lr,
                                                   cost=cfg.cost)
    except ValueError as e:
        raise _user_error(str(e)) from e
    n_search_train = int(evaluator.y_train.shape[0])
    schedule = RungSchedule(min_budget=float(cfg.min_budget), max_budget=float(cfg.max_budget), eta=cfg.eta,
                            unit_images=cfg.unit_images, max_images=n_search_train, n0=cfg.n0)
    scorer = None
    if cfg.prefilter or cfg.predictor:  # training-free scores on a batch of the search-training part only
        part = Task(task.name, evaluator.x_train, evaluator.y_train, evaluator.x_val, evaluator.y_val, task.num_classes)
        x, y = fitness_batch(part, cfg.batch, cfg.seed)
        ref_kw, ref_spec, ref_state = _reference(cfg)
        scorer = RDMFitnessEvaluator(x, y, fitness=cfg.fitness, cost="params", fitness_kw=ref_kw,
                                     reference_spec=ref_spec, reference_state=ref_state, fitness_T=cfg.fitness_T)
    costs = [c.strip() for c in cfg.cost.split(",") if c.strip()]
    archive = open_search_archive(rd.path / "archive.sqlite", cfg.out)
    n_results = [0]

    def on_result(info):
        rd.keep_on_error = True
        n_results[0] += 1
        from neurosynth.rundir import kill_point

        kill_point(f"search:result-{n_results[0]}")

    try:
        try:
            summary = run_multifidelity(
                space, evaluator, archive, strategy=cfg.strategy, fidelity=cfg.fidelity, schedule=schedule,
                brackets=cfg.brackets, total_budget=cfg.total_budget, seed=cfg.seed, prefilter=cfg.prefilter,
                scorer=scorer, predictor=cfg.predictor, objectives=("accuracy", *costs), workers=cfg.workers,
                ray=cfg.ray, resume=cfg.resume, progress=cfg.progress, on_result=on_result,
                config={"dataset": cfg.dataset, "T": cfg.T, "encoding": cfg.encoding, "limit": cfg.limit,
                        "space_overrides": cfg.space, "dense": cfg.dense, "target": cfg.target, "lr": cfg.train_lr,
                        "val_images": val_images, "fitness": cfg.fitness if scorer is not None else None,
                        "batch": cfg.batch if scorer is not None else None})
        except ValueError as e:
            raise _user_error(str(e)) from e
        summary["search_seconds"] = time.perf_counter() - t0
        best = summary["best"]
        if best is None:
            raise _user_error(f"every candidate failed; see the 'error' column of {rd.path / 'archive.sqlite'} "
                              "(kept for inspection; delete it or search again with other settings)")
        records = archive.budget_records()
        write_json(rd.file("best.json"), best["spec"])
        top_ok = sorted((r for r in records if r["rung"] == best["rung"] and r["status"] == "ok"),
                        key=lambda r: (-r["fitness"], r["seq"]))
        write_json(rd.file("hall_of_fame.json"), [{"fitness": r["fitness"], "budget": r["budget"], "spec": r["spec"]}
                                                  for r in top_ok[:10]])
        plot_rungs(records, rd.plot_path("fitness"), schedule)
        top = [r for r in records if r["rung"] == best["rung"]]
        plot_pareto(top, rd.plot_path("pareto"), f"validation accuracy at rung {best['rung']}", costs)
        results = {"best_fitness": best["fitness"], "best_hash": best["hash"], "best_metrics": best["metrics"],
                   "best_budget": best["budget"], "evaluations": summary["evaluations"], "failed": summary["failed"],
                   "units": summary["units"], "evaluation_cpu_seconds": summary["evaluation_cpu_seconds"],
                   "search_seconds": summary["search_seconds"], "pareto_front": summary["front"],
                   "val_images": val_images, "search_train_images": n_search_train}
        if cfg.train_best > 0:
            results["best_model"] = train_best(best["spec"], task, cfg, rd.path / BEST_MODEL, command)
            results["best_model"]["dir"] = str(Path(cfg.out) / BEST_MODEL)
        summary["results"] = results
        summary["pareto_front"] = summary["front"]
        write_json(rd.file("summary.json"), summary)
        config = {k: v for k, v in asdict(cfg).items() if k not in ("out", "resume", "progress", "workers", "ray")}
        config.update({"space": space.describe(), "schedule": schedule.describe(), "evaluator": evaluator.describe(),
                       "val_images": val_images})
        rd.write_manifest(command, config, cfg.seed, results)
    finally:
        archive.close()
    return summary


def plot_rungs(records: list[dict], path: Path | None, schedule):
    """Validation accuracy of every evaluation in the order the results arrived, one colour per rung."""
    from neurosynth.plots import figure, finish

    fig, ax = figure(figsize=(6, 4))
    for r in range(schedule.n_rungs):
        pts = [(i, rec["fitness"]) for i, rec in enumerate(records) if rec["rung"] == r and rec["status"] == "ok"]
        if pts:
            b = schedule.budget(r)
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=12, alpha=0.6,
                       label=f"rung {r}: {b.epochs} x {b.images} images")
    ax.set_xlabel("evaluation (order of arrival)")
    ax.set_ylabel("validation accuracy")
    ax.set_title("multi-fidelity search")
    ax.legend(fontsize=8)
    return finish(fig, path)


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
    from neurosynth.workflow import (
        DEFAULT_VAL_FRACTION,
        TrainConfig,
        selection_record,
        split_indices,
        train_and_test,
    )

    from .data import TensorLoader
    from .evaluator import build_seeded, loss_for, seeded

    loss = loss_for(spec)
    model = build_seeded(spec, cfg.seed)
    # the epoch is chosen on validation samples carved from the training data; the test set is read once
    fit_idx, val_idx, split = split_indices(task.y_train.tolist(), DEFAULT_VAL_FRACTION, cfg.seed)
    fit_t, val_t = torch.as_tensor(fit_idx), torch.as_tensor(val_idx)
    train = TensorLoader(task.x_train[:, fit_t], task.y_train[fit_t], 64, True, cfg.seed)
    val = TensorLoader(task.x_train[:, val_t], task.y_train[val_t], 256, False, 0)
    test = TensorLoader(task.x_test, task.y_test, 256, False, 0)
    with seeded(cfg.seed):
        outcome = train_and_test(model, train, val, test,
                                 TrainConfig(epochs=cfg.train_best, lr=cfg.train_lr, loss=loss),
                                 progress=cfg.progress, log=None)
    ev, hist, secs = outcome.test, outcome.selection.history, outcome.train_seconds
    with RunDir.create(out, kind="train") as rd:
        if spec.get("target", "float") != "float":
            from .builder import lowered

            rd.write_json("searched_spec.json", spec)
            rd.save_model(model, lowered(spec))
        else:
            rd.save_model(model, spec)
        metrics = {"test_accuracy": ev["accuracy"], "test_loss": ev["loss"], "test_samples": ev["samples"],
                   "firing_rates": ev.get("firing_rates", {}), "train_seconds": secs, "epochs": cfg.train_best,
                   "loss": loss, "history": hist, "params": int(sum(p.numel() for p in model.parameters())),
                   "split": split.to_dict(), **selection_record(outcome)}
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
    ax.plot(hist["epoch"], hist["val_accuracy"], "s-", label="validation")
    ax.set_xlabel("epoch")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("accuracy")
    ax.legend()
    return finish(fig, path)
