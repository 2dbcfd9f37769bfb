"""Multi-objective NSGA-II through pymoo's ask/tell API (strategy ``nsga2``)."""

from __future__ import annotations

import math

import numpy as np

from snn_nas.engine.pareto import nondominated_rank
from snn_nas.engine.space import SearchSpace, canonical_json, spec_hash
from snn_nas.engine.strategy import Strategy, copy_spec, fitness_of, json_float


def _objectives(result: dict, n_obj: int) -> list[float]:
    """Objectives to minimise: ``result['objectives']`` or ``[-fitness, 0...]``; failed -> +inf."""
    f = fitness_of(result)
    if not math.isfinite(f):
        return [math.inf] * n_obj
    obj = result.get("objectives")
    if obj is None:
        obj = [-f] + [0.0] * (n_obj - 1)
    obj = [float(o) for o in obj]
    if len(obj) != n_obj:
        raise ValueError(f"result has {len(obj)} objectives, the strategy was built with n_obj={n_obj}")
    return [o if math.isfinite(o) else math.inf for o in obj]


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
        return [copy_spec(x[0]) for x in self._pending.get("X")]

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
        self.population = [(list(map(float, f)), copy_spec(x[0])) for x, f in zip(pop.get("X"), pop.get("F"))]

    @property
    def pareto_front(self) -> list[tuple[list[float], dict]]:
        """Non-dominated members of the current population."""
        if not self.population:
            return []
        rank = nondominated_rank(np.array([f for f, _ in self.population]))
        return [p for p, r in zip(self.population, rank) if r == 0]

    def state_dict(self) -> dict:
        d = super().state_dict()
        d["pop_size"] = self.pop_size
        d["population"] = [[[json_float(v) for v in f], s] for f, s in self.population]
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
