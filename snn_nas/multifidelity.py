"""The entry point of a multi-fidelity architecture search (successive halving, Hyperband, ASHA; DEHB-like evolution).

:func:`run_multifidelity` is what applications (``neurosynth search mse --fidelity ...``) and benchmarks call. It
builds the named strategy from :data:`snn_nas.strategies.STRATEGIES` and runs
:class:`snn_nas.engine.fidelity.MultiFidelityRunner` (the engine does not know the strategies by name, so the
lookup lives here, one floor up). How the rungs, promotion, prefilter, predictor and resume work:
:mod:`snn_nas.engine.fidelity` and ``docs/msenas.md``.

Example (a toy problem)::

    import numpy as np
    from snn_nas.engine import Archive, EVALUATORS, GridSpace
    from snn_nas.multifidelity import RungSchedule, run_multifidelity

    space = GridSpace({"a": {"int": [0, 20]}, "b": {"int": [0, 20]}, "c": {"choices": [1, 2, 3]}})
    ev = EVALUATORS.get("quadratic")({"a": 10, "b": 3}, cost_gene="c", fidelity_noise=20.0)
    with Archive("runs/toy/archive.sqlite") as archive:
        summary = run_multifidelity(space, ev, archive, strategy="dehb", fidelity="sh",
                                    schedule=RungSchedule(min_budget=1, max_budget=9, eta=3, unit_images=1),
                                    brackets=4, objectives=("accuracy", "synops"), seed=0)
    summary["best"], summary["front"]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .engine.archive import Archive
from .engine.evaluator import Evaluator
from .engine.fidelity import (
    DEFAULT_ETA,
    DEFAULT_FIDELITY,
    FIDELITIES,
    Budget,
    MultiFidelityRunner,
    RungSchedule,
    spec_features,
    units_to_budget,
)
from .engine.space import SearchSpace
from .engine.strategy import Strategy

STRATEGY_ALIASES = {"random_sh": ("random", "sh"), "random_hyperband": ("random", "hyperband"),
                    "random_asha": ("random", "asha")}


def run_multifidelity(space: SearchSpace, evaluator: Evaluator, archive: Archive, *,
                      strategy: str | Strategy = "dehb", fidelity: str | None = None,
                      schedule: RungSchedule | None = None, min_budget: float | None = None,
                      max_budget: float | None = None, eta: int | None = None, brackets: int = 1,
                      total_budget: float | None = None, seed: int = 0, prefilter: int | None = None,
                      scorer: Evaluator | None = None, predictor: bool = False,
                      objectives: tuple[str, ...] | list[str] = ("accuracy", "synops"), workers: int = 0,
                      ray: str | None = None, resume: bool = False, progress: bool = False,
                      strategy_options: dict | None = None, config: dict | None = None,
                      on_result: Callable[[dict], None] | None = None) -> dict:
    """Run (or, with ``resume=True``, continue) a multi-fidelity search; returns its summary.

    * ``strategy``: a name in ``STRATEGIES`` (``"dehb"``: evolution inside the rungs; ``"random"``: sampling), an
      alias (``"random_sh"`` = random + ``fidelity="sh"``) or a :class:`~snn_nas.engine.strategy.Strategy`
      instance; built with ``np.random.default_rng(seed)`` and ``strategy_options``.
    * ``fidelity``: ``"sh"`` (default), ``"hyperband"``, ``"asha"`` or ``"none"`` (every candidate at
      ``max_budget``).
    * ``schedule``: a :class:`RungSchedule`; or ``min_budget``/``max_budget``/``eta`` (units) on the default one.
    * ``brackets`` / ``total_budget`` (units): how long to search (see :class:`MultiFidelityRunner`).
    * ``prefilter=N`` with ``scorer`` (a training-free evaluator) / ``predictor=True``: training-free ranking of the
      proposals before rung 0.
    * ``objectives``: ``("accuracy", cost, ...)``: promotion by Pareto rank on validation accuracy and the costs
      (metrics of the evaluator's result; ``("accuracy",)``: single objective).
    * ``workers`` / ``ray``: parallel evaluation (processes / Ray tasks); ``on_result``: called after every new
      archived result.

    Summary keys: ``best`` (the candidate with the best validation accuracy at the highest rung reached: ``hash``,
    ``spec``, ``fitness``, ``budget``, ``metrics``), ``front`` (the Pareto front at that rung), ``evaluations``,
    ``failed``, ``units``, ``evaluation_cpu_seconds`` (CPU of every evaluation, in whatever process or Ray worker it
    ran), ``rungs``, ``schedule``, ``seconds`` and counters.
    """
    from .strategies import STRATEGIES

    if isinstance(strategy, str) and strategy in STRATEGY_ALIASES:
        strategy, implied = STRATEGY_ALIASES[strategy]
        if fidelity is not None and fidelity != implied:
            raise ValueError(f"strategy alias implies fidelity {implied!r}, got fidelity={fidelity!r}")
        fidelity = implied
    fidelity = fidelity or "sh"
    if schedule is None:
        kw = {k: v for k, v in (("min_budget", min_budget), ("max_budget", max_budget), ("eta", eta))
              if v is not None}
        schedule = RungSchedule(**kw)
    elif any(v is not None for v in (min_budget, max_budget, eta)):
        raise ValueError("give either schedule or min_budget/max_budget/eta, not both")
    if isinstance(strategy, str):
        strategy = STRATEGIES.get(strategy)(space, np.random.default_rng(seed), **(strategy_options or {}))
    elif strategy_options:
        raise ValueError("strategy_options only apply to a strategy given by name")
    runner = MultiFidelityRunner(space, strategy, evaluator, archive, fidelity=fidelity, schedule=schedule,
                                 brackets=brackets, total_budget=total_budget, seed=seed, objectives=objectives,
                                 prefilter=prefilter, scorer=scorer, predictor=predictor, workers=workers, ray=ray,
                                 resume=resume, progress=progress, config=config, on_result=on_result)
    return runner.run()


__all__ = ["DEFAULT_ETA", "DEFAULT_FIDELITY", "FIDELITIES", "Budget", "MultiFidelityRunner", "RungSchedule",
           "STRATEGY_ALIASES", "run_multifidelity", "spec_features", "units_to_budget"]
