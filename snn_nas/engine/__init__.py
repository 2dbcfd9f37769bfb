"""The search engine shared by MSE-NAS, BioNAS and EvoSearch.

Roles are separate (see docs/msenas.md):

* :mod:`.space` -- ``SearchSpace`` (data: ``sample(rng)``, ``validate(spec)``, ``mutate``, ``crossover``),
  ``canonical_json``, ``spec_hash``, ``derive_seed``;
* :mod:`.strategy` -- the ask/tell ``Strategy`` base class and ``HallOfFame`` (the strategies themselves and
  their ``STRATEGIES`` registry: :mod:`snn_nas.strategies`);
* :mod:`.evaluator` -- ``Evaluator`` and the ``EVALUATORS`` registry, ``evaluate_safely``;
* :mod:`.archive` -- ``Archive``, the SQLite record of a search;
* :mod:`.runner` -- ``Runner``, the loop (budget, workers / Ray, progress, checkpoints, resume);
* :mod:`.fidelity` -- ``Budget``, ``RungSchedule``, ``MultiFidelityRunner``: successive halving, Hyperband and ASHA
  (the strategy-by-name entry point is :func:`snn_nas.multifidelity.run_multifidelity`);
* :mod:`.pareto` -- non-dominated rank, crowding distance, ``pareto_order`` (pymoo's, shared with NSGA-II).
"""

from .archive import Archive
from .evaluator import EVALUATORS, Evaluator, evaluate_safely
from .fidelity import Budget, MultiFidelityRunner, RungSchedule
from .runner import Runner
from .space import GridSpace, SearchSpace, canonical_json, derive_seed, spec_hash
from .strategy import HallOfFame, Strategy

__all__ = ["Archive", "Budget", "MultiFidelityRunner", "RungSchedule", "EVALUATORS", "Evaluator", "evaluate_safely", "Runner", "GridSpace", "SearchSpace",
           "canonical_json", "derive_seed", "spec_hash", "HallOfFame", "Strategy"]
