"""BioNAS-EG's CMA-ES as an engine :class:`~snn_nas.engine.strategy.Strategy` (ask/tell), over a
:class:`LogitSpace` of flattened architecture logits.

A candidate spec is ``{"z": [float, ...]}`` (one point of the logit space); ``tell`` takes the engine's
results (``fitness``, higher is better) and hands ``-fitness`` to pycma (which minimises). The CMA state
(mean, covariance, evolution paths, step size) persists across ``ask``/``tell`` rounds, and samples come from
the strategy's ``numpy.random.Generator`` (pycma option ``randn``), never from the global RNG.
"""

from __future__ import annotations

import base64
import pickle

import numpy as np

from ..engine.space import SearchSpace
from ..engine.strategy import STRATEGIES, Strategy, _fit


class LogitSpace(SearchSpace):
    """Real vectors of length ``dim`` (the flattened logits of a BioNAS supernet)."""

    name = "logits"

    def __init__(self, dim: int, scale: float = 1.0):
        if int(dim) < 1:
            raise ValueError(f"dim must be >= 1; got {dim}")
        self.dim, self.scale = int(dim), float(scale)

    def sample(self, rng: np.random.Generator) -> dict:
        return {"z": (self.scale * rng.standard_normal(self.dim)).tolist()}

    def validate(self, spec: dict) -> dict:
        z = spec.get("z") if isinstance(spec, dict) else None
        if not isinstance(z, list) or len(z) != self.dim or not all(isinstance(v, (int, float)) for v in z):
            raise ValueError(f"a logit spec is {{'z': [{self.dim} floats]}}; got {str(spec)[:80]}")
        return spec

    def describe(self) -> dict:
        return {"name": self.name, "dim": self.dim}


@STRATEGIES.register("eg_cma")
class CMAESLogits(Strategy):
    """Persistent CMA-ES (pycma) on a :class:`LogitSpace`: ``ask(n)`` draws ``n`` points (``n`` defaults to the
    population size), ``tell`` updates mean, covariance and step size from their ranks."""

    name = "eg_cma"

    def __init__(self, space: LogitSpace, rng: np.random.Generator, *, x0=None, sigma0: float = 0.5,
                 popsize: int | None = None, hof_size: int = 10):
        super().__init__(space, rng, hof_size=hof_size)
        import cma

        x0 = np.zeros(space.dim) if x0 is None else np.asarray(x0, dtype=np.float64)
        if x0.shape != (space.dim,):
            raise ValueError(f"x0 has shape {x0.shape}; the space has dim {space.dim}")
        opts = {"seed": np.nan, "randn": self._randn, "verbose": -9, "verb_log": 0, "verb_disp": 0, "tolx": 0,
                "tolfun": 0, "tolfunhist": 0, "tolstagnation": 10**9}
        if popsize:
            opts["popsize"] = int(popsize)
        self.es = cma.CMAEvolutionStrategy(x0, float(sigma0), opts)
        self._pending: list[np.ndarray] = []

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

    def ask(self, n: int | None = None) -> list[dict]:
        X = self.es.ask(number=int(n) if n else None)
        self._pending = [np.asarray(x, dtype=np.float64) for x in X]
        return [{"z": x.tolist()} for x in self._pending]

    def tell(self, specs: list[dict], results: list[dict]) -> None:
        super().tell(specs, results)
        X = [np.asarray(s["z"], dtype=np.float64) for s in specs]
        # failed candidates (fitness -inf) get the worst finite value so CMA ranks them last
        f = [-_fit(r) for r in results]
        worst = max([v for v in f if np.isfinite(v)], default=0.0)
        self.es.tell(X, [v if np.isfinite(v) else worst + 1.0 for v in f])
        self._pending = []

    def state_dict(self) -> dict:
        """JSON state: the RNG, hall of fame and the pickled CMA-ES (base64; its sampler is re-attached)."""
        randn = self.es.opts["randn"]
        self.es.opts["randn"] = None  # a bound method of this strategy: not part of the CMA state
        try:
            es = pickle.dumps(self.es)
        finally:
            self.es.opts["randn"] = randn
        return {**super().state_dict(), "es": base64.b64encode(es).decode("ascii")}

    def load_state_dict(self, d: dict) -> None:
        super().load_state_dict(d)
        self.es = pickle.loads(base64.b64decode(d["es"]))
        self.es.opts["randn"] = self._randn
