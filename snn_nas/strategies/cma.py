"""The CMA-ES strategies (pycma, driven by the strategy's ``numpy.random.Generator``, never the global RNG).

``cmaes``
    :class:`CMAESStrategy`: CMA-ES over a continuous encoding of the space: the space must provide ``vector_dim``
    and ``decode(x) -> spec`` (the BioNAS spaces decode architecture logits with the DARTS derivation rule).
    Its state is JSON: the list of ``(RNG state before ask, fitness values)`` of each generation, rebuilt on load
    by replaying ask/tell with those RNG states (:class:`ReplayCMA`), which reproduces pycma's state exactly
    without pickling (loading a checkpoint never executes code). :class:`ReplayCMA` also drives the continuous
    part of ``evo`` (:mod:`snn_nas.strategies.evo`).
``eg_cma``
    :class:`CMAESLogits`: BioNAS-EG's persistent CMA-ES over a
    :class:`~snn_nas.bionas.engine_space.LogitSpace` of flattened architecture logits. A candidate spec is
    ``{"z": [float, ...]}``; ``tell`` hands ``-fitness`` to pycma (which minimises). The CMA state (mean,
    covariance, evolution paths, step size) persists across ``ask``/``tell`` rounds.

Strategies never train.
"""

from __future__ import annotations

import math

import numpy as np

from snn_nas.engine.space import SearchSpace
from snn_nas.engine.strategy import Strategy, fitness_of


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



class CMAESLogits(Strategy):
    """Persistent CMA-ES (pycma) on a :class:`LogitSpace`: ``ask(n)`` draws ``n`` points (``n`` defaults to the
    population size), ``tell`` updates mean, covariance and step size from their ranks.

    Its state is JSON, as :class:`ReplayCMA`'s: the start (``x0``, ``sigma0``, ``popsize``) and the log of what
    changed pycma's state (each ``ask`` with the RNG state before it, each ``tell``'s values, each
    :meth:`cap_sigma`), rebuilt on load by replaying the log, so loading never unpickles (never executes code)."""

    name = "eg_cma"

    def __init__(self, space: SearchSpace, rng: np.random.Generator, *, x0=None, sigma0: float = 0.5,
                 popsize: int | None = None, hof_size: int = 10):
        super().__init__(space, rng, hof_size=hof_size)
        x0 = np.zeros(space.dim) if x0 is None else np.asarray(x0, dtype=np.float64)
        if x0.shape != (space.dim,):
            raise ValueError(f"x0 has shape {x0.shape}; the space has dim {space.dim}")
        self._start = {"x0": [float(v) for v in x0], "sigma0": float(sigma0),
                       "popsize": None if not popsize else int(popsize)}
        self.es = self._new_es()
        self._pending: list[np.ndarray] = []
        self._log: list[dict] = []  # {"ask": n, "rng": state} | {"tell": [values]} | {"cap": sigma}

    def _new_es(self):
        import cma

        opts = {"seed": np.nan, "randn": self._randn, "verbose": -9, "verb_log": 0, "verb_disp": 0, "tolx": 0,
                "tolfun": 0, "tolfunhist": 0, "tolstagnation": 10**9}
        if self._start["popsize"]:
            opts["popsize"] = self._start["popsize"]
        return cma.CMAEvolutionStrategy(np.asarray(self._start["x0"], dtype=np.float64), self._start["sigma0"], opts)

    def _randn(self, *shape):
        return self.rng.standard_normal(shape)

    @property
    def popsize(self) -> int:
        return int(self.es.popsize)

    @property
    def sigma(self) -> float:
        return float(self.es.sigma)

    @property
    def mean(self) -> np.ndarray:
        return np.asarray(self.es.mean, dtype=np.float64)

    def cap_sigma(self, cap: float) -> None:
        """Cap the step size (EG-NAS schedule ``sigma_t <= max(1/(t+1), sigma_min)``)."""
        if self.es.sigma > cap:
            self.es.sigma = float(cap)
            self._log.append({"cap": float(cap)})

    def _ask(self, n: int | None) -> list[np.ndarray]:
        self._log.append({"ask": None if n is None else int(n), "rng": self.rng.bit_generator.state})
        X = self.es.ask(number=n)
        self._pending = [np.asarray(x, dtype=np.float64) for x in X]
        return self._pending

    def _tell(self, X: list[np.ndarray], values: list[float]) -> None:
        self.es.tell(X, values)
        self._log.append({"tell": [float(v) for v in values]})
        self._pending = []

    def ask(self, n: int | None = None) -> list[dict]:
        return [{"z": x.tolist()} for x in self._ask(int(n) if n else None)]

    def tell(self, specs: list[dict], results: list[dict]) -> None:
        super().tell(specs, results)
        X = [np.asarray(s["z"], dtype=np.float64) for s in specs]
        # failed candidates (fitness -inf) get the worst finite value so CMA ranks them last
        f = [-fitness_of(r) for r in results]
        worst = max([v for v in f if np.isfinite(v)], default=0.0)
        self._tell(X, [v if np.isfinite(v) else worst + 1.0 for v in f])

    def state_dict(self) -> dict:
        """JSON state: the RNG, hall of fame, the CMA-ES start and its ask/tell/cap log (no pickle)."""
        return {**super().state_dict(), "cma_start": dict(self._start), "cma_log": [dict(e) for e in self._log]}

    def load_state_dict(self, d: dict) -> None:
        super().load_state_dict(d)
        if "cma_log" not in d:
            raise ValueError("this eg_cma state has no 'cma_log' (a checkpoint written before the CMA state became "
                             "JSON, which loading would have to unpickle): start the search afresh")
        saved = self.rng.bit_generator.state
        self._start = dict(d["cma_start"])
        self.es = self._new_es()
        self._log = []
        X: list[np.ndarray] = []
        for event in d["cma_log"]:  # replay: the same RNG states give the same points and the same CMA state
            if "cap" in event:
                self.cap_sigma(float(event["cap"]))
            elif "ask" in event:
                self.rng.bit_generator.state = event["rng"]
                X = self._ask(event["ask"])
            else:
                self._tell(X, [float(v) for v in event["tell"]])
        self.rng.bit_generator.state = saved
        # a log that ends with an ask (a checkpoint between ask and tell) leaves those points pending, as they were
