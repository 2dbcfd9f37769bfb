"""EvoSearch: CMA-ES for continuous parameters + genetic programming over architecture trees, and BioNAS-EG's
CMA-ES over architecture logits.

Importing this package registers the strategies ``cmaes``, ``evo`` and ``eg_cma`` in
:data:`snn_nas.engine.strategy.STRATEGIES`.
"""

from .eg_cma import CMAESLogits, LogitSpace
from .evo import CMAESStrategy, EvoSearch, ReplayCMA
from .gp import node_mutation, subtree_crossover, subtree_mutation

__all__ = ["CMAESLogits", "CMAESStrategy", "EvoSearch", "LogitSpace", "ReplayCMA", "subtree_crossover",
           "node_mutation", "subtree_mutation"]
