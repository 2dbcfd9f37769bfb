"""The generational genetic algorithm with tournament selection and elitism (strategy ``ga``)."""

from __future__ import annotations

from snn_nas.engine.space import canonical_json, spec_hash
from snn_nas.engine.strategy import Strategy, copy_spec, fitness_of, from_json_float, json_float


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
                child = copy_spec(p1)
            if self.rng.random() < self.p_mutation or canonical_json(child) == canonical_json(p1):
                child = self.space.mutate(child, self.rng)
            out.append(child)
        return out

    def tell(self, specs: list[dict], results: list[dict]) -> None:
        super().tell(specs, results)
        size = len(specs)
        old = sorted(self.population, key=lambda t: -t[0])[: self.elite]
        new = [(fitness_of(r), copy_spec(s)) for s, r in zip(specs, results)]
        merged, seen = [], set()
        for f, s in old + sorted(new, key=lambda t: -t[0]):
            h = spec_hash(s)
            if h not in seen:
                seen.add(h)
                merged.append((f, s))
        self.population = merged[:size]

    def state_dict(self) -> dict:
        d = super().state_dict()
        d["population"] = [[json_float(f), s] for f, s in self.population]
        return d

    def load_state_dict(self, d: dict) -> None:
        super().load_state_dict(d)
        self.population = [(from_json_float(f), s) for f, s in d["population"]]
