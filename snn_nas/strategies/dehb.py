"""DEHB-like evolution inside the rungs of a multi-fidelity search (strategy ``dehb``).

DEHB (Awad et al., IJCAI 2021) fills Hyperband's brackets with the offspring of differential evolution. Our genomes
are graph-shaped JSON specs, not vectors, so the variation operators are the space's own ``mutate`` and
``crossover`` (the MSE operators: micro/meso/macro mutations, cell-list crossover): every candidate this strategy
proposes is, once a parent pool exists, a mutant of a crossover (probability ``p_crossover``) or of a copy of
**promoted** parents -- candidates that reached rung 1 or higher -- chosen by binary tournament on

1. the highest rung reached (a candidate that survived more promotions is better), then
2. the Pareto order of the rung's members on the result's ``objectives`` (e.g. ``[-accuracy, synops]``):
   non-dominated rank, then crowding distance (:func:`snn_nas.engine.pareto.pareto_order`, pymoo's NSGA-II code).

Before two promoted candidates exist (the first bracket), and otherwise with probability ``p_random``, a candidate
is a fresh ``space.sample`` (exploration, as DEHB's random initial population). It never trains: the
multi-fidelity runner (:mod:`snn_nas.engine.fidelity`) tells it every result with its ``rung``; it can be told one
result at a time (``asynchronous = True``: ASHA) or a bracket at a time. Its state (RNG, parent pool) is JSON.
"""

from __future__ import annotations

import math

from snn_nas.engine.pareto import pareto_order
from snn_nas.engine.space import spec_hash
from snn_nas.engine.strategy import Strategy, copy_spec, fitness_of, json_float


class DEHB(Strategy):
    """Mutants and crossovers of promoted candidates fill the lowest rung (see the module docstring)."""

    name = "dehb"
    asynchronous = True

    def __init__(self, space, rng, *, p_crossover: float = 0.5, p_random: float = 0.1, tournament: int = 2,
                 min_parents: int = 2, hof_size: int = 10, **options):
        super().__init__(space, rng, hof_size=hof_size, **options)
        for name, p in (("p_crossover", p_crossover), ("p_random", p_random)):
            if not 0 <= p <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {p}")
        if tournament < 1 or min_parents < 1:
            raise ValueError(f"tournament and min_parents must be >= 1, got {tournament} and {min_parents}")
        self.p_crossover, self.p_random = float(p_crossover), float(p_random)
        self.tournament, self.min_parents = int(tournament), int(min_parents)
        # hash -> [highest rung, objectives at that rung, spec]; insertion order = first seen
        self.pool: dict[str, list] = {}
        self.n_proposed = {"random": 0, "crossover": 0, "mutation": 0}

    # ---- parents ---------------------------------------------------------------------------------------
    def _ranked_parents(self) -> list[str]:
        """Promoted candidates (rung >= 1), best first: higher rung, then Pareto order within the rung."""
        by_rung: dict[int, list[str]] = {}
        for h, (rung, _, _) in self.pool.items():
            if rung >= 1:
                by_rung.setdefault(rung, []).append(h)
        out: list[str] = []
        for rung in sorted(by_rung, reverse=True):
            members = by_rung[rung]
            F = [self.pool[h][1] for h in members]
            out += [members[i] for i in pareto_order(F)]
        return out

    def _pick(self, ranked: list[str]) -> dict:
        k = min(self.tournament, len(ranked))
        idx = self.rng.choice(len(ranked), size=k, replace=False)
        return self.pool[ranked[int(min(idx))]][2]  # lower index = better rank

    def ask(self, n: int) -> list[dict]:
        ranked = self._ranked_parents()
        out = []
        for _ in range(int(n)):
            if len(ranked) < self.min_parents or self.rng.random() < self.p_random:
                out.append(self.space.sample(self.rng))
                self.n_proposed["random"] += 1
                continue
            p1 = self._pick(ranked)
            if self.rng.random() < self.p_crossover:
                child = self.space.crossover(p1, self._pick(ranked), self.rng)
                self.n_proposed["crossover"] += 1
            else:
                child = copy_spec(p1)
                self.n_proposed["mutation"] += 1
            out.append(self.space.mutate(child, self.rng))  # always mutated: never a clone of a parent
        return out

    def tell(self, specs: list[dict], results: list[dict]) -> None:
        super().tell(specs, results)
        for s, r in zip(specs, results):
            h = spec_hash(s)
            rung = int(r.get("rung", 0)) if isinstance(r, dict) else 0
            obj = r.get("objectives") if isinstance(r, dict) else None
            if obj is None:
                f = fitness_of(r)
                obj = [-f if math.isfinite(f) else math.inf]
            obj = [float(o) if math.isfinite(float(o)) else math.inf for o in obj]
            old = self.pool.get(h)
            if old is None or rung >= old[0]:
                self.pool[h] = [rung, obj, copy_spec(s)]

    # ---- state -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        d = super().state_dict()
        d["pool"] = [[h, rung, [json_float(o) for o in obj], s] for h, (rung, obj, s) in self.pool.items()]
        d["n_proposed"] = dict(self.n_proposed)
        return d

    def load_state_dict(self, d: dict) -> None:
        super().load_state_dict(d)
        self.pool = {h: [int(rung), [math.inf if o is None else float(o) for o in obj], s]
                     for h, rung, obj, s in d["pool"]}
        self.n_proposed = dict(d.get("n_proposed", self.n_proposed))
