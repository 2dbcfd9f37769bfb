"""BioNAS as a shared-engine search space and evaluator (used by ``--method evo`` and the engine strategies).

:class:`BioNASSearchSpace` specs are genotypes (see :mod:`snn_nas.bionas.space`). It provides the optional
evolutionary operators (``mutate``: one edge gets a new (op, rule) candidate or a new input;
``crossover``: nodes/edges inherited from either parent) and a continuous encoding for CMA-ES
(``vector_dim`` logits decoded with the DARTS derivation rule).

:class:`BioNASEvaluator` trains the derived model for a few epochs on the search-train half and returns the
search-validation accuracy as ``fitness`` (all randomness from the given seed).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from snn_nas.engine.evaluator import EVALUATORS, Evaluator
from snn_nas.engine.space import SearchSpace

from .space import DEFAULT_RULES, CellSpace, logits_size, split_logits


class LogitSpace(SearchSpace):
    """Real vectors of length ``dim`` (the flattened logits of a BioNAS supernet), the space of BioNAS-EG's
    CMA-ES (strategy ``eg_cma``): a spec is ``{"z": [float, ...]}``."""

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


class BioNASSearchSpace(SearchSpace):
    def __init__(self, kind: str = "nb201", rules=DEFAULT_RULES, extra_ops=(), max_skip: int | None = 2):
        self.cells = CellSpace(kind, tuple(rules), tuple(extra_ops))
        self.name = f"bionas-{kind}"
        self.max_skip = max_skip

    @property
    def vector_dim(self) -> int:
        return logits_size(self.cells)

    def decode(self, x) -> dict:
        return self.cells.derive(split_logits(self.cells, np.asarray(x)), max_skip=self.max_skip)

    def sample(self, rng: np.random.Generator) -> dict:
        return self.cells.sample(rng)

    def validate(self, spec: dict) -> dict:
        return self.cells.validate(spec)

    def mutate(self, spec: dict, rng: np.random.Generator) -> dict:
        g = copy.deepcopy(spec)
        keys = [k for k in ("normal", "reduce", "edges") if k in g]
        key = keys[int(rng.integers(len(keys)))]
        k = int(rng.integers(len(g[key])))
        e = g[key][k]
        if self.cells.kind == "darts" and rng.random() < 0.3:
            taken = {x["from"] for x in g[key] if x["node"] == e["node"]} - {e["from"]}
            choices = [i for i in range(e["node"]) if i not in taken and i != e["from"]]
            if choices:
                i = int(choices[int(rng.integers(len(choices)))])
                g[key][k] = self.cells.random_edge(key, e["node"], i, rng)
                g[key].sort(key=lambda x: (x["node"], x["from"]))
                return g
        cell = key if key != "edges" else "cell"
        cands = [c for c in self.cells.candidates(cell, (e["node"], e["from"]), include_none=self.cells.kind == "nb201")
                 if c != (e["op"], e["rule"])]
        op, rule = cands[int(rng.integers(len(cands)))]
        g[key][k] = {"node": e["node"], "from": e["from"], "op": op, "rule": rule}
        return g

    def crossover(self, a: dict, b: dict, rng: np.random.Generator) -> dict:
        g = {"space": a["space"]}
        for key in ("normal", "reduce", "edges"):
            if key not in a:
                continue
            if self.cells.kind == "darts":  # inherit whole nodes (their two edges) to stay valid
                edges = []
                for j in range(2, 6):
                    src = a if rng.random() < 0.5 else b
                    edges += [copy.deepcopy(e) for e in src[key] if e["node"] == j]
                g[key] = edges
            else:
                g[key] = [copy.deepcopy(ea if rng.random() < 0.5 else eb) for ea, eb in zip(a[key], b[key])]
        return g

    def cost(self, spec: dict) -> float:
        from .space import edge_rules

        return float(len(edge_rules(spec)))

    def describe(self) -> dict:
        return {"name": self.name, **self.cells.describe(), "max_skip": self.max_skip}


@EVALUATORS.register("bionas")
class BioNASEvaluator(Evaluator):
    """Train the derived genotype briefly; fitness = search-validation accuracy."""

    name = "bionas"

    def __init__(self, dataset: str = "digits", *, epochs: int = 3, C: int = 8, layers: int = 1,
                 batch_size: int = 64, lr: float = 0.05, frame_rule: str = "bp", data_root: str | None = None,
                 limit_train: int | None = None, data=None):
        """``data``: an already loaded :func:`~snn_nas.bionas.data.load_image_data` result to use in this
        process (it is not pickled: worker processes load the dataset themselves)."""
        self.dataset, self.epochs, self.C, self.layers = dataset, int(epochs), int(C), int(layers)
        self.batch_size, self.lr, self.frame_rule, self.data_root = int(batch_size), float(lr), frame_rule, data_root
        self.limit_train = limit_train
        self._data = data

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_data"] = None
        return d

    def _load(self):
        if self._data is None:
            from .data import load_image_data

            self._data = load_image_data(self.dataset, self.data_root, limit_train=self.limit_train)
        return self._data

    def evaluate(self, spec: dict, seed: int) -> dict:
        from .model import build_model, make_spec
        from .train import train_model

        data = self._load()
        g = torch.Generator().manual_seed(0)  # the search split is fixed for the whole search
        xa, ya, xb, yb = data.search_split(g)
        with torch.random.fork_rng():  # weight init of this candidate from its seed, global state untouched
            torch.manual_seed(int(seed))
            model = build_model(make_spec(spec, C=self.C, layers=self.layers, num_classes=data.num_classes,
                                          input_shape=data.input_shape, frame_rule=self.frame_rule))
        hist = train_model(model, xa, ya, xb, yb, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           seed=int(seed))
        n_params = sum(p.numel() for p in model.parameters())
        return {"fitness": hist["test_accuracy"][-1], "objectives": [-hist["test_accuracy"][-1], float(n_params)],
                "val_accuracy": hist["test_accuracy"][-1], "train_loss": hist["train_loss"][-1], "params": n_params}

    def describe(self) -> dict:
        return {"name": self.name, "dataset": self.dataset, "epochs": self.epochs, "C": self.C,
                "layers": self.layers, "batch_size": self.batch_size, "lr": self.lr, "frame_rule": self.frame_rule}
