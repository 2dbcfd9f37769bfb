"""Orchestration of a BioNAS search (used by ``neurosynth search bio``).

:func:`run_search` checks the :class:`BioSearchConfig`, loads the data, runs the search (``darts``: first-order
BioNAS-DARTS; ``eg``: BioNAS-EG, CMA-ES on the architecture logits; ``evo``: EvoSearch through the shared
engine) and writes into ``out``::

    manifest.json         command, config, seed, versions, hardware, git commit, results
    archive.sqlite        the engine's archive: one record per search epoch (darts/eg), one per genotype (evo)
    search.json           history, logits / hall of fame
    genotype.json         the derived genotype
    alpha_entropy.json    darts/eg: how far the architecture weights moved (:func:`.search.alpha_entropy_report`)
    plots/cell.png        op and rule on every edge; plots/search.png, plots/alpha_entropy.png
    best_model/           with train_best > 0: a run directory (``neurosynth.rundir.load_run`` rebuilds it)
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..engine.archive import open_search_archive
from ..engine.evaluator import Evaluator

MIN_ALPHA_STEPS = 50  # fewer DARTS architecture steps (Adam, lr 3e-2) leave alpha close to uniform
BEST_MODEL = "best_model"  # the trained winner's run directory, the same name as `search mse --train-best`
METHODS = ("darts", "eg", "evo")
FIDELITIES = ("none", "sh")  # evo: every genotype trained eval_epochs (none), or successive halving in epochs


@dataclass(frozen=True)
class BioSearchConfig:
    out: str
    method: str = "darts"  # darts | eg | evo
    space: str = "nb201"  # cell family: darts | nb201 (nb201 is CPU-sized)
    dataset: str = "digits"  # digits | fashion_mnist | cifar10
    data_root: str | None = None
    seed: int = 0
    epochs: int = 6  # search epochs (darts/eg)
    warmup: int = 2  # epochs of weight-only training before alpha moves
    arch_lr: float = 3e-2  # darts: Adam learning rate of the architecture logits
    C: int = 8  # initial channels
    layers: int | None = None  # search depth (None: 3 cells for darts, 1 cell per stage for nb201)
    eval_layers: int | None = None  # derived network depth (None: 5 for darts, 1 for nb201)
    rules: str = "fa,usf,brsf,frsf"  # comma-separated learning rules of the edges
    extra_ops: str = ""  # comma-separated local ops: hebbian_conv_3x3,pc_conv_3x3
    frame_rule: str = "bp"  # rule of stem/preprocess/classifier
    max_skip: int | None = 2  # max skip_connect edges per normal cell (None or < 0: no cap)
    batch_size: int = 64
    generations: int = 5  # evo
    population: int = 8  # evo
    eval_epochs: int = 2  # evo: training epochs per evaluated genotype (fidelity none)
    cma_generations: int = 2  # eg: CMA-ES generations per epoch
    limit_train: int | None = None
    train_best: int = 0  # > 0: train the derived genotype for this many epochs into out/best_model
    resume: bool = False  # evo: continue the search stored in out
    progress: bool = True
    # evo through the multi-fidelity engine (snn_nas.engine.fidelity): successive halving in epochs
    fidelity: str = "none"  # none | sh
    min_budget: int = 1  # epochs of the lowest rung
    max_budget: int = 3  # epochs of the top rung
    eta: int = 3

    @property
    def search_layers(self) -> int:
        return self.layers or (3 if self.space == "darts" else 1)

    @property
    def derived_layers(self) -> int:
        return self.eval_layers or (5 if self.space == "darts" else 1)

    @property
    def skip_cap(self) -> int | None:
        return None if self.max_skip is not None and self.max_skip < 0 else self.max_skip


def _parse_list(s: str) -> tuple[str, ...]:
    return tuple(x.strip().lower() for x in s.split(",") if x.strip())


def _stderr_warning(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


def check_config(cfg: BioSearchConfig):
    """Validate ``cfg`` before anything is written; returns the :class:`~.space.CellSpace`. Raises ``UserError``."""
    from neurosynth.errors import UserError

    from .space import CellSpace

    if cfg.method not in METHODS:
        raise UserError(f"unknown --method {cfg.method!r}; choose from {list(METHODS)}")
    try:
        space = CellSpace(cfg.space, _parse_list(cfg.rules), _parse_list(cfg.extra_ops))
    except ValueError as e:
        raise UserError(str(e)) from e
    for name in ("epochs", "C", "generations", "population", "eval_epochs", "batch_size"):
        if getattr(cfg, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    if cfg.train_best < 0:
        raise UserError("--train-best must be >= 0")
    if cfg.warmup < 0:
        raise UserError(f"--warmup must be >= 0, got {cfg.warmup}")
    if cfg.method in ("darts", "eg") and cfg.epochs <= cfg.warmup:
        raise UserError(f"--epochs {cfg.epochs} with --warmup {cfg.warmup}: the architecture logits (alpha) only "
                        f"move after the {cfg.warmup} warm-up epochs, so this search would never search; use "
                        f"--epochs > {cfg.warmup} or a smaller --warmup (e.g. --warmup 0)")
    if cfg.arch_lr <= 0:
        raise UserError(f"--arch-lr must be > 0, got {cfg.arch_lr}")
    if cfg.fidelity not in FIDELITIES:
        raise UserError(f"unknown --fidelity {cfg.fidelity!r}; choose from {list(FIDELITIES)}")
    if cfg.fidelity != "none":
        if cfg.method != "evo":
            raise UserError(f"--fidelity {cfg.fidelity} trains candidates at growing budgets: it drives --method evo; "
                            f"{cfg.method} searches a weight-sharing supernet, which has no per-candidate budget")
        from ..engine.fidelity import RungSchedule

        try:
            RungSchedule(min_budget=cfg.min_budget, max_budget=cfg.max_budget, eta=cfg.eta, by="epochs")
        except ValueError as e:
            raise UserError(f"invalid budget options: {e} (--min-budget, --max-budget, --eta)") from e
    return space


def run_search(cfg: BioSearchConfig, command: str | list[str] | None = None,
               warn: Callable[[str], None] = _stderr_warning) -> dict:
    """Run a BioNAS search into ``cfg.out``; returns ``{"search": <search.json>, "results": <manifest results>,
    "alpha": <alpha_entropy.json or None>}``. ``warn`` receives the warnings (default: ``warning: ...`` on
    stderr): too few architecture steps (before the search), alpha that did not move (after it)."""
    from neurosynth.rundir import RunDir
    from neurosynth.utils import seed_all

    from .data import load_image_data

    space = check_config(cfg)
    data = load_image_data(cfg.dataset, cfg.data_root, limit_train=cfg.limit_train)
    if cfg.method == "darts":
        steps = (cfg.epochs - cfg.warmup) * -(-(len(data.y_train) // 2) // cfg.batch_size)
        if steps < MIN_ALPHA_STEPS:
            warn(f"alpha gets only {steps} Adam steps ({cfg.epochs - cfg.warmup} epochs after the warm-up x "
                 f"{len(data.y_train) // 2} search-val images / batch {cfg.batch_size}); it will barely leave the "
                 f"uniform distribution. Use more --epochs, a larger --limit-train or a smaller --batch-size "
                 f"(>= {MIN_ALPHA_STEPS} steps)")
    # the method is part of the kind: a darts/eg search never replaces an (evo, resumable) search and vice versa
    with RunDir.create(cfg.out, kind=f"search bio {cfg.method}", resume=cfg.resume,
                       replace=cfg.method != "evo") as rd:
        config = {k: v for k, v in asdict(cfg).items() if k != "progress"}
        config.update({"layers": cfg.search_layers, "eval_layers": cfg.derived_layers,
                       "space_description": space.describe()})
        seed_all(cfg.seed)
        if cfg.method in ("darts", "eg"):
            result = _gradient_or_eg(cfg, space, data, rd)
        else:
            result = _evo(cfg, space, data, rd)
        genotype = result["genotype"]
        from .plot import plot_alpha_entropy, plot_genotype, plot_search_history

        report = None
        if cfg.method in ("darts", "eg"):
            from .search import BARELY_MOVED, alpha_entropy_report

            report = alpha_entropy_report(result.get("history", []), space, result.get("probabilities"))
            result["alpha_moved"] = report["alpha_moved"]
            result["alpha_verdict"] = report["verdict"]
            if report["verdict"] == "uniform":
                warn("the architecture weights ended at the uniform distribution (no edge's entropy fell "
                     "below log(choices)); the genotype is a tie-break, not a search result")
            elif report["verdict"] == "barely moved":
                warn(f"the architecture weights barely moved (every edge's entropy is still above "
                     f"{BARELY_MOVED:.0%} of the uniform entropy; lowest {report['min_normalised_entropy']:.3f}); "
                     "the genotype is close to a tie-break: search longer (more --epochs or --limit-train)")
            rd.write_json("alpha_entropy.json", report)
            plot_alpha_entropy(report, rd.plot_path("alpha_entropy"), f"BioNAS-{cfg.method} on {cfg.dataset}")
        rd.write_json("genotype.json", genotype)
        rd.write_json("search.json", result)

        plot_genotype(genotype, rd.plot_path("cell"), f"BioNAS-{cfg.method} on {cfg.dataset} ({cfg.space}, seed "
                                                      f"{cfg.seed})")
        if result.get("history") and "train_loss" in result["history"][0]:
            plot_search_history(result["history"], rd.plot_path("search"), f"BioNAS-{cfg.method} search")
        results = {"genotype": genotype}
        if report is not None:
            results.update({"alpha_moved": report["alpha_moved"], "alpha_verdict": report["verdict"],
                            "alpha_min_normalised_entropy": report["min_normalised_entropy"]})
        if cfg.train_best:
            results["best"] = train_best(cfg, genotype, data, rd.file(BEST_MODEL), command)
        rd.write_manifest(command, config, cfg.seed, results)
    return {"search": result, "results": results, "alpha": report}


def _gradient_or_eg(cfg: BioSearchConfig, space, data, rd) -> dict:
    from ..engine.archive import Archive
    from .search import darts_search, eg_search

    archive_path = rd.file("archive.sqlite")
    if archive_path.exists():
        archive_path.unlink()  # darts/eg searches are not resumable: start a fresh archive
    archive = Archive(archive_path)
    archive.set_meta("config", {"method": cfg.method, "space": cfg.space, "seed": cfg.seed})

    def on_epoch(log):  # the supernet's epoch, not an evaluation of the derived genotype
        archive.add_epoch(log["epoch"], log["genotype"], {k: v for k, v in log.items() if k != "genotype"})

    kw = dict(epochs=cfg.epochs, C=cfg.C, layers=cfg.search_layers, batch_size=cfg.batch_size, warmup=cfg.warmup,
              max_skip=cfg.skip_cap, seed=cfg.seed, frame_rule=cfg.frame_rule, progress=cfg.progress,
              callback=on_epoch)
    try:
        if cfg.method == "darts":
            return darts_search(space, data, a_lr=cfg.arch_lr, **kw)
        return eg_search(space, data, generations=cfg.cma_generations, **kw)
    finally:
        archive.close()


def _evo(cfg: BioSearchConfig, space, data, rd) -> dict:
    import numpy as np

    from neurosynth.errors import UserError

    from ..engine import Archive, Runner
    from ..strategies import STRATEGIES
    from .engine_space import BioNASEvaluator, BioNASSearchSpace

    sp = BioNASSearchSpace(cfg.space, space.rules, space.extra_ops, max_skip=cfg.skip_cap)
    strategy = STRATEGIES.get("evo")(sp, np.random.default_rng(cfg.seed))
    evaluator = BioNASEvaluator(cfg.dataset, epochs=cfg.eval_epochs, C=cfg.C, layers=cfg.search_layers,
                                batch_size=cfg.batch_size, frame_rule=cfg.frame_rule, data_root=cfg.data_root,
                                limit_train=cfg.limit_train, data=data)
    if cfg.fidelity != "none":
        return _evo_multifidelity(cfg, sp, strategy, evaluator, rd)
    try:
        archive = Archive(rd.file("archive.sqlite"))
        archive.get_meta("config")
    except (ValueError, sqlite3.DatabaseError) as e:
        from neurosynth.errors import disk_full_error

        if disk_full_error(e) is not None:  # the disk, not the archive
            raise disk_full_error(e) from e
        raise UserError(f"{Path(cfg.out) / 'archive.sqlite'} is not a usable search archive ({e}); delete "
                        f"{cfg.out} (or choose another --out) and search again without --resume") from e
    with archive:
        try:
            summary = Runner(sp, strategy, evaluator, archive, generations=cfg.generations,
                             population=cfg.population, seed=cfg.seed, progress=cfg.progress, resume=cfg.resume,
                             config={"method": "evo", "eval_epochs": cfg.eval_epochs},
                             on_generation=lambda _s: setattr(rd, "keep_on_error", True)).run()
        except ValueError as e:
            raise UserError(str(e)) from e
    best = summary["best"]
    if best is None:
        raise UserError("every evaluation failed; see archive.sqlite for the errors")
    return {"method": "evo", "genotype": best["spec"], "fitness": best["fitness"],
            "hall_of_fame": [{"fitness": f, "genotype": s} for f, s in strategy.hall_of_fame],
            "history": summary["history"], "evaluations": summary["evaluations"]}


class EpochBudgetBioNAS(Evaluator):
    """A :class:`~snn_nas.bionas.engine_space.BioNASEvaluator` at a budget in epochs (``Budget(epochs, 0)``): the
    rung machinery of the multi-fidelity engine for ``--method evo --fidelity sh``. Fitness = accuracy on the
    search-validation half of the training data, as without a budget."""

    name = "bionas_epochs"
    supports_budget = True

    def __init__(self, base):
        self.base = base

    def evaluate(self, spec: dict, seed: int, budget=None) -> dict:
        import copy

        ev = copy.copy(self.base)
        if budget is not None:
            ev.epochs = int(budget.epochs)
        return {**ev.evaluate(spec, seed), "epochs": int(ev.epochs)}

    def describe(self) -> dict:
        return {"name": self.name, "base": self.base.describe()}


def _evo_multifidelity(cfg: BioSearchConfig, sp, strategy, evaluator, rd) -> dict:
    """EvoSearch's generations as successive-halving brackets: ``population`` genotypes trained ``min_budget``
    epochs, the best ``1/eta`` (Pareto rank on search-validation accuracy and parameters) promoted with ``eta`` times
    the epochs, up to ``max_budget``; ``generations`` brackets; EvoSearch is told each bracket's genotypes with their
    result at the highest rung they reached."""
    from neurosynth.errors import UserError

    from ..engine.fidelity import MultiFidelityRunner, RungSchedule

    schedule = RungSchedule(min_budget=cfg.min_budget, max_budget=cfg.max_budget, eta=cfg.eta, by="epochs",
                            n0=cfg.population)
    with open_search_archive(rd.path / "archive.sqlite", cfg.out) as archive:
        try:
            summary = MultiFidelityRunner(
                sp, strategy, EpochBudgetBioNAS(evaluator), archive, fidelity=cfg.fidelity,
                schedule=schedule, brackets=cfg.generations, seed=cfg.seed, objectives=("accuracy", "params"),
                resume=cfg.resume, progress=cfg.progress, config={"method": "evo"},
                on_result=lambda _i: setattr(rd, "keep_on_error", True)).run()
        except ValueError as e:
            raise UserError(str(e)) from e
    best = summary["best"]
    if best is None:
        raise UserError("every evaluation failed; see archive.sqlite for the errors")
    return {"method": "evo", "fidelity": cfg.fidelity, "genotype": best["spec"], "fitness": best["fitness"],
            "budget": best["budget"], "front": summary["front"], "rungs": summary["rungs"],
            "hall_of_fame": [{"fitness": f, "genotype": s} for f, s in strategy.hall_of_fame],
            "history": [], "evaluations": summary["evaluations"], "units": summary["units"]}


def train_best(cfg: BioSearchConfig, genotype: dict, data, out: Path, command=None) -> dict:
    """Train ``genotype`` (``cfg.derived_layers`` deep) for ``cfg.train_best`` epochs and write a run directory
    at ``out`` (model.pt, arch.json, metrics.json, manifest.json, plots/training.png)."""
    import torch

    from neurosynth.rules import alignment_angles
    from neurosynth.rundir import RunDir

    from .model import build_model, make_spec
    from .plot import plot_curves
    from .train import train_model

    torch.manual_seed(cfg.seed)
    spec = make_spec(genotype, C=cfg.C, layers=cfg.derived_layers, num_classes=data.num_classes,
                     input_shape=data.input_shape, frame_rule=cfg.frame_rule)
    model = build_model(spec)
    hist = train_model(model, data.x_train, data.y_train, data.x_test, data.y_test, epochs=cfg.train_best,
                       batch_size=cfg.batch_size, seed=cfg.seed, progress=cfg.progress, desc="train best")
    with RunDir.create(out, kind="train") as best:
        best.save_model(model, spec)
        metrics = {"test_accuracy": hist["test_accuracy"][-1], "train_accuracy": hist["train_accuracy"][-1],
                   "history": hist, "alignment_angles": alignment_angles(model),
                   "params": sum(p.numel() for p in model.parameters())}
        best.write_json("metrics.json", metrics)
        plot_curves({"test accuracy": [hist["test_accuracy"]]}, best.plot_path("training"), "test accuracy",
                    "derived BioNAS model")
        best.write_manifest(command, {"genotype": genotype, "epochs": cfg.train_best, "spec": spec}, cfg.seed,
                            {"test_accuracy": metrics["test_accuracy"]})
    return {"test_accuracy": metrics["test_accuracy"], "run_dir": str(Path(cfg.out) / BEST_MODEL),
            "params": metrics["params"]}
