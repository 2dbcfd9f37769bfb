"""The ask/tell strategy base class. A strategy proposes specs and learns from scores; it never trains.

Contract (cf. pycma's ``OOOptimizer`` and NNI's strategies):

* ``ask(n) -> list[dict]``: ``n`` specs to evaluate (deterministic given the strategy's state),
* ``tell(specs, results)``: each result has ``fitness`` (higher is better; ``nan`` for a failed
  candidate) and optionally ``objectives`` (list of floats, all minimised) for multi-objective search,
* ``state_dict()`` / ``load_state_dict(d)``: JSON-serialisable state including the RNG
  (``rng.bit_generator.state``), so a resumed search continues exactly where it stopped,
* ``stopped``: True when the strategy has nothing more to propose,
* ``hall_of_fame``: the best ``(fitness, spec)`` pairs seen so far (best first).

The strategies themselves live in :mod:`snn_nas.strategies` (one module per family), which fills its
``STRATEGIES`` registry in one place; build one as ``STRATEGIES.get(name)(space, rng, **options)``. This module
also holds the helpers they share (:func:`fitness_of`, :func:`copy_spec`, :func:`json_float`,
:func:`from_json_float`).
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from .space import SearchSpace, canonical_json, spec_hash


def copy_spec(spec: dict) -> dict:
    """A deep copy of a JSON spec (through its canonical JSON)."""
    return json.loads(canonical_json(spec))


def fitness_of(result: dict) -> float:
    """Fitness as a float; NaN/None/missing (failed) becomes -inf so it always loses."""
    f = result.get("fitness") if isinstance(result, dict) else None
    try:
        f = float(f)
    except (TypeError, ValueError):
        return -math.inf
    return -math.inf if math.isnan(f) else f


def json_float(x: float) -> float | None:
    """A float for JSON: non-finite (failed) becomes ``None``."""
    return None if (x is None or not math.isfinite(x)) else float(x)


def from_json_float(x: Any) -> float:
    """The inverse of :func:`json_float`: ``None`` becomes ``-inf``."""
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
            f = fitness_of(r)
            h = spec_hash(s)
            if not math.isfinite(f) or h in seen:
                continue
            seen.add(h)
            self._items.append((f, h, copy_spec(s)))
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
    asynchronous = False  # True: may be told one result at a time in any order (asynchronous multi-fidelity, ASHA)

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
