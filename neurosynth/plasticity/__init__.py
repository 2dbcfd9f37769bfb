"""Local learning rules: STDP (pair, triplet, reward-modulated) and unsupervised building blocks.

Functional core (pure, no autograd): :mod:`.stdp` (rules), :mod:`.connections` (dense/conv correlation),
:mod:`.schedule` (learning-rate schedules), :mod:`.unsupervised` (WTA, homeostasis, normalisation).
Modules: :class:`STDPLearner`, :class:`PlasticLayer`. Winner-take-all network: :mod:`.wta` (its digits recipe is :mod:`neurosynth.apps.recipes.stdp_digits`)
(Diehl & Cook-style unsupervised learning on scikit-learn digits).
"""

from .connections import Conv2d, Dense, connection_for
from .learner import PlasticLayer, STDPLearner
from .schedule import SCHEDULES, LRSchedule, lr_at
from .stdp import (
    RULES,
    RSTDPParams,
    RSTDPState,
    STDPParams,
    STDPState,
    TripletParams,
    TripletState,
    apply_update,
    make_params,
    pair_window,
    rstdp_init,
    rstdp_step,
    stdp_init,
    stdp_step,
    triplet_init,
    triplet_step,
)
from .unsupervised import (
    HomeostasisParams,
    LIFWTAParams,
    LIFWTAState,
    adaptive_threshold_step,
    lateral_inhibition,
    lif_wta_init,
    lif_wta_step,
    normalize_weights,
    winner_take_all,
)

__all__ = [
    "Conv2d", "Dense", "HomeostasisParams", "LIFWTAParams", "LIFWTAState", "LRSchedule", "PlasticLayer", "RULES",
    "RSTDPParams", "RSTDPState", "SCHEDULES", "STDPLearner", "STDPParams", "STDPState", "TripletParams",
    "TripletState", "adaptive_threshold_step", "apply_update", "connection_for", "lateral_inhibition",
    "lif_wta_init", "lif_wta_step", "lr_at", "make_params", "normalize_weights", "pair_window", "rstdp_init",
    "rstdp_step", "stdp_init", "stdp_step", "triplet_init", "triplet_step", "winner_take_all",
]
