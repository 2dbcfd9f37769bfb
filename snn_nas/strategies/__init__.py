"""The search strategies of the shared engine (:mod:`snn_nas.engine`), one module per family, and their registry.

======== ========================================= ==================================================
name     class                                     module
======== ========================================= ==================================================
random   :class:`.random_search.RandomSearch`      :mod:`.random_search` (the baseline)
ga       :class:`.genetic.GeneticAlgorithm`        :mod:`.genetic`
nsga2    :class:`.nsga2.NSGA2`                     :mod:`.nsga2` (pymoo)
cmaes    :class:`.cma.CMAESStrategy`               :mod:`.cma` (pycma, over ``space.decode``)
eg_cma   :class:`.cma.CMAESLogits`                 :mod:`.cma` (BioNAS-EG, over architecture logits)
evo      :class:`.evo.EvoSearch`                   :mod:`.evo` (GP over spec trees, :mod:`.gp`, + CMA-ES)
dehb     :class:`.dehb.DEHB`                       :mod:`.dehb` (mutants/crossovers of promoted candidates fill
                                                   the lowest rung of a multi-fidelity search)
======== ========================================= ==================================================

Every strategy subclasses :class:`snn_nas.engine.strategy.Strategy` (ask/tell, JSON ``state_dict``) and never
trains. :data:`STRATEGIES` is filled here, in one place; build one as
``STRATEGIES.get(name)(space, rng, **options)``. A new strategy is one module in this package and one
``STRATEGIES.add`` line below (its class attribute ``name`` must equal the registered name: the saved state
names it); code outside the package may ``STRATEGIES.add`` its own.
"""

from neurosynth.registry import Registry
from snn_nas.engine.strategy import Strategy

from .cma import CMAESLogits, CMAESStrategy, ReplayCMA
from .dehb import DEHB
from .evo import EvoSearch
from .genetic import GeneticAlgorithm
from .gp import node_mutation, subtree_crossover, subtree_mutation
from .nsga2 import NSGA2
from .random_search import RandomSearch

STRATEGIES: Registry[type[Strategy]] = Registry("strategy")
STRATEGIES.add("random", RandomSearch)
STRATEGIES.add("ga", GeneticAlgorithm)
STRATEGIES.add("nsga2", NSGA2)
STRATEGIES.add("cmaes", CMAESStrategy)
STRATEGIES.add("eg_cma", CMAESLogits)
STRATEGIES.add("evo", EvoSearch)
STRATEGIES.add("dehb", DEHB)

__all__ = ["STRATEGIES", "CMAESLogits", "CMAESStrategy", "DEHB", "EvoSearch", "GeneticAlgorithm", "NSGA2", "RandomSearch",
           "ReplayCMA", "node_mutation", "subtree_crossover", "subtree_mutation"]
