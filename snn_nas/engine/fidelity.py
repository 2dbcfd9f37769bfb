"""Fidelity as a budget: successive halving, Hyperband and ASHA over the shared engine (multi-fidelity search).

A candidate is trained at a **budget** -- ``Budget(epochs, images)``: ``epochs`` passes over the first ``images``
images of the evaluator's search-training split -- and scored by its *validation* accuracy. Cheap budgets screen
many candidates; the best ``1/eta`` of a rung are **promoted** to the next rung, ``eta`` times the budget (Li et al.,
JMLR 2018; ASHA: Li et al., MLSys 2020). Every result is stored per ``(candidate hash, budget)`` in the SQLite
archive (:meth:`~snn_nas.engine.archive.Archive.add_at_budget`), so nothing is ever trained twice at one budget.

Budgets are written in **units** on one scale (:class:`RungSchedule`): ``units = presentations / unit_images``.
The documented mapping :func:`units_to_budget` spends a budget on *images first, then epochs*: ``u`` units are one
epoch over ``u * unit_images`` images while that fits the split (``max_images``), then more epochs over the whole
split. With ``unit_images=2000``, ``max_images=18000``: 1 unit = 1 epoch x 2,000 images, 3 = 1 x 6,000,
9 = 1 x 18,000, 27 = 3 x 18,000. A promoted candidate is trained again from its (seeded) initial weights at the
larger budget: no checkpoints, so a rung's accuracy depends only on (candidate, budget, seed).

Rungs (``eta = 3``, ``min_budget = 1``, ``max_budget = 9`` units): rung budgets ``1, 3, 9``; ``s_max = 2``.

* ``fidelity="sh"``: each bracket is successive halving from rung 0: ``n0`` candidates (default ``eta**s_max``),
  then ``n0/eta``, ... at the top rung (``9 -> 3 -> 1`` by default; ``n0=27``: ``27 -> 9 -> 3``).
* ``fidelity="hyperband"``: brackets ``s = s_max, ..., 0`` in turn; bracket ``s`` starts
  ``ceil((s_max+1)/(s+1) * eta**s)`` candidates at rung ``s_max - s`` (Hyperband's table; scaled by
  ``n0 / eta**s_max``).
* ``fidelity="asha"``: asynchronous successive halving: whenever a worker is free, promote the best not yet
  promoted candidate of the highest rung whose top ``floor(n/eta)`` holds one, else start a new candidate at
  rung 0; stops when ``total_budget`` units have been dispatched (default: ``brackets`` SH brackets' worth).
* ``fidelity="none"``: every candidate trained at ``max_budget`` (plain sampling or evolution at one fidelity).

**Promotion and selection by Pareto rank.** ``objectives=("accuracy", "synops")`` ranks a rung by non-dominated
rank on (validation accuracy, SynOps), crowding distance breaking ties (:mod:`snn_nas.engine.pareto`, pymoo's
code, the same as NSGA-II); any metric the evaluator returns can be a cost (``params``, ``loihi_cores``...).
``objectives=("accuracy",)`` is plain single-objective successive halving.

**Where candidates come from.** The strategy's ``ask`` fills rung 0 (Hyperband: a bracket's first rung). The
``dehb`` strategy (:mod:`snn_nas.strategies.dehb`) proposes mutants and crossovers of promoted candidates (DEHB-like
evolution inside the rungs); ``random`` samples (random + successive halving). Synchronous modes tell the strategy,
after each bracket, the candidates it proposed with their result at the highest rung they reached (``rung`` in
the result); ASHA tells every result as it arrives, and takes only strategies with ``asynchronous = True``.

**Training-free scores.** ``prefilter=N``: ask ``N`` candidates for every ``n`` rung-0 places, score each with the
``scorer`` (a budget-less evaluator, e.g. the RDM fitness; its metrics are cached in the archive's ``features``
table) and keep the ``n`` best-scored. ``predictor=True``: once :data:`PREDICTOR_MIN` rung-0 results exist, a
gradient-boosted ranker (scikit-learn's ``HistGradientBoostingRegressor``) fitted on the features of the evaluated
candidates -- the scorer's scores and costs, and :func:`spec_features` of the spec -- predicts rung-0 accuracy
and keeps the ``n`` best of ``N`` (or ``PREDICTOR_POOL * n``) proposals.

**Resume.** The scheduler is deterministic given the run seed and the order in which results arrived; the
archive's ``budget_evaluations`` rowid records that order. ``resume=True`` re-runs the scheduler from the start,
serving results from the archive in that order (nothing archived is trained again), until the archive is
exhausted; the jobs then in flight are the ones a ``kill -9`` interrupted, and they are evaluated live. With one
worker (and in the synchronous modes with any number of workers) the resumed archive equals an uninterrupted run.
With several ASHA workers the completion order can differ between runs; if the replay meets a result it would not
have asked for yet, the rest of the archive is loaded as it is (every finished evaluation kept, none repeated) and
the search goes on from there.

Entry points: :class:`MultiFidelityRunner` (takes a strategy instance) here, and
:func:`snn_nas.multifidelity.run_multifidelity` (strategy by name) for applications and benchmarks.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .archive import Archive
from .evaluator import Evaluator, evaluate_safely
from .pareto import pareto_indices, pareto_order
from .space import SearchSpace, derive_seed, spec_hash
from .strategy import Strategy

log = logging.getLogger("snn_nas.engine.fidelity")

FIDELITIES = ("none", "sh", "hyperband", "asha")
# the CLI's default (`search mse --fidelity`), chosen by the paired evidence of benchmarks/search_vs_random.py
# (docs/msenas.md): over 10 paired seeds the multi-fidelity search beat the training-free RDM mode ("none") by
# +8.7 (Fashion-MNIST) and +8.9 points (spoken digits) and tied random sampling and random + successive halving
DEFAULT_FIDELITY = "sh"
DEFAULT_ETA = 3
PREDICTOR_MIN = 8  # rung-0 results before the predictor ranks proposals
PREDICTOR_POOL = 3  # proposals per rung-0 place when the predictor ranks them and no --prefilter is given
MAX_REPEATED_PROPOSALS = 1000  # asha stops when this many proposals in a row were already evaluated (a tiny space)


# ---------------------------------------------------------------------------------------------------------
# budgets and the rung schedule
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class Budget:
    """A training budget: ``epochs`` passes over the first ``images`` images of the search-training split
    (``images=0``: all of them). Ordered by ``(epochs, images)``; compare costs with :attr:`presentations`."""

    epochs: int
    images: int

    def __post_init__(self):
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"Budget.epochs must be an integer >= 1, got {self.epochs!r}")
        if isinstance(self.images, bool) or not isinstance(self.images, int) or self.images < 0:
            raise ValueError(f"Budget.images must be an integer >= 0 (0 = every image), got {self.images!r}")

    @property
    def presentations(self) -> int:
        """Images shown during training, ``epochs * images`` (the cost of the budget)."""
        return self.epochs * self.images

    def as_dict(self) -> dict:
        return {"epochs": self.epochs, "images": self.images}

    @classmethod
    def from_dict(cls, d: dict) -> Budget:
        return cls(int(d["epochs"]), int(d["images"]))

    def __str__(self) -> str:
        return f"{self.epochs} epoch{'s' if self.epochs != 1 else ''} x {self.images or 'all'} images"


def units_to_budget(units: float, unit_images: int, max_images: int | None = None) -> Budget:
    """The budget of ``units`` (1 unit = ``unit_images`` image presentations): images first, then epochs.

    ``presentations = round(units * unit_images)``; ``images = min(presentations, max_images)``;
    ``epochs = max(1, round(presentations / images))``."""
    if units <= 0 or unit_images < 1:
        raise ValueError(f"units must be > 0 and unit_images >= 1, got {units} and {unit_images}")
    pres = max(1, int(round(units * unit_images)))
    images = pres if max_images is None else max(1, min(pres, int(max_images)))
    return Budget(max(1, int(round(pres / images))), images)


@dataclass(frozen=True)
class RungSchedule:
    """The rungs of a multi-fidelity search, in budget units (see the module docstring).

    ``min_budget``/``max_budget``: the smallest and largest budget in units; the rungs are
    ``max_budget / eta**k`` for ``k = s_max, ..., 0`` with ``s_max = floor(log_eta(max/min))`` (so the top rung is
    exactly ``max_budget`` and rung 0 is at least ``min_budget``). ``eta``: the promotion factor (the best ``1/eta``
    go up, with ``eta`` times the budget). ``n0``: candidates of a successive-halving bracket's rung 0 (default
    ``eta**s_max``). ``unit_images``/``max_images``: the units-to-budget mapping (:func:`units_to_budget`).
    ``by="epochs"``: a unit is one epoch over the whole training split instead (``Budget(round(units), 0)``; the rung
    budgets must then be whole numbers), for evaluators that cannot subset their data (BioNAS).
    """

    min_budget: float = 1.0
    max_budget: float = 9.0
    eta: int = DEFAULT_ETA
    unit_images: int = 2000
    max_images: int | None = None
    n0: int | None = None
    by: str = "images"

    def __post_init__(self):
        if isinstance(self.eta, bool) or not isinstance(self.eta, int) or self.eta < 2:
            raise ValueError(f"eta must be an integer >= 2, got {self.eta!r}")
        if not (math.isfinite(self.min_budget) and self.min_budget > 0):
            raise ValueError(f"min_budget must be > 0, got {self.min_budget!r}")
        if not (math.isfinite(self.max_budget) and self.max_budget >= self.min_budget):
            raise ValueError(f"max_budget must be >= min_budget ({self.min_budget}), got {self.max_budget!r}")
        if self.unit_images < 1:
            raise ValueError(f"unit_images must be >= 1, got {self.unit_images}")
        if self.max_images is not None and self.max_images < 1:
            raise ValueError(f"max_images must be >= 1 or None, got {self.max_images}")
        if self.n0 is not None and self.n0 < 1:
            raise ValueError(f"n0 must be >= 1, got {self.n0}")
        if self.by not in ("images", "epochs"):
            raise ValueError(f"by must be 'images' or 'epochs', got {self.by!r}")
        if self.by == "epochs":
            bad = [u for u in (self.rung_units(r) for r in range(self.n_rungs)) if abs(u - round(u)) > 1e-9]
            if bad:
                raise ValueError(f"with budgets in epochs every rung must be a whole number of epochs; the rungs of "
                                 f"min_budget {self.min_budget}, max_budget {self.max_budget}, eta {self.eta} are "
                                 f"{[self.rung_units(r) for r in range(self.n_rungs)]}")

    @property
    def s_max(self) -> int:
        return int(math.floor(math.log(self.max_budget / self.min_budget) / math.log(self.eta) + 1e-9))

    @property
    def n_rungs(self) -> int:
        return self.s_max + 1

    def rung_units(self, rung: int) -> float:
        if not 0 <= rung <= self.s_max:
            raise ValueError(f"rung must lie in [0, {self.s_max}], got {rung}")
        return self.max_budget / self.eta ** (self.s_max - rung)

    def budget(self, rung: int) -> Budget:
        if self.by == "epochs":
            return Budget(max(1, int(round(self.rung_units(rung)))), 0)
        return units_to_budget(self.rung_units(rung), self.unit_images, self.max_images)

    @property
    def first_rung_size(self) -> int:
        return int(self.n0) if self.n0 is not None else self.eta ** self.s_max

    def bracket(self, s: int | None = None) -> list[tuple[int, int]]:
        """``[(candidates, rung), ...]`` of the Hyperband bracket with ``s`` promotions (``None``: ``s_max``, the
        successive-halving bracket that starts at rung 0)."""
        s = self.s_max if s is None else int(s)
        if not 0 <= s <= self.s_max:
            raise ValueError(f"bracket s must lie in [0, {self.s_max}], got {s}")
        scale = self.first_rung_size / self.eta ** self.s_max
        n = max(1, int(math.ceil(scale * (self.s_max + 1) / (s + 1) * self.eta ** s - 1e-9)))
        return [(max(1, int(n // self.eta ** i)), self.s_max - s + i) for i in range(s + 1)]

    def bracket_units(self, s: int | None = None) -> float:
        return sum(n * self.rung_units(r) for n, r in self.bracket(s))

    def describe(self) -> dict:
        d = asdict(self)
        d.update({"s_max": self.s_max, "rungs": [{"rung": r, "units": self.rung_units(r),
                                                  **self.budget(r).as_dict()} for r in range(self.n_rungs)],
                  "sh_bracket": self.bracket(), "sh_bracket_units": self.bracket_units()})
        return d


# ---------------------------------------------------------------------------------------------------------
# features of a spec (for the predictor)
# ---------------------------------------------------------------------------------------------------------
def spec_features(spec: Any) -> dict[str, float]:
    """A fixed-name numeric encoding of any JSON spec: for every path (list indices written ``*``) the sum, the
    maximum and the count of its numbers (booleans as 0/1), the total length of its lists, and the count of every
    ``path=string`` value. Specs of different depth get the same names (absent ones are missing, not zero)."""
    sums: dict[str, float] = {}
    maxs: dict[str, float] = {}
    counts: dict[str, float] = {}

    def walk(x, path):
        if isinstance(x, dict):
            for k in sorted(x):
                walk(x[k], f"{path}.{k}" if path else str(k))
        elif isinstance(x, list):
            counts[f"{path}:len"] = counts.get(f"{path}:len", 0.0) + len(x)
            for v in x:
                walk(v, f"{path}.*")
        elif isinstance(x, (bool, int, float)) and not (isinstance(x, float) and not math.isfinite(x)):
            v = float(x)
            sums[f"{path}:sum"] = sums.get(f"{path}:sum", 0.0) + v
            maxs[f"{path}:max"] = max(maxs.get(f"{path}:max", -math.inf), v)
            counts[f"{path}:n"] = counts.get(f"{path}:n", 0.0) + 1
        elif isinstance(x, str):
            key = f"{path}={x}"
            counts[key] = counts.get(key, 0.0) + 1

    walk(spec, "")
    return {**sums, **maxs, **counts}


def _flat_numbers(d: dict, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k in sorted(d):
        v = d[k]
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat_numbers(v, name + "."))
        elif isinstance(v, (bool, int, float)) and math.isfinite(float(v)):
            out[name] = float(v)
    return out


class RungPredictor:
    """Gradient-boosted regression of rung-0 validation accuracy on candidate features (scikit-learn's
    ``HistGradientBoostingRegressor``, ``random_state=0``: deterministic). Missing features are NaN, which the
    model handles natively."""

    def __init__(self, min_train: int = PREDICTOR_MIN):
        self.min_train = int(min_train)
        self.model = None
        self.names: list[str] = []
        self.n_train = 0

    def fit(self, feats: list[dict[str, float]], y: list[float]) -> bool:
        """Fit on ``feats`` and targets ``y``; returns False (and predicts nothing) below ``min_train`` samples."""
        if len(y) < self.min_train:
            self.model = None
            return False
        from sklearn.ensemble import HistGradientBoostingRegressor

        self.names = sorted({k for f in feats for k in f})
        X = self._matrix(feats)
        n = len(y)
        self.model = HistGradientBoostingRegressor(max_iter=100, learning_rate=0.1, min_samples_leaf=max(2, n // 10),
                                                   random_state=0, early_stopping=False)
        self.model.fit(X, np.asarray(y, dtype=float))
        self.n_train = n
        return True

    def _matrix(self, feats):
        return np.array([[f.get(k, np.nan) for k in self.names] for f in feats], dtype=float)

    @property
    def ready(self) -> bool:
        return self.model is not None

    def predict(self, feats: list[dict[str, float]]) -> np.ndarray:
        return self.model.predict(self._matrix(feats))


# ---------------------------------------------------------------------------------------------------------
# the runner
# ---------------------------------------------------------------------------------------------------------
@dataclass
class _Job:
    key: int  # dispatch order
    spec: dict
    hash: str
    rung: int
    bracket: int
    budget: Budget
    seed: int


class _ReplayDiverged(Exception):
    pass


class MultiFidelityRunner:
    """Run a multi-fidelity search (see the module docstring): ``strategy`` proposes, ``evaluator`` trains at a
    budget, ``archive`` records every ``(candidate, budget)``.

    ``brackets``: synchronous modes run this many brackets (``none``: this many batches of ``n0`` candidates at
    the top budget); ``total_budget`` (units) caps the search: no bracket (or ASHA job) starts that would pass it;
    ASHA's default is ``brackets`` SH brackets' worth. ``workers``/``ray``: as :class:`~snn_nas.engine.Runner`
    (ASHA keeps ``max(workers, 1)`` jobs in flight). ``on_result(info)`` is called after every archived result.
    """

    def __init__(self, space: SearchSpace, strategy: Strategy, evaluator: Evaluator, archive: Archive, *,
                 fidelity: str = "sh", schedule: RungSchedule | None = None, brackets: int = 1,
                 total_budget: float | None = None, seed: int = 0, objectives: tuple[str, ...] | list[str] = ("accuracy",),
                 prefilter: int | None = None, scorer: Evaluator | None = None, predictor: bool = False,
                 workers: int = 0, ray: str | None = None, resume: bool = False, progress: bool = True,
                 config: dict | None = None, on_result: Callable[[dict], None] | None = None):
        if fidelity not in FIDELITIES:
            raise ValueError(f"unknown fidelity {fidelity!r}; choose from {list(FIDELITIES)}")
        if not getattr(evaluator, "supports_budget", False):
            raise ValueError(f"evaluator '{evaluator.name}' does not train at a budget (supports_budget is False); "
                             "a multi-fidelity search needs one that does")
        if fidelity == "asha" and not getattr(strategy, "asynchronous", False):
            raise ValueError(f"fidelity 'asha' tells the strategy one result at a time; strategy '{strategy.name}' "
                             "is generational: use dehb or random, or a synchronous fidelity (sh, hyperband)")
        objectives = tuple(objectives)
        if not objectives or objectives[0] != "accuracy" or len(set(objectives)) != len(objectives):
            raise ValueError(f"objectives must start with 'accuracy', then distinct cost metrics; got {objectives}")
        if brackets < 1:
            raise ValueError(f"brackets must be >= 1, got {brackets}")
        if total_budget is not None and not total_budget > 0:
            raise ValueError(f"total_budget must be > 0 units, got {total_budget}")
        if prefilter is not None:
            if prefilter < 1:
                raise ValueError(f"prefilter must be >= 1, got {prefilter}")
            if scorer is None:
                raise ValueError("prefilter needs a scorer (a training-free evaluator whose fitness ranks proposals)")
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.space, self.strategy, self.evaluator, self.archive = space, strategy, evaluator, archive
        self.fidelity, self.schedule = fidelity, schedule or RungSchedule()
        self.brackets, self.total_budget, self.seed = int(brackets), total_budget, int(seed)
        self.objectives, self.prefilter, self.scorer = objectives, prefilter, scorer
        self.predictor = RungPredictor() if predictor else None
        self.workers, self.ray, self.resume, self.progress = int(workers), ray, bool(resume), progress
        self.on_result = on_result
        self.config = {"space": space.name, "strategy": strategy.name, "evaluator": evaluator.name,
                       "fidelity": fidelity, "schedule": asdict(self.schedule), "brackets": self.brackets,
                       "total_budget": total_budget, "seed": self.seed, "objectives": list(objectives),
                       "prefilter": prefilter, "predictor": bool(predictor),
                       "scorer": None if scorer is None else scorer.name, **(config or {})}
        if fidelity == "asha":
            self.config["concurrency"] = self.concurrency

    @property
    def concurrency(self) -> int:
        return max(1, self.workers)

    # ---- resume -------------------------------------------------------------------------------------
    def _check_resume(self) -> list[dict]:
        """The archived results to replay (empty for a fresh run)."""
        stored = self.archive.get_meta("config")
        if stored is None:
            if len(self.archive) or self.archive.budget_records():
                raise ValueError(f"{self.archive.path} has evaluations but no run config; it is not from this tool")
            self.archive.set_meta("config", self.config)
            return []
        if not self.resume:
            raise ValueError(f"{self.archive.path} already holds a search; pass resume=True (--resume) to continue it, "
                             "or choose another output directory")
        for k, v in self.config.items():
            if k in ("brackets", "total_budget", "concurrency"):
                continue  # a resume may extend the budget or change the number of workers
            if stored.get(k) != v:
                raise ValueError(f"cannot resume: '{k}' was {stored.get(k)!r} in the stored run, now {v!r}; "
                                 "use the same settings or another output directory")
        self.archive.set_meta("config", self.config)
        return self.archive.budget_records()

    # ---- objectives ---------------------------------------------------------------------------------
    def _objective_vector(self, rec: dict) -> list[float]:
        if rec["status"] != "ok" or not math.isfinite(rec.get("fitness", math.nan)):
            return [math.inf] * len(self.objectives)
        out = [-float(rec["fitness"])]
        m = rec.get("metrics") or {}
        for name in self.objectives[1:]:
            if name not in m:
                raise ValueError(f"objective '{name}' is not a metric of evaluator '{self.evaluator.name}' (it "
                                 f"returns {sorted(m)}); choose objectives among them")
            v = float(m[name])
            out.append(v if math.isfinite(v) else math.inf)
        return out

    def _result_for_strategy(self, rec: dict, rung: int) -> dict:
        ok = rec["status"] == "ok"
        return {"fitness": rec["fitness"] if ok else math.nan, **(rec.get("metrics") or {}),
                "objectives": self._objective_vector(rec), "rung": int(rung),
                "budget": self.schedule.budget(rung).as_dict()}

    # ---- executing jobs -----------------------------------------------------------------------------
    def _make_job(self, spec: dict, rung: int, bracket: int) -> _Job:
        h = spec_hash(spec)
        self._n_jobs += 1
        return _Job(self._n_jobs, spec, h, rung, bracket, self.schedule.budget(rung), derive_seed(self.seed, h))

    def _known(self, h: str, budget: Budget) -> dict | None:
        return self._done.get((h, budget))

    def _dispatch(self, job: _Job) -> None:
        self._inflight[job.key] = job
        self._inflight_keys.add((job.hash, job.budget))
        self._units += self.schedule.rung_units(job.rung)
        if self._live:
            self._submit(job)

    def _submit(self, job: _Job) -> None:
        if self._ex is None:
            from .runner import make_executor

            self._ex = make_executor(self.evaluator, workers=self.workers, ray=self.ray)
        self._ex.submit(job.key, job.spec, job.seed, job.budget)

    def _go_live(self) -> None:
        if not self._live:
            self._live = True
            for job in sorted(self._inflight.values(), key=lambda j: j.key):
                self._submit(job)

    def _next_completion(self) -> tuple[_Job, dict]:
        """The next finished job: from the replay log while it lasts, then from the executor."""
        while self._replay:
            rec = self._replay[0]
            key = (rec["hash"], Budget.from_dict(rec["budget"]))
            job = next((j for j in self._inflight.values() if (j.hash, j.budget) == key), None)
            if job is None:
                raise _ReplayDiverged(key)
            self._replay.popleft()
            self._n_replayed += 1
            return self._finish(job, rec, archived=True)
        self._go_live()
        key, rec = self._ex.next_done()
        job = self._inflight[key]
        return self._finish(job, rec, archived=False)

    def _finish(self, job: _Job, rec: dict, *, archived: bool) -> tuple[_Job, dict]:
        del self._inflight[job.key]
        self._inflight_keys.discard((job.hash, job.budget))
        if not archived:
            self.archive.add_at_budget(job.spec, rec, job.budget, rung=job.rung, bracket=job.bracket, seed=job.seed)
            self._n_new += 1
        self._done[(job.hash, job.budget)] = rec
        self._bar.update(1)
        if self.on_result is not None and not archived:
            self.on_result({"hash": job.hash, "rung": job.rung, "bracket": job.bracket, "status": rec["status"],
                            "fitness": rec.get("fitness"), "evaluations": len(self._done)})
        return job, rec

    def _absorb_rest_of_replay(self) -> None:
        """The replay met a result out of the order this run would ask for (several asynchronous workers): keep
        every archived result as it is, and go on from there."""
        log.info("resume: %d archived results are loaded as they are (asynchronous completion order differed)",
                 len(self._replay))
        while self._replay:
            rec = self._replay.popleft()
            b = Budget.from_dict(rec["budget"])
            self._done[(rec["hash"], b)] = rec
            self._n_replayed += 1
            rung = int(rec["rung"])
            job = next((j for j in self._inflight.values() if (j.hash, j.budget) == (rec["hash"], b)), None)
            if job is not None:  # dispatched by the replay and finished before the kill: not run again
                del self._inflight[job.key]
                self._inflight_keys.discard((job.hash, job.budget))
            elif 0 <= rung < self.schedule.n_rungs:
                self._units += self.schedule.rung_units(rung)
            self._asha_record(rec["hash"], rec["spec"], rung, rec)
            self.strategy.tell([rec["spec"]], [self._result_for_strategy(rec, rung)])

    def _evaluate_all(self, specs: list[dict], rung: int, bracket: int) -> list[dict]:
        """Results of ``specs`` at ``rung`` (in the order of ``specs``): archived ones are reused, the others are
        dispatched together and awaited (a synchronous rung)."""
        jobs: dict[tuple[str, Budget], _Job] = {}
        budget = self.schedule.budget(rung)
        for s in specs:
            h = spec_hash(s)
            if self._known(h, budget) is None and (h, budget) not in jobs:
                jobs[(h, budget)] = self._make_job(s, rung, bracket)
                self._dispatch(jobs[(h, budget)])
            elif (h, budget) not in jobs:
                self._n_cached += 1
        while any(k in self._inflight_keys for k in jobs):
            self._next_completion()
        return [self._done[(spec_hash(s), budget)] for s in specs]

    # ---- proposals: strategy + prefilter + predictor --------------------------------------------------
    def _features(self, spec: dict) -> dict[str, float]:
        h = spec_hash(spec)
        feats = spec_features(spec)
        if self.scorer is not None:
            cached = self.archive.get_features(h)
            if cached is None:
                rec = evaluate_safely(self.scorer, spec, derive_seed(self.seed, h))
                cached = {"score": rec["fitness"] if rec["status"] == "ok" else None,
                          **_flat_numbers(rec.get("metrics") or {}, "scorer.")}
                self.archive.set_features(spec, cached)
            feats.update({k: float(v) for k, v in cached.items() if v is not None})
        return feats

    def _fit_predictor(self) -> bool:
        b0 = self.schedule.budget(0)
        rows = [(k[0], r) for k, r in self._done.items() if k[1] == b0 and r["status"] == "ok"]
        rows.sort(key=lambda t: t[0])  # a fixed order: the fit does not depend on the arrival order
        feats = [self._features(self._specs[h]) for h, _ in rows]
        return self.predictor.fit(feats, [float(r["fitness"]) for _, r in rows])

    def _propose(self, n: int) -> list[dict]:
        """``n`` new candidates for rung 0 (or a Hyperband bracket's first rung)."""
        pool = n
        use_pred = self.predictor is not None and self._fit_predictor()
        if self.prefilter is not None:
            pool = max(int(self.prefilter), n)
        elif use_pred:
            pool = PREDICTOR_POOL * n
        specs = [self.space.validate(s) for s in self.strategy.ask(pool)]
        for s in specs:
            self._specs.setdefault(spec_hash(s), s)
        if pool == n:
            return specs
        feats = [self._features(s) for s in specs]
        if use_pred:
            key = -self.predictor.predict(feats)
            self._n_predicted += len(specs)
        else:
            key = np.array([-f.get("score", -math.inf) for f in feats])
            self._n_prefiltered += len(specs)
        order = sorted(range(len(specs)), key=lambda i: (key[i], i))
        return [specs[i] for i in order[:n]]

    # ---- synchronous modes -----------------------------------------------------------------------------
    def _bracket_s(self, b: int) -> int | None:
        if self.fidelity == "hyperband":
            return self.schedule.s_max - (b % self.schedule.n_rungs)
        return None

    def _bracket_plan(self, b: int) -> list[tuple[int, int]]:
        if self.fidelity == "none":
            return [(self.schedule.first_rung_size, self.schedule.s_max)]
        return self.schedule.bracket(self._bracket_s(b))

    def _plan_units(self, plan) -> float:
        return sum(n * self.schedule.rung_units(r) for n, r in plan)

    def _run_sync(self) -> None:
        for b in range(self.brackets):
            plan = self._bracket_plan(b)
            if self.total_budget is not None and b > 0 and self._units + self._plan_units(plan) > self.total_budget + 1e-9:
                break
            asked = self._propose(plan[0][0])
            cands = list({spec_hash(x): x for x in asked}.values())  # a repeated proposal is one candidate
            best_of: dict[str, tuple[int, dict]] = {}
            for k, (_n, rung) in enumerate(plan):
                results = self._evaluate_all(cands, rung, b)
                for s, r in zip(cands, results):
                    best_of[spec_hash(s)] = (rung, r)
                self._rung_log.append({"bracket": b, "rung": rung, "candidates": len(cands),
                                       "units": self.schedule.rung_units(rung)})
                if k + 1 == len(plan):
                    break
                F = [self._objective_vector(r) for r in results]
                order = pareto_order(F)
                # never promote a failed candidate; keep the planned size when enough are ok
                ok = [i for i in order if all(math.isfinite(v) for v in F[i])]
                cands = [cands[i] for i in ok[: plan[k + 1][0]]]
                if not cands:
                    break
            tell = [self._result_for_strategy(best_of[spec_hash(s)][1], best_of[spec_hash(s)][0]) for s in asked]
            self.strategy.tell(asked, tell)
            self._brackets_done = b + 1

    # ---- asynchronous successive halving ------------------------------------------------------------------
    def _asha_record(self, h: str, spec: dict, rung: int, rec: dict) -> None:
        self._specs.setdefault(h, spec)
        members = self._rung_members.setdefault(rung, [])
        if h not in members:
            members.append(h)
        for r in range(rung):  # reaching rung r+1 means it was promoted from every rung below
            self._promoted.setdefault(r, set()).add(h)

    def _asha_promotion(self) -> _Job | None:
        top = self.schedule.s_max
        for r in range(top - 1, -1, -1):
            members = self._rung_members.get(r, [])
            k = len(members) // self.schedule.eta
            if k < 1:
                continue
            b = self.schedule.budget(r)
            F = [self._objective_vector(self._done[(h, b)]) for h in members]
            for i in pareto_order(F)[:k]:
                h = members[i]
                if h in self._promoted.get(r, set()) or not all(math.isfinite(v) for v in F[i]):
                    continue
                self._promoted.setdefault(r, set()).add(h)
                return self._make_job(self._specs[h], r + 1, 0)
        return None

    def _asha_budget_left(self, rung: int) -> bool:
        cap = self.total_budget if self.total_budget is not None else self.brackets * self.schedule.bracket_units()
        return self._units + self.schedule.rung_units(rung) <= cap + 1e-9

    def _asha_next(self) -> _Job | None:
        repeats = 0
        while True:
            job = self._asha_promotion()
            if job is None:
                if not self._asha_budget_left(0):
                    return None
                if not self._queue:
                    self._queue.extend(self._propose(self.schedule.first_rung_size))
                job = self._make_job(self._queue.popleft(), 0, 0)
            elif not self._asha_budget_left(job.rung):
                self._promoted[job.rung - 1].discard(job.hash)
                return None
            known = self._known(job.hash, job.budget)
            if known is None and (job.hash, job.budget) not in self._inflight_keys:
                return job
            if known is not None:  # a duplicate proposal: its result is already known
                self._n_cached += 1
                self._asha_done(job, known)
                repeats += 1
                if repeats > MAX_REPEATED_PROPOSALS:
                    log.info("asha: %d proposals in a row were already evaluated; the space looks exhausted", repeats)
                    return None

    def _asha_done(self, job: _Job, rec: dict) -> None:
        self._asha_record(job.hash, job.spec, job.rung, rec)
        self.strategy.tell([job.spec], [self._result_for_strategy(rec, job.rung)])

    def _run_asha(self) -> None:
        while True:
            while len(self._inflight) < self.concurrency:
                job = self._asha_next()
                if job is None:
                    break
                self._dispatch(job)
            if not self._inflight:
                break
            try:
                job, rec = self._next_completion()
            except _ReplayDiverged:
                self._absorb_rest_of_replay()
                self._go_live()
                continue
            self._asha_done(job, rec)
        for r in range(self.schedule.n_rungs):
            self._rung_log.append({"rung": r, "candidates": len(self._rung_members.get(r, [])),
                                   "units": self.schedule.rung_units(r)})

    # ---- the whole run -------------------------------------------------------------------------------------
    def run(self) -> dict:
        replay = self._check_resume()
        t0 = time.perf_counter()
        self._replay = deque(replay)
        self._done: dict[tuple[str, Budget], dict] = {}
        self._inflight: dict[int, _Job] = {}
        self._inflight_keys: set[tuple[str, Budget]] = set()
        self._specs: dict[str, dict] = {}
        self._rung_members: dict[int, list[str]] = {}
        self._promoted: dict[int, set[str]] = {}
        self._queue: deque = deque()
        self._rung_log: list[dict] = []
        self._units = 0.0
        self._n_jobs = self._n_new = self._n_cached = self._n_replayed = 0
        self._n_prefiltered = self._n_predicted = 0
        self._brackets_done = 0
        self._live = not self._replay
        self._ex = None
        from tqdm.auto import tqdm

        self._bar = tqdm(desc=f"{self.fidelity} search", disable=not self.progress, unit="eval", leave=False)
        try:
            if self.fidelity == "asha":
                self._run_asha()
            else:
                try:
                    self._run_sync()
                except _ReplayDiverged as e:
                    raise ValueError(f"cannot resume: the archived result {e.args[0][0]} at "
                                     f"{e.args[0][1]} does not follow from these settings; use the settings of the "
                                     "stored run or another output directory") from None
        finally:
            self._bar.close()
            if self._ex is not None:
                self._ex.close()
        return self.summary(time.perf_counter() - t0)

    def summary(self, seconds: float) -> dict:
        recs = self.archive.budget_records()
        top = max((int(r["rung"]) for r in recs if r["status"] == "ok"), default=None)
        best, front = None, []
        if top is not None:
            at_top = [r for r in recs if int(r["rung"]) == top and r["status"] == "ok"]
            F = [self._objective_vector(r) for r in at_top]
            b = max(at_top, key=lambda r: (r["fitness"], -r["seq"]))
            best = {"hash": b["hash"], "spec": b["spec"], "fitness": b["fitness"], "rung": top,
                    "budget": b["budget"], "metrics": b["metrics"]}
            for i in sorted(pareto_indices(F), key=lambda i: (F[i][1:], F[i][0], i)):
                r = at_top[i]
                front.append({"hash": r["hash"], "fitness": r["fitness"], "rung": top, "budget": r["budget"],
                              **{c: float(r["metrics"][c]) for c in self.objectives[1:]}})
        cpu = sum(float(r["cpu_seconds"] or 0.0) for r in recs)
        return {"fidelity": self.fidelity, "strategy": self.strategy.name, "schedule": self.schedule.describe(),
                "objectives": list(self.objectives), "evaluations": len(recs),
                "failed": sum(r["status"] == "failed" for r in recs), "evaluated_this_run": self._n_new,
                "replayed": self._n_replayed, "cached_this_run": self._n_cached, "units": self._units,
                "units_in_archive": sum(self.schedule.rung_units(int(r["rung"])) for r in recs
                                        if 0 <= int(r["rung"]) < self.schedule.n_rungs),
                "evaluation_cpu_seconds": cpu, "brackets": self._brackets_done, "rungs": self._rung_log,
                "prefiltered": self._n_prefiltered, "predicted": self._n_predicted,
                "predictor_trained_on": None if self.predictor is None else self.predictor.n_train,
                "best": best, "front": front, "seconds": seconds,
                "hall_of_fame": [{"fitness": f, "hash": spec_hash(s)} for f, s in self.strategy.hall_of_fame]}

