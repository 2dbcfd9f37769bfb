"""EvoSearch (strategy ``evo``, the blog post in the seeds): genetic programming over architecture trees
(subtree crossover, node mutation, subtree mutation; :mod:`snn_nas.strategies.gp`) with tournament selection of
size 4 and a hall of fame of 10, plus CMA-ES (:class:`~snn_nas.strategies.cma.ReplayCMA`) for the continuous
parameters named by ``continuous`` (``{dotted.path: [low, high]}``, ``*`` matches every list item / key; default:
the space's ``continuous`` attribute, if any). Works on any space whose specs are JSON trees and whose
``validate`` rejects malformed children: the BioNAS spaces and the MSE (SNN) space alike.

It never trains; its state (RNG, population, hall of fame, CMA-ES) is JSON.
"""

from __future__ import annotations

import json
import math

import numpy as np

from snn_nas.engine.space import canonical_json, spec_hash
from snn_nas.engine.strategy import Strategy, fitness_of

from . import gp
from .cma import ReplayCMA, _minimised


class EvoSearch(Strategy):
    """Genetic programming over spec trees + CMA-ES on continuous parameters (see module doc)."""

    name = "evo"

    def __init__(self, space, rng, *, tournament: int = 4, hof_size: int = 10, p_crossover: float = 0.7,
                 p_node: float = 0.4, p_subtree: float = 0.2, elite: int = 2, continuous: dict | None = None,
                 sigma0: float = 0.3, protect: tuple | list = ("space", "format", "kind"), **options):
        super().__init__(space, rng, hof_size=hof_size, **options)
        if tournament < 1:
            raise ValueError(f"tournament size must be >= 1, got {tournament}")
        for name, p in (("p_crossover", p_crossover), ("p_node", p_node), ("p_subtree", p_subtree)):
            if not 0 <= p <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {p}")
        self.tournament, self.elite = int(tournament), int(elite)
        self.p_crossover, self.p_node, self.p_subtree = float(p_crossover), float(p_node), float(p_subtree)
        cont = continuous if continuous is not None else getattr(space, "continuous", None) or {}
        for k, v in cont.items():
            if not (isinstance(v, (list, tuple)) and len(v) == 2 and float(v[0]) < float(v[1])):
                raise ValueError(f"continuous['{k}'] must be [low, high] with low < high, got {v!r}")
        self.continuous = {str(k): [float(v[0]), float(v[1])] for k, v in sorted(cont.items())}
        self.sigma0 = float(sigma0)
        self.protect = tuple(protect)
        self.population: list[tuple[float, dict]] = []
        self.cma: ReplayCMA | None = None
        self.generation = 0
        self.n_operator = {"crossover": 0, "node": 0, "subtree": 0, "fallback": 0}

    # ---- selection and variation ---------------------------------------------------------------
    def _tournament(self) -> dict:
        k = min(self.tournament, len(self.population))
        idx = self.rng.choice(len(self.population), size=k, replace=False)
        best = max(idx, key=lambda i: (self.population[int(i)][0], -int(i)))
        return self.population[int(best)][1]

    def _offspring(self) -> dict:
        validate, sample = self.space.validate, self.space.sample
        p1 = self._tournament()
        child = p1
        if self.rng.random() < self.p_crossover:
            c = gp.subtree_crossover(p1, self._tournament(), self.rng, validate, protect=self.protect)
            if c is not None:
                child, self.n_operator["crossover"] = c, self.n_operator["crossover"] + 1
        if self.rng.random() < self.p_node:
            c = gp.node_mutation(child, self.rng, validate, sample, protect=self.protect)
            if c is not None:
                child, self.n_operator["node"] = c, self.n_operator["node"] + 1
        if self.rng.random() < self.p_subtree:
            c = gp.subtree_mutation(child, self.rng, validate, sample, protect=self.protect)
            if c is not None:
                child, self.n_operator["subtree"] = c, self.n_operator["subtree"] + 1
        if canonical_json(child) == canonical_json(p1):  # never a clone of its parent
            c = gp.node_mutation(child, self.rng, validate, sample, protect=self.protect) or \
                gp.subtree_mutation(child, self.rng, validate, sample, protect=self.protect)
            if c is None:
                c = self.space.mutate(child, self.rng)
                self.n_operator["fallback"] += 1
            child = c
        return json.loads(canonical_json(child))

    def _apply_continuous(self, spec: dict, x: np.ndarray) -> dict:
        out = spec
        for (path, (lo, hi)), xi in zip(self.continuous.items(), x):
            val = round(lo + float(np.clip(xi, 0.0, 1.0)) * (hi - lo), 6)
            for p, node in gp.get_path(out, path):
                if gp.kind(node) == "leaf" and isinstance(node, (int, float)) and not isinstance(node, bool):
                    out = gp.put(out, p, int(round(val)) if isinstance(node, int) else val)
        try:
            self.space.validate(json.loads(canonical_json(out)))
            return out
        except ValueError:
            return spec

    # ---- ask / tell ------------------------------------------------------------------------------
    def ask(self, n: int) -> list[dict]:
        n = int(n)
        if not self.population:
            specs = [self.space.sample(self.rng) for _ in range(n)]
        else:
            specs = [self._offspring() for _ in range(n)]
        if self.continuous:
            if self.cma is None:
                self.cma = ReplayCMA(self.rng, [0.5] * len(self.continuous), self.sigma0, n,
                                     bounds=[0.0, 1.0]) if len(self.continuous) >= 2 else None
            if self.cma is not None:
                if n != self.cma.popsize:
                    raise ValueError(f"evo was set up with population {self.cma.popsize}; ask({n}) must match")
                specs = [self._apply_continuous(s, x) for s, x in zip(specs, self.cma.ask())]
        return specs

    def tell(self, specs, results):
        super().tell(specs, results)
        if self.cma is not None and self.cma._asked is not None:
            self.cma.tell(_minimised(results))
        size = len(self.population) or len(specs)
        old = sorted(self.population, key=lambda t: -t[0])[: self.elite]
        new = sorted(((fitness_of(r), json.loads(canonical_json(s))) for s, r in zip(specs, results)),
                     key=lambda t: -t[0])
        merged, seen = [], set()
        for f, s in old + new:
            h = spec_hash(s)
            if h not in seen:
                seen.add(h)
                merged.append((f, s))
        self.population = merged[:size]
        self.generation += 1

    def state_dict(self) -> dict:
        d = super().state_dict()
        d.update({"population": [[f if math.isfinite(f) else None, s] for f, s in self.population],
                  "cma": None if self.cma is None else self.cma.state_dict(), "generation": self.generation,
                  "n_operator": dict(self.n_operator)})
        return d

    def load_state_dict(self, d: dict) -> None:
        super().load_state_dict(d)
        self.population = [(-math.inf if f is None else float(f), s) for f, s in d["population"]]
        self.cma = None if d.get("cma") is None else ReplayCMA.from_state(self.rng, d["cma"])
        self.generation = int(d["generation"])
        self.n_operator = dict(d.get("n_operator", self.n_operator))
