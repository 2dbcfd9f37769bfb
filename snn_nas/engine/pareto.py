"""Non-dominated sorting and crowding distance: the one place the engine ranks by several objectives.

NSGA-II (:mod:`snn_nas.strategies.nsga2`), the rung promotion of the multi-fidelity engine
(:mod:`snn_nas.engine.fidelity`), DEHB's parent selection (:mod:`snn_nas.strategies.dehb`) and the Pareto front of
a search report (:mod:`snn_nas.mse.run`) all call these. The sorting and the crowding distance are pymoo's
(``NonDominatedSorting``, ``calc_crowding_distance``): the same code NSGA-II runs.

Every objective is minimised (write an accuracy as ``-accuracy``); a failed candidate has ``+inf`` objectives and
ranks last.
"""

from __future__ import annotations

import numpy as np


def _pymoo():
    try:
        from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance
        from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
    except ImportError as e:  # pragma: no cover - pymoo ships with the nas extra
        from neurosynth.errors import MissingExtraError

        raise MissingExtraError("pymoo", "nas", "Pareto ranking (multi-objective promotion)") from e
    return NonDominatedSorting, calc_crowding_distance


def _matrix(F) -> np.ndarray:
    F = np.asarray(F, dtype=float)
    if F.ndim == 1:
        F = F[:, None]
    if F.ndim != 2:
        raise ValueError(f"objectives must be a [n, m] matrix, got shape {F.shape}")
    return np.where(np.isnan(F), np.inf, F)


def nondominated_rank(F) -> np.ndarray:
    """The front index of every row of ``F`` ``[n, m]`` (0 = non-dominated). Rows with a non-finite objective
    (failed candidates) are put in a last front of their own."""
    F = _matrix(F)
    n = len(F)
    rank = np.zeros(n, dtype=int)
    if n == 0:
        return rank
    finite = np.all(np.isfinite(F), axis=1)
    idx = np.flatnonzero(finite)
    if len(idx):
        NDS, _ = _pymoo()
        fronts = NDS().do(F[idx], return_rank=True)[1] if len(idx) > 1 else np.zeros(1, dtype=int)
        rank[idx] = fronts
        rank[~finite] = int(np.max(fronts)) + 1
    else:
        rank[:] = 0
    return rank


def crowding_distance(F) -> np.ndarray:
    """NSGA-II crowding distance of the rows of one front (boundary points: ``inf``)."""
    F = _matrix(F)
    if len(F) <= 2:
        return np.full(len(F), np.inf)
    _, crowd = _pymoo()
    return np.asarray(crowd(F), dtype=float)


def pareto_order(F) -> list[int]:
    """Row indices of ``F`` best first: by non-dominated rank, then by crowding distance (larger first, within the
    front), then by index (a stable, deterministic tie-break). With one objective it is a plain ascending sort."""
    F = _matrix(F)
    n = len(F)
    if n == 0:
        return []
    if F.shape[1] == 1:
        return sorted(range(n), key=lambda i: (F[i, 0], i))
    rank = nondominated_rank(F)
    crowd = np.zeros(n)
    for r in np.unique(rank):
        members = np.flatnonzero(rank == r)
        if np.all(np.isfinite(F[members])):
            crowd[members] = crowding_distance(F[members])
    return sorted(range(n), key=lambda i: (rank[i], -crowd[i], i))


def pareto_indices(F) -> list[int]:
    """Indices of the non-dominated rows of ``F`` (all objectives minimised; rows with a non-finite objective
    excluded), in row order. Plain numpy (the front of a report needs no pymoo); equal to the rows of
    :func:`nondominated_rank` 0."""
    F = _matrix(F)
    keep = []
    finite = np.all(np.isfinite(F), axis=1) if len(F) else np.zeros(0, bool)
    G = F[finite]
    for i in np.flatnonzero(finite):
        if not np.any(np.all(G <= F[i], axis=1) & np.any(G < F[i], axis=1)):
            keep.append(int(i))
    return keep
