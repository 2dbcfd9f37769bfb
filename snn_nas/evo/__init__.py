"""EvoSearch: CMA-ES for continuous parameters + genetic programming over architecture trees.

Importing this package registers the strategies ``cmaes`` and ``evo`` in
:data:`snn_nas.engine.strategy.STRATEGIES`.
"""

from .gp import node_mutation, subtree_crossover, subtree_mutation
from .strategies import CMAESStrategy, EvoSearch, ReplayCMA

__all__ = ["CMAESStrategy", "EvoSearch", "ReplayCMA", "subtree_crossover", "node_mutation", "subtree_mutation"]
