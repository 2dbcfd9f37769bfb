"""Search spaces are data: a space samples JSON-serialisable architecture specs with an explicit RNG.

A :class:`SearchSpace` never builds or trains a model. It knows how to

* ``sample(rng)`` a random spec (a plain ``dict`` that survives ``json.dumps``),
* ``validate(spec)`` a spec loaded from disk (raises ``ValueError`` naming the bad field),
* optionally ``mutate(spec, rng)`` and ``crossover(a, b, rng)`` for evolutionary strategies,
* optionally ``cost(spec)`` (e.g. parameter count) for multi-objective strategies.

``canonical_json`` and ``spec_hash`` give every spec one identity: the archive keys on the hash, so an
architecture is never evaluated twice, and each candidate's seed is derived from it.
"""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from typing import Any

import numpy as np


def canonical_json(spec: Any) -> str:
    """JSON with sorted keys and no whitespace: equal specs give equal strings.

    Floats are written with ``repr`` precision; NaN/inf are rejected (not valid JSON).
    """
    try:
        return json.dumps(spec, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"spec is not JSON-serialisable ({e}); specs must hold only dict/list/str/number/bool") from e


def spec_hash(spec: Any) -> str:
    """First 16 hex characters of the sha256 of :func:`canonical_json`."""
    return hashlib.sha256(canonical_json(spec).encode("utf-8")).hexdigest()[:16]


def derive_seed(run_seed: int, h: str) -> int:
    """Per-candidate seed from the run seed and the spec hash (independent of evaluation order/worker)."""
    d = hashlib.sha256(f"{int(run_seed)}:{h}".encode()).hexdigest()
    return int(d[:8], 16)  # < 2**32, valid for numpy and torch


class SearchSpace(ABC):
    """Abstract search space. Subclasses set ``name`` and implement ``sample`` and ``validate``."""

    name: str = "space"

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> dict:
        """A random spec drawn with ``rng`` only (never the global RNG)."""

    @abstractmethod
    def validate(self, spec: dict) -> dict:
        """Check a spec; return it (possibly normalised). Raise ``ValueError`` naming the bad field."""

    # ---- optional operators used by evolutionary strategies ----------------------------------------
    def mutate(self, spec: dict, rng: np.random.Generator) -> dict:
        """A mutated copy of ``spec``. Default: a fresh sample (spaces should override)."""
        return self.sample(rng)

    def crossover(self, a: dict, b: dict, rng: np.random.Generator) -> dict:
        """A child of ``a`` and ``b``. Default: a copy of one parent chosen at random."""
        return json.loads(canonical_json(a if rng.random() < 0.5 else b))

    def cost(self, spec: dict) -> float:
        """A cost to minimise next to the fitness (parameters, SynOps...). Default: 0."""
        return 0.0

    def describe(self) -> dict:
        """JSON description of the space (written to the run manifest)."""
        return {"name": self.name}


# ---------------------------------------------------------------------------------------------------------
# A tiny data-driven space: every spec is {"genes": {name: value}} drawn from a JSON description.
# Used by tests and as the simplest example of "a space is data".
# ---------------------------------------------------------------------------------------------------------
class GridSpace(SearchSpace):
    """Independent categorical/integer/float genes described by a JSON-able dict.

    ``GridSpace({"width": {"choices": [8, 16, 32]}, "depth": {"int": [1, 4]}, "lr": {"float": [0.0, 1.0]}})``
    samples specs ``{"space": "grid", "genes": {"width": 16, "depth": 3, "lr": 0.42}}``.
    """

    name = "grid"
    _KINDS = ("choices", "int", "float")

    def __init__(self, genes: dict[str, dict]):
        if not isinstance(genes, dict) or not genes:
            raise ValueError("GridSpace needs a non-empty dict of genes, e.g. {'width': {'choices': [8, 16]}}")
        for name, g in genes.items():
            if not isinstance(g, dict) or len(g) != 1 or next(iter(g)) not in self._KINDS:
                raise ValueError(f"gene '{name}': expected one of {self._KINDS} as its only key, got {g!r}")
            kind, val = next(iter(g.items()))
            if kind == "choices" and (not isinstance(val, list) or not val):
                raise ValueError(f"gene '{name}': 'choices' must be a non-empty list")
            if kind in ("int", "float") and (not isinstance(val, list) or len(val) != 2 or val[0] > val[1]):
                raise ValueError(f"gene '{name}': '{kind}' must be [low, high] with low <= high")
        self.genes = json.loads(canonical_json(genes))

    def _draw(self, name: str, rng: np.random.Generator):
        kind, val = next(iter(self.genes[name].items()))
        if kind == "choices":
            return val[int(rng.integers(len(val)))]
        if kind == "int":
            return int(rng.integers(val[0], val[1] + 1))
        return float(round(rng.uniform(val[0], val[1]), 6))

    def sample(self, rng: np.random.Generator) -> dict:
        return {"space": self.name, "genes": {n: self._draw(n, rng) for n in sorted(self.genes)}}

    def validate(self, spec: dict) -> dict:
        if not isinstance(spec, dict) or not isinstance(spec.get("genes"), dict):
            raise ValueError("spec must be a dict with a 'genes' dict")
        got = spec["genes"]
        missing = sorted(set(self.genes) - set(got))
        extra = sorted(set(got) - set(self.genes))
        if missing or extra:
            raise ValueError(f"spec genes mismatch: missing {missing}, unknown {extra}")
        for n, v in got.items():
            kind, val = next(iter(self.genes[n].items()))
            if kind == "choices" and v not in val:
                raise ValueError(f"gene '{n}' = {v!r} is not one of {val}")
            if kind in ("int", "float"):
                if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and math.isnan(v)):
                    raise ValueError(f"gene '{n}' = {v!r} is not a number")
                if kind == "int" and not isinstance(v, int):
                    raise ValueError(f"gene '{n}' = {v!r} must be an integer")
                if not val[0] <= v <= val[1]:
                    raise ValueError(f"gene '{n}' = {v!r} is outside [{val[0]}, {val[1]}]")
        return spec

    def mutate(self, spec: dict, rng: np.random.Generator) -> dict:
        genes = dict(spec["genes"])
        names = sorted(genes)
        k = names[int(rng.integers(len(names)))]
        kind, val = next(iter(self.genes[k].items()))
        if kind == "int" and rng.random() < 0.5:  # local step half of the time, else a fresh draw
            genes[k] = int(np.clip(genes[k] + (1 if rng.random() < 0.5 else -1), val[0], val[1]))
        else:
            genes[k] = self._draw(k, rng)
        return {"space": self.name, "genes": genes}

    def crossover(self, a: dict, b: dict, rng: np.random.Generator) -> dict:
        genes = {n: (a["genes"][n] if rng.random() < 0.5 else b["genes"][n]) for n in sorted(self.genes)}
        return {"space": self.name, "genes": genes}

    def describe(self) -> dict:
        return {"name": self.name, "genes": self.genes}
