"""The search strategies of the shared engine, one module per family.

Importing this package registers the strategies in :data:`snn_nas.engine.strategy.STRATEGIES`:
``random`` (:mod:`.random_search`), ``ga`` (:mod:`.genetic`), ``nsga2`` (:mod:`.nsga2`), ``cmaes`` and ``eg_cma``
(:mod:`.cma`), ``evo`` (:mod:`.evo`, with the tree operators of :mod:`.gp`).
"""

from snn_nas.engine.strategy import STRATEGIES

from .cma import CMAESLogits, CMAESStrategy, ReplayCMA
from .evo import EvoSearch
from .genetic import GeneticAlgorithm
from .gp import node_mutation, subtree_crossover, subtree_mutation
from .nsga2 import NSGA2
from .random_search import RandomSearch

__all__ = ["STRATEGIES", "CMAESLogits", "CMAESStrategy", "EvoSearch", "GeneticAlgorithm", "NSGA2", "RandomSearch", "ReplayCMA",
           "subtree_crossover", "node_mutation", "subtree_mutation"]
