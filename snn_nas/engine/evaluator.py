"""Evaluators score one architecture spec; they never search.

``Evaluator.evaluate(spec, seed) -> dict`` returns at least ``fitness`` (float, higher is better) and
optionally ``objectives`` (list of floats, all minimised, for multi-objective strategies) plus any
metrics (JSON-serialisable scalars). All randomness must come from ``seed`` (the runner derives it from
the run seed and the spec hash), so serial, multi-process and Ray runs agree.

**Budgets (multi-fidelity).** An evaluator that sets ``supports_budget = True`` also takes
``evaluate(spec, seed, budget=Budget(epochs, images))`` (:class:`snn_nas.engine.fidelity.Budget`): train for
``budget.epochs`` epochs on the first ``budget.images`` images of a fixed, seeded order of its *search-training*
split and return ``fitness`` = the **validation** accuracy (a split carved from the training data; the test set is
never read during a search) and the costs it knows as metrics (``synops``, ``params``, ...). The same seed is
passed at every budget, so a promoted candidate starts from the same initial weights. ``budget=None`` is the
evaluator's own default budget. :func:`snn_nas.engine.fidelity.run_multifidelity` refuses an evaluator without
``supports_budget``.

:func:`evaluate_safely` is what the runner calls (in-process, in a worker process or a Ray task): it
times the call and turns an exception, an out-of-memory error or a NaN fitness into a ``failed`` record
with a reason instead of stopping the search.
"""

from __future__ import annotations

import math
import time
import traceback
from abc import ABC, abstractmethod

from neurosynth.registry import Registry

EVALUATORS: Registry[type[Evaluator]] = Registry("evaluator")


class Evaluator(ABC):
    """Abstract evaluator. Must be picklable (it is sent to worker processes / Ray tasks)."""

    name = "evaluator"
    supports_budget = False  # True: evaluate(spec, seed, budget=Budget(...)) trains at that budget

    @abstractmethod
    def evaluate(self, spec: dict, seed: int) -> dict:
        """Score ``spec``; use only ``seed`` for randomness. (Budget-aware evaluators: ``evaluate(spec, seed,
        budget=None)``, see the module docstring.)"""

    def describe(self) -> dict:
        """JSON description for the run manifest."""
        return {"name": self.name}


def _is_oom(e: BaseException) -> bool:
    if isinstance(e, MemoryError):
        return True
    name = type(e).__name__
    return name == "OutOfMemoryError" or "out of memory" in str(e).lower()


def evaluate_safely(evaluator: Evaluator, spec: dict, seed: int, budget=None) -> dict:
    """Run ``evaluator.evaluate`` (with ``budget`` when it is not None) and return a normalised record.

    Record: ``status`` ("ok"|"failed"), ``fitness`` (float or nan), ``objectives`` (list or None),
    ``metrics`` (dict), ``error`` (str or None), ``seconds`` (wall time of the call), ``cpu_seconds`` (CPU time of
    the process that ran it, during the call: a worker's or a Ray task's own CPU, for compute accounting).
    """
    t0 = time.perf_counter()
    c0 = time.process_time()
    try:
        out = (evaluator.evaluate(spec, int(seed)) if budget is None
               else evaluator.evaluate(spec, int(seed), budget=budget))
        if not isinstance(out, dict) or "fitness" not in out:
            raise TypeError(f"{type(evaluator).__name__}.evaluate must return a dict with 'fitness', got {out!r}")
        out = dict(out)
        fitness = float(out.pop("fitness"))
        objectives = out.pop("objectives", None)
        if objectives is not None:
            objectives = [float(o) for o in objectives]
        rec = {"status": "ok", "fitness": fitness, "objectives": objectives, "metrics": out, "error": None}
        if math.isnan(fitness) or math.isinf(fitness):
            rec["status"], rec["error"] = "failed", f"fitness is {fitness} (numerical failure)"
            rec["fitness"] = math.nan
    except Exception as e:  # noqa: BLE001 - the whole point is to record any failure and go on
        kind = "out of memory" if _is_oom(e) else "exception"
        tb = traceback.format_exception_only(type(e), e)[-1].strip()
        rec = {"status": "failed", "fitness": math.nan, "objectives": None, "metrics": {},
               "error": f"{kind}: {tb}"[:2000]}
    rec["seconds"] = time.perf_counter() - t0
    rec["cpu_seconds"] = time.process_time() - c0
    return rec


@EVALUATORS.register("quadratic")
class QuadraticEvaluator(Evaluator):
    """Toy evaluator over :class:`~snn_nas.engine.space.GridSpace` specs (for tests and examples).

    ``fitness = -sum_g (genes[g] - target[g])**2 + noise * N(0,1; seed)``; objectives are
    ``[-fitness, genes[cost_gene]]`` (and the metric ``synops = genes[cost_gene]``). ``fail_on`` maps a gene to a
    value that raises, ``nan_on`` to a value that returns NaN, to exercise failure handling.

    **Budgets.** ``evaluate(spec, seed, budget=Budget(epochs, images))`` adds a budget-dependent noise: the value
    at budget ``b`` is ``fitness + fidelity_noise / sqrt(b.presentations) * N(0,1; seed, b)`` -- a short
    "training" ranks candidates noisily, a long one almost exactly, as in successive halving's premise; the noise
    is drawn from ``(seed, presentations)``, so it differs between rungs and is reproducible.
    ``budget=None`` is exact (no fidelity noise). ``log_to``: a file to which every evaluation appends one line
    ``<spec hash> <presentations or -> <pid>`` (tests count what was really evaluated, in any process).
    """

    name = "quadratic"
    supports_budget = True

    def __init__(self, target: dict, *, noise: float = 0.0, cost_gene: str | None = None,
                 fail_on: dict | None = None, nan_on: dict | None = None, sleep: float = 0.0,
                 fidelity_noise: float = 0.0, log_to: str | None = None):
        self.target, self.noise, self.cost_gene = dict(target), float(noise), cost_gene
        self.fail_on, self.nan_on, self.sleep = dict(fail_on or {}), dict(nan_on or {}), float(sleep)
        self.fidelity_noise, self.log_to = float(fidelity_noise), log_to

    def true_fitness(self, spec: dict) -> float:
        """The noiseless value (what an infinite budget would measure)."""
        g = spec["genes"]
        return -sum((float(g[k]) - float(t)) ** 2 for k, t in self.target.items())

    def evaluate(self, spec: dict, seed: int, budget=None) -> dict:
        import numpy as np

        g = spec["genes"]
        if self.log_to:
            import os

            from .space import spec_hash

            with open(self.log_to, "a") as fh:
                fh.write(f"{spec_hash(spec)} {'-' if budget is None else budget.presentations} {os.getpid()}\n")
        if self.sleep:
            time.sleep(self.sleep)
        for k, v in self.fail_on.items():
            if g.get(k) == v:
                raise RuntimeError(f"simulated failure for {k}={v}")
        for k, v in self.nan_on.items():
            if g.get(k) == v:
                return {"fitness": float("nan")}
        f = self.true_fitness(spec)
        if self.noise:
            f += self.noise * float(np.random.default_rng(seed).standard_normal())
        if budget is not None and self.fidelity_noise:
            n = max(int(budget.presentations), 1)
            f += self.fidelity_noise / math.sqrt(n) * float(np.random.default_rng([int(seed), n]).standard_normal())
        out = {"fitness": f, "seed": int(seed)}
        if self.cost_gene:
            out["objectives"] = [-f, float(g[self.cost_gene])]
            out["synops"] = float(g[self.cost_gene])
        return out

    def describe(self) -> dict:
        return {"name": self.name, "target": self.target, "noise": self.noise, "fidelity_noise": self.fidelity_noise}
