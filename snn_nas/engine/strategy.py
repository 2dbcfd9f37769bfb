"""Ask/tell search strategies. A strategy proposes specs and learns from scores; it never trains.

Contract (cf. pycma's ``OOOptimizer`` and NNI's strategies):

* ``ask(n) -> list[dict]``: ``n`` specs to evaluate (deterministic given the strategy's state),
* ``tell(specs, results)``: each result has ``fitness`` (higher is better; ``nan`` for a failed
  candidate) and optionally ``objectives`` (list of floats, all minimised) for multi-objective search,
* ``state_dict()`` / ``load_state_dict(d)``: JSON-serialisable state including the RNG
  (``rng.bit_generator.state``), so a resumed search continues exactly where it stopped,
* ``stopped``: True when the strategy has nothing more to propose,
* ``hall_of_fame``: the best ``(fitness, spec)`` pairs seen so far (best first).

Strategies are registered in :data:`STRATEGIES` and built as ``STRATEGIES.get(name)(space, rng, **options)``.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from neurosynth.registry import Registry

from .space import SearchSpace, canonical_json, spec_hash

STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


def _copy(spec: dict) -> dict:
    return json.loads(canonical_json(spec))


def _fit(result: dict) -> float:
    """Fitness as a float; NaN/None/missing (failed) becomes -inf so it always loses."""
    f = result.get("fitness") if isinstance(result, dict) else None
    try:
        f = float(f)
    except (TypeError, ValueError):
        return -math.inf
    return -math.inf if math.isnan(f) else f


def _json_float(x: float) -> float | None:
    return None if (x is None or not math.isfinite(x)) else float(x)


def _from_json_float(x: Any) -> float:
    return -math.inf if x is None else float(x)


class HallOfFame:
    """The ``size`` best distinct specs seen so far (by fitness, ties broken by first seen)."""

    def __init__(self, size: int = 10):
        if size < 1:
            raise ValueError(f"hall of fame size must be >= 1, got {size}")
        self.size = size
        self._items: list[tuple[float, str, dict]] = []  # (fitness, hash, spec), best first

    def update(self, specs: list[dict], results: list[dict]) -> None:
        seen = {h for _, h, _ in self._items}
        for s, r in zip(specs, results):
            f = _fit(r)
            h = spec_hash(s)
            if not math.isfinite(f) or h in seen:
                continue
            seen.add(h)
            self._items.append((f, h, _copy(s)))
        self._items.sort(key=lambda t: -t[0])  # stable: earlier entries win ties
        del self._items[self.size :]

    def items(self) -> list[tuple[float, dict]]:
        return [(f, s) for f, _, s in self._items]

    def state_dict(self) -> dict:
        return {"size": self.size, "items": [[f, h, s] for f, h, s in self._items]}

    def load_state_dict(self, d: dict) -> None:
        self.size = int(d["size"])
        self._items = [(float(f), str(h), s) for f, h, s in d["items"]]


class Strategy(ABC):
    """Base class. Subclasses implement ``ask``/``tell`` and extend ``state_dict``/``load_state_dict``."""

    name = "strategy"

    def __init__(self, space: SearchSpace, rng: np.random.Generator, *, hof_size: int = 10, **options):
        if options:
            raise ValueError(f"unknown options for strategy '{self.name}': {sorted(options)}")
        if not isinstance(rng, np.random.Generator):
            raise ValueError("rng must be a numpy.random.Generator (e.g. np.random.default_rng(seed))")
        self.space = space
        self.rng = rng
        self.hof = HallOfFame(hof_size)
        self.n_told = 0

    @abstractmethod
    def ask(self, n: int) -> list[dict]: ...

    def tell(self, specs: list[dict], results: list[dict]) -> None:
        if len(specs) != len(results):
            raise ValueError(f"tell got {len(specs)} specs but {len(results)} results")
        self.hof.update(specs, results)
        self.n_told += len(specs)

    @property
    def stopped(self) -> bool:
        return False

    @property
    def hall_of_fame(self) -> list[tuple[float, dict]]:
        return self.hof.items()

    def state_dict(self) -> dict:
        return {"strategy": self.name, "rng": self.rng.bit_generator.state, "hof": self.hof.state_dict(),
                "n_told": self.n_told}

    def load_state_dict(self, d: dict) -> None:
        if d.get("strategy") != self.name:
            raise ValueError(f"state is for strategy '{d.get('strategy')}', not '{self.name}'")
        self.rng.bit_generator.state = d["rng"]
        self.hof.load_state_dict(d["hof"])
        self.n_told = int(d["n_told"])


@STRATEGIES.register("random")
class RandomSearch(Strategy):
    """Random search: every candidate is an independent ``space.sample(rng)``. The baseline."""

    name = "random"

    def ask(self, n: int) -> list[dict]:
        return [self.space.sample(self.rng) for _ in range(int(n))]


@STRATEGIES.register("ga")
class GeneticAlgorithm(Strategy):
    """Generational GA with elitism.

    Parents are picked by tournament selection (``tournament`` random entrants, the fittest wins);
    a child is ``space.crossover(p1, p2)`` with probability ``p_crossover`` (else a copy of ``p1``),
    then ``space.mutate`` with probability ``p_mutation`` (always mutated if it equals a parent, so a
    child is rarely a clone). The next population is the ``elite`` best of the old population plus the
    best of the offspring. Failed candidates (fitness NaN) rank last.
    """

    name = "ga"

    def __init__(self, space, rng, *, tournament: int = 4, p_crossover: float = 0.9, p_mutation: float = 0.8,
                 elite: int = 2, hof_size: int = 10, **options):
        super().__init__(space, rng, hof_size=hof_size, **options)
        if tournament < 1:
            raise ValueError(f"tournament size must be >= 1, got {tournament}")
        if not (0 <= p_crossover <= 1 and 0 <= p_mutation <= 1):
            raise ValueError("p_crossover and p_mutation must lie in [0, 1]")
        self.tournament, self.p_crossover, self.p_mutation, self.elite = tournament, p_crossover, p_mutation, elite
        self.population: list[tuple[float, dict]] = []  # (fitness, spec) of the current parents

    def _select(self) -> dict:
        k = min(self.tournament, len(self.population))
        idx = self.rng.choice(len(self.population), size=k, replace=False)
        best = max(idx, key=lambda i: (self.population[i][0], -i))
        return self.population[int(best)][1]

    def ask(self, n: int) -> list[dict]:
        if not self.population:
            return [self.space.sample(self.rng) for _ in range(int(n))]
        out = []
        for _ in range(int(n)):
            p1 = self._select()
            if self.rng.random() < self.p_crossover:
                child = self.space.crossover(p1, self._select(), self.rng)
            else:
                child = _copy(p1)
            if self.rng.random() < self.p_mutation or canonical_json(child) == canonical_json(p1):
                child = self.space.mutate(child, self.rng)
            out.append(child)
        return out

    def tell(self, specs: list[dict], results: list[dict]) -> None:
        super().tell(specs, results)
        size = len(specs)
        old = sorted(self.population, key=lambda t: -t[0])[: self.elite]
        new = [(_fit(r), _copy(s)) for s, r in zip(specs, results)]
        merged, seen = [], set()
        for f, s in old + sorted(new, key=lambda t: -t[0]):
            h = spec_hash(s)
            if h not in seen:
                seen.add(h)
                merged.append((f, s))
        self.population = merged[:size]

    def state_dict(self) -> dict:
        d = super().state_dict()
        d["population"] = [[_json_float(f), s] for f, s in self.population]
        return d

    def load_state_dict(self, d: dict) -> None:
        super().load_state_dict(d)
        self.population = [(_from_json_float(f), s) for f, s in d["population"]]


def _objectives(result: dict, n_obj: int) -> list[float]:
    """Objectives to minimise: ``result['objectives']`` or ``[-fitness, 0...]``; failed -> +inf."""
    f = _fit(result)
    if not math.isfinite(f):
        return [math.inf] * n_obj
    obj = result.get("objectives")
    if obj is None:
        obj = [-f] + [0.0] * (n_obj - 1)
    obj = [float(o) for o in obj]
    if len(obj) != n_obj:
        raise ValueError(f"result has {len(obj)} objectives, the strategy was built with n_obj={n_obj}")
    return [o if math.isfinite(o) else math.inf for o in obj]


@STRATEGIES.register("nsga2")
class NSGA2(Strategy):
    """Multi-objective NSGA-II (non-dominated sorting + crowding distance) through pymoo's ask/tell API.

    Candidates are pymoo individuals whose single variable is the spec dict; sampling, crossover and
    mutation call the space's operators; duplicates are eliminated by spec hash. Objectives (all
    minimised) come from ``result['objectives']`` (e.g. ``[-fitness, synops]``).
    pymoo's random state *is* this strategy's ``rng``, so the run is reproducible and resumable.
    """

    name = "nsga2"

    def __init__(self, space, rng, *, n_obj: int = 2, hof_size: int = 10, **options):
        super().__init__(space, rng, hof_size=hof_size, **options)
        try:
            import pymoo  # noqa: F401
        except ImportError as e:  # pragma: no cover
            from neurosynth.errors import MissingExtraError

            raise MissingExtraError("pymoo", "nas", "the nsga2 strategy") from e
        self.n_obj = int(n_obj)
        self.algorithm = None
        self.pop_size = None
        self._pending = None
        self.population: list[tuple[list[float], dict]] = []

    def _setup(self, n: int, initial=None) -> None:
        from pymoo.algorithms.moo.nsga2 import NSGA2 as _NSGA2
        from pymoo.core.problem import Problem

        space = self.space
        ops = _pymoo_operators(space)
        problem = Problem(n_var=1, n_obj=self.n_obj, vtype=object)
        self.algorithm = _NSGA2(pop_size=n, n_offsprings=n, sampling=initial if initial is not None else ops[0],
                                crossover=ops[1], mutation=ops[2], eliminate_duplicates=ops[3])
        self.algorithm.setup(problem, termination=("n_gen", 10**9), verbose=False)
        self.algorithm.random_state = self.rng
        self.pop_size = n

    def ask(self, n: int) -> list[dict]:
        if self.algorithm is None:
            self._setup(int(n))
        elif int(n) != self.pop_size:
            raise ValueError(f"nsga2 was set up with population {self.pop_size}; ask({n}) must use the same size")
        self._pending = self.algorithm.ask()
        return [_copy(x[0]) for x in self._pending.get("X")]

    def tell(self, specs: list[dict], results: list[dict]) -> None:
        super().tell(specs, results)
        if self._pending is None or len(self._pending) != len(specs):
            raise ValueError("nsga2.tell must follow ask with the same candidates")
        F = np.array([_objectives(r, self.n_obj) for r in results], dtype=float)
        self._pending.set("F", F)
        self.algorithm.tell(infills=self._pending)
        self._pending = None
        self._sync_population()

    def _sync_population(self) -> None:
        pop = self.algorithm.pop
        self.population = [(list(map(float, f)), _copy(x[0])) for x, f in zip(pop.get("X"), pop.get("F"))]

    @property
    def pareto_front(self) -> list[tuple[list[float], dict]]:
        """Non-dominated members of the current population."""
        from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

        if not self.population:
            return []
        F = np.array([f for f, _ in self.population])
        front = NonDominatedSorting().do(F, only_non_dominated_front=True)
        return [self.population[i] for i in sorted(front)]

    def state_dict(self) -> dict:
        d = super().state_dict()
        d["pop_size"] = self.pop_size
        d["population"] = [[[_json_float(v) for v in f], s] for f, s in self.population]
        return d

    def load_state_dict(self, d: dict) -> None:
        from pymoo.core.population import Population

        super().load_state_dict(d)
        self.population = [([(math.inf if v is None else float(v)) for v in f], s) for f, s in d["population"]]
        if d.get("pop_size") is None or not self.population:
            self.algorithm = None
            return
        # Rebuild pymoo's state: seed it with the stored population, replay its (already known)
        # objectives through survival, then restore the stored order and our RNG state.
        X = np.empty((len(self.population), 1), dtype=object)
        for i, (_, s) in enumerate(self.population):
            X[i, 0] = s
        saved_rng = self.rng.bit_generator.state
        self._setup(int(d["pop_size"]), initial=Population.new(X=X))
        pop = self.algorithm.ask()
        by_hash = {spec_hash(s): f for f, s in self.population}
        pop.set("F", np.array([by_hash[spec_hash(x[0])] for x in pop.get("X")], dtype=float))
        self.algorithm.tell(infills=pop)
        order = {spec_hash(s): i for i, (_, s) in enumerate(self.population)}
        cur = self.algorithm.pop
        idx = sorted(range(len(cur)), key=lambda i: order.get(spec_hash(cur[i].X[0]), len(order)))
        self.algorithm.pop = cur[idx]
        self.rng.bit_generator.state = saved_rng
        self.algorithm.random_state = self.rng
        self._sync_population()


def _pymoo_operators(space: SearchSpace):
    """pymoo Sampling / Crossover / Mutation / duplicate elimination that delegate to ``space``."""
    from pymoo.core.crossover import Crossover
    from pymoo.core.duplicate import ElementwiseDuplicateElimination
    from pymoo.core.mutation import Mutation
    from pymoo.core.sampling import Sampling

    class _Sampling(Sampling):
        def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
            X = np.empty((n_samples, 1), dtype=object)
            for i in range(n_samples):
                X[i, 0] = space.sample(random_state)
            return X

    class _Crossover(Crossover):
        def __init__(self):
            super().__init__(n_parents=2, n_offsprings=1, prob=0.9)

        def _do(self, problem, X, *args, random_state=None, **kwargs):
            _, n_matings, _ = X.shape
            Y = np.empty((1, n_matings, 1), dtype=object)
            for k in range(n_matings):
                Y[0, k, 0] = space.crossover(X[0, k, 0], X[1, k, 0], random_state)
            return Y

    class _Mutation(Mutation):
        def _do(self, problem, X, *args, random_state=None, **kwargs):
            for i in range(len(X)):
                X[i, 0] = space.mutate(X[i, 0], random_state)
            return X

    class _Dups(ElementwiseDuplicateElimination):
        def is_equal(self, a, b):
            return canonical_json(a.X[0]) == canonical_json(b.X[0])

    return _Sampling(), _Crossover(), _Mutation(prob=0.9), _Dups()
