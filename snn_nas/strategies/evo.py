"""EvoSearch strategies for the shared engine (``snn_nas.engine.STRATEGIES``).

``cmaes``
    CMA-ES (pycma) over a continuous encoding of the space: the space must provide ``vector_dim`` and
    ``decode(x) -> spec`` (the BioNAS spaces decode architecture logits with the DARTS derivation rule).
``evo``
    EvoSearch (the blog post in the seeds): genetic programming over architecture trees (subtree
    crossover, node mutation, subtree mutation; :mod:`snn_nas.strategies.gp`) with tournament selection of size
    4 and a hall of fame of 10, plus CMA-ES for the continuous parameters named by ``continuous``
    (``{dotted.path: [low, high]}``, ``*`` matches every list item / key; default: the space's
    ``continuous`` attribute, if any). Works on any space whose specs are JSON trees and whose
    ``validate`` rejects malformed children: the BioNAS spaces and the MSE (SNN) space alike.

Both strategies never train; their state (RNG, population, hall of fame, CMA-ES) is JSON. The CMA-ES
state is stored as the list of ``(RNG state before ask, fitness values)`` of each generation and rebuilt
on load by replaying ask/tell with those RNG states, which reproduces pycma's state exactly without
pickling (loading a checkpoint never executes code).
"""

from __future__ import annotations

import json
import math

import numpy as np

from snn_nas.engine.space import canonical_json, spec_hash
from snn_nas.engine.strategy import STRATEGIES, Strategy

from . import gp


class ReplayCMA:
    """pycma ``CMAEvolutionStrategy`` driven by a ``numpy.random.Generator``, with a JSON state."""

    def __init__(self, rng: np.random.Generator, x0, sigma0: float, popsize: int, bounds=None):
        self.rng = rng
        self.x0 = [float(v) for v in x0]
        self.sigma0 = float(sigma0)
        self.popsize = int(popsize)
        self.bounds = bounds
        self.history: list[dict] = []
        self._asked = None
        self._rng_before = None
        self.es = self._new()

    def _new(self):
        import cma

        if self.popsize < 2:
            raise ValueError(f"CMA-ES needs a population of at least 2, got {self.popsize}")
        opts = {"seed": np.nan, "randn": lambda *shape: self.rng.standard_normal(shape), "popsize": self.popsize,
                "verbose": -9, "verb_log": 0, "verb_disp": 0, "tolx": 0, "tolfun": 0, "tolfunhist": 0,
                "tolflatfitness": 10**9, "tolstagnation": 10**9}
        if self.bounds is not None:
            opts["bounds"] = self.bounds
        x0 = np.asarray(self.x0, dtype=np.float64)
        if x0.size == 1:  # pycma refuses 1-D problems; pad with a dummy coordinate
            raise ValueError("CMA-ES needs at least 2 continuous dimensions")
        return cma.CMAEvolutionStrategy(x0, self.sigma0, opts)

    def ask(self) -> list[np.ndarray]:
        self._rng_before = self.rng.bit_generator.state
        self._asked = [np.asarray(x, dtype=np.float64) for x in self.es.ask()]
        return self._asked

    def tell(self, f: list[float]) -> None:
        if self._asked is None or len(f) != len(self._asked):
            raise ValueError("CMA-ES tell must follow ask with one value per asked solution")
        self.es.tell(self._asked, [float(v) for v in f])
        self.history.append({"rng": self._rng_before, "f": [float(v) for v in f]})
        self._asked = None

    @property
    def mean(self) -> np.ndarray:
        return np.asarray(self.es.mean, dtype=np.float64)

    def state_dict(self) -> dict:
        return {"x0": self.x0, "sigma0": self.sigma0, "popsize": self.popsize, "bounds": self.bounds,
                "history": self.history}

    @classmethod
    def from_state(cls, rng: np.random.Generator, d: dict) -> ReplayCMA:
        saved = rng.bit_generator.state
        obj = cls(rng, d["x0"], d["sigma0"], d["popsize"], d.get("bounds"))
        for h in d["history"]:
            rng.bit_generator.state = h["rng"]
            obj.ask()
            obj.tell(h["f"])
        rng.bit_generator.state = saved
        return obj


def _minimised(results: list[dict]) -> list[float]:
    """Fitness (maximised, NaN = failed) -> CMA values (minimised); failures rank worst."""
    f = []
    for r in results:
        try:
            v = float(r.get("fitness"))
        except (TypeError, ValueError):
            v = math.nan
        f.append(-v if math.isfinite(v) else math.nan)
    finite = [v for v in f if math.isfinite(v)]
    worst = (max(finite) + 1.0 + abs(max(finite))) if finite else 0.0
    return [v if math.isfinite(v) else worst for v in f]


def _fitness(r: dict) -> float:
    try:
        v = float(r.get("fitness"))
    except (TypeError, ValueError):
        return -math.inf
    return v if math.isfinite(v) else -math.inf


@STRATEGIES.register("cmaes")
class CMAESStrategy(Strategy):
    """CMA-ES over ``space.decode``'s continuous encoding (one pycma instance for the whole search)."""

    name = "cmaes"

    def __init__(self, space, rng, *, sigma0: float = 0.5, x0=None, hof_size: int = 10, **options):
        super().__init__(space, rng, hof_size=hof_size, **options)
        if not hasattr(space, "vector_dim") or not callable(getattr(space, "decode", None)):
            raise ValueError(f"strategy 'cmaes' needs a space with vector_dim and decode(x); '{space.name}' has "
                             "none (use strategy 'evo' for tree-structured spaces)")
        self.dim = int(space.vector_dim)
        self.x0 = [0.0] * self.dim if x0 is None else [float(v) for v in x0]
        if len(self.x0) != self.dim:
            raise ValueError(f"x0 has {len(self.x0)} entries, the space has vector_dim {self.dim}")
        self.sigma0 = float(sigma0)
        self.cma: ReplayCMA | None = None

    def ask(self, n: int) -> list[dict]:
        if self.cma is None:
            self.cma = ReplayCMA(self.rng, self.x0, self.sigma0, int(n))
        elif int(n) != self.cma.popsize:
            raise ValueError(f"cmaes was set up with population {self.cma.popsize}; ask({n}) must use the same size")
        return [self.space.decode(x) for x in self.cma.ask()]

    def tell(self, specs, results):
        super().tell(specs, results)
        self.cma.tell(_minimised(results))

    @property
    def mean_spec(self) -> dict | None:
        return None if self.cma is None else self.space.decode(self.cma.mean)

    def state_dict(self) -> dict:
        d = super().state_dict()
        d["cma"] = None if self.cma is None else self.cma.state_dict()
        return d

    def load_state_dict(self, d: dict) -> None:
        super().load_state_dict(d)
        self.cma = None if d.get("cma") is None else ReplayCMA.from_state(self.rng, d["cma"])


@STRATEGIES.register("evo")
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
        new = sorted(((_fitness(r), json.loads(canonical_json(s))) for s, r in zip(specs, results)),
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
