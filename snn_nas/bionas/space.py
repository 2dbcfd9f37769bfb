"""BioNAS search spaces: cells whose every edge picks an (operation, learning rule) pair.

Two cell families:

``darts``
    DARTS cells (quark0/darts): inputs ``c_{k-2}``, ``c_{k-1}`` (nodes 0, 1) and 4 intermediate nodes
    (2..5); node ``j`` sums edges from all ``j`` predecessors (14 edges); the output concatenates nodes 2..5.
    Normal and reduction cells (in reduction cells, edges leaving nodes 0 and 1 have stride 2).
    The 8 DARTS operations are crossed with the learning rules ``R`` (default FA, uSF, brSF, frSF, the
    paper's rule set without Hebbian): every weighted op (4 convs) appears once per rule; the
    parameter-free ops (none, max/avg pool) once. ``skip_connect`` is parameter-free identity at stride 1
    (one candidate) but a rule-carrying FactorizedReduce at stride 2 (one candidate per rule), so the
    skip variants are genuinely distinct and stride-1 edges do not triple skip's prior mass.
``nb201``
    A NAS-Bench-201 cell (4 nodes, 6 edges, output = node 3) with ``none, skip_connect, avg_pool_3x3`` and
    ``nor_conv_1x1 / nor_conv_3x3`` x rules. Small enough for CPU searches.

Architecture logits ``alpha`` have one row per edge over a fixed list of *columns* (all candidates);
per-edge boolean masks mark which columns exist on that edge (stride-dependent skip variants).

Genotypes are JSON: ``{"space": "darts", "normal": [edge, ...8], "reduce": [edge, ...8]}`` or
``{"space": "nb201", "edges": [edge, ...6]}`` with ``edge = {"node": j, "from": i, "op": name, "rule": r}``
(``rule`` is ``null`` for parameter-free ops).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from neurosynth.rules import RULES

from .ops import CELL_OPS, LOCAL_OPS, RULE_OPS

DEFAULT_RULES = ("fa", "usf", "brsf", "frsf")
DARTS_CONV_OPS = ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
NB201_CONV_OPS = ("nor_conv_1x1", "nor_conv_3x3")
SPACES = ("darts", "nb201")


@dataclass(frozen=True)
class CellSpace:
    """Candidate columns, edges and masks of one cell family with a given rule set."""

    kind: str = "darts"
    rules: tuple[str, ...] = DEFAULT_RULES
    extra_ops: tuple[str, ...] = ()
    columns: tuple[tuple[str, str | None], ...] = field(init=False)
    edges: tuple[tuple[int, int], ...] = field(init=False)

    def __post_init__(self):
        if self.kind not in SPACES:
            raise ValueError(f"unknown BioNAS space '{self.kind}'; choose one of {SPACES}")
        if not self.rules:
            raise ValueError("a BioNAS space needs at least one learning rule")
        for r in self.rules:
            if r not in RULES:
                raise ValueError(f"unknown learning rule '{r}'; registered: {RULES.names()}")
            if r == "dfa":
                raise ValueError("'dfa' cannot be an edge rule (its error comes from the network output, not the "
                                 "edge); use it for whole-network baselines")
        for o in self.extra_ops:
            if o not in LOCAL_OPS:
                raise ValueError(f"unknown extra op '{o}'; choose from {LOCAL_OPS}")
        if len(set(self.rules)) != len(self.rules):
            raise ValueError(f"duplicate rules in {self.rules}")
        if self.kind == "darts":
            cols = [("none", None), ("max_pool_3x3", None), ("avg_pool_3x3", None), ("skip_connect", None)]
            cols += [("skip_connect", r) for r in self.rules]
            cols += [(o, r) for o in DARTS_CONV_OPS for r in self.rules]
            edges = [(j, i) for j in range(2, 6) for i in range(j)]
        else:
            cols = [("none", None), ("skip_connect", None), ("avg_pool_3x3", None)]
            cols += [(o, r) for o in NB201_CONV_OPS for r in self.rules]
            edges = [(j, i) for j in range(1, 4) for i in range(j)]
        cols += [(o, None) for o in self.extra_ops]
        object.__setattr__(self, "columns", tuple(cols))
        object.__setattr__(self, "edges", tuple(edges))

    # ---- structure -------------------------------------------------------------------------------
    @property
    def n_columns(self) -> int:
        return len(self.columns)

    @property
    def n_edges(self) -> int:
        return len(self.edges)

    @property
    def cell_types(self) -> tuple[str, ...]:
        return ("normal", "reduce") if self.kind == "darts" else ("cell",)

    def stride(self, cell: str, edge: tuple[int, int]) -> int:
        return 2 if (cell == "reduce" and edge[1] < 2) else 1

    def column_valid(self, col: tuple[str, str | None], stride: int) -> bool:
        op, rule = col
        if op == "skip_connect" and self.kind == "darts":
            return (rule is None) == (stride == 1)
        return True

    def mask(self, cell: str) -> np.ndarray:
        """``[n_edges, n_columns]`` bool: which candidates exist on each edge of ``cell``."""
        return np.array([[self.column_valid(c, self.stride(cell, e)) for c in self.columns] for e in self.edges])

    def describe(self) -> dict:
        return {"kind": self.kind, "rules": list(self.rules), "extra_ops": list(self.extra_ops),
                "columns": [list(c) for c in self.columns], "edges": [list(e) for e in self.edges]}

    # ---- derivation ------------------------------------------------------------------------------
    def probabilities(self, logits: np.ndarray, cell: str) -> np.ndarray:
        """Masked softmax over the columns of each edge."""
        z = np.where(self.mask(cell), np.asarray(logits, dtype=np.float64), -np.inf)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def derive(self, logits: dict[str, np.ndarray], max_skip: int | None = 2) -> dict:
        """Genotype from architecture logits ``{"normal": [E,K], "reduce": [E,K]}`` / ``{"cell": [E,K]}``.

        DARTS rule for ``darts``: per node keep the 2 incoming edges with the largest non-``none``
        probability and take their arg-max non-``none`` candidate. ``nb201`` keeps every edge and takes
        its arg-max over all candidates (``none`` included, as in NAS-Bench-201's DARTS).
        Skip-collapse guard (P-DARTS): in cells without reduction at most ``max_skip`` edges may be
        ``skip_connect``; the extra skip edges with the smallest skip probability have skip removed and
        the cell is derived again (``None`` disables the cap).
        """
        out = {"space": self.kind}
        for cell in self.cell_types:
            if cell not in logits:
                raise ValueError(f"derive: missing logits for cell '{cell}'")
            p = self.probabilities(logits[cell], cell)
            if p.shape != (self.n_edges, self.n_columns):
                raise ValueError(f"logits for '{cell}' must have shape {(self.n_edges, self.n_columns)}, got {p.shape}")
            banned = np.zeros_like(p, dtype=bool)
            while True:
                edges = self._derive_cell(np.where(banned, 0.0, p), cell)
                skips = [(k, e) for k, e in enumerate(edges) if e["op"] == "skip_connect" and e["_stride"] == 1]
                if cell == "reduce" or max_skip is None or len(skips) <= max_skip:
                    break
                # ban skip on the weakest extra skip edge and derive again
                k, e = min(skips, key=lambda t: t[1]["_p"])
                banned[e["_edge"], e["_col"]] = True
            out[cell if self.kind == "darts" else "edges"] = [
                {"node": e["node"], "from": e["from"], "op": e["op"], "rule": e["rule"]} for e in edges]
        return out

    def _derive_cell(self, p: np.ndarray, cell: str) -> list[dict]:
        none_col = self.columns.index(("none", None))
        chosen = []
        if self.kind == "darts":
            for j in range(2, 6):
                rows = [k for k, (jj, _) in enumerate(self.edges) if jj == j]
                strength = {k: np.delete(p[k], none_col).max() for k in rows}
                top = sorted(rows, key=lambda k: (-strength[k], k))[:2]
                for k in sorted(top, key=lambda k: self.edges[k][1]):
                    q = p[k].copy()
                    q[none_col] = -1.0
                    chosen.append(self._edge(k, int(np.argmax(q)), p, cell))
        else:
            for k in range(self.n_edges):
                chosen.append(self._edge(k, int(np.argmax(p[k])), p, cell))
        return chosen

    def _edge(self, k: int, col: int, p: np.ndarray, cell: str) -> dict:
        j, i = self.edges[k]
        op, rule = self.columns[col]
        return {"node": j, "from": i, "op": op, "rule": rule, "_edge": k, "_col": col, "_p": float(p[k, col]),
                "_stride": self.stride(cell, (j, i))}

    # ---- validation ------------------------------------------------------------------------------
    def validate(self, g: dict) -> dict:
        if not isinstance(g, dict) or g.get("space") != self.kind:
            raise ValueError(f"genotype must be a dict with \"space\": \"{self.kind}\", got {str(g)[:80]}")
        keys = ("normal", "reduce") if self.kind == "darts" else ("edges",)
        for key in keys:
            edges = g.get(key)
            if not isinstance(edges, list):
                raise ValueError(f"genotype['{key}'] must be a list of edges")
            if self.kind == "darts":
                if len(edges) != 8:
                    raise ValueError(f"genotype['{key}'] must have 8 edges (2 per node), got {len(edges)}")
                for j in range(2, 6):
                    ins = [e.get("from") for e in edges if isinstance(e, dict) and e.get("node") == j]
                    if len(ins) != 2 or len(set(ins)) != 2:
                        raise ValueError(f"genotype['{key}']: node {j} needs 2 edges from distinct nodes, got {ins}")
            else:
                pairs = [(e.get("node"), e.get("from")) for e in edges if isinstance(e, dict)]
                if sorted(pairs) != sorted(self.edges):
                    raise ValueError(f"genotype['edges'] must cover edges {list(self.edges)} once each, got {pairs}")
            for e in edges:
                self._check_edge(key, e)
        return g

    def _check_edge(self, key: str, e: dict) -> None:
        if not isinstance(e, dict) or set(e) != {"node", "from", "op", "rule"}:
            raise ValueError(f"genotype['{key}'] edge {e!r} must have exactly the keys node, from, op, rule")
        j, i, op, rule = e["node"], e["from"], e["op"], e["rule"]
        if (j, i) not in self.edges:
            raise ValueError(f"genotype['{key}'] edge {j}<-{i} does not exist; edges: {list(self.edges)}")
        if op not in CELL_OPS:
            raise ValueError(f"genotype['{key}'] edge {j}<-{i}: unknown op '{op}'; known: {CELL_OPS.names()}")
        stride = self.stride(key, (j, i))
        if op not in {c[0] for c in self.columns} and op not in LOCAL_OPS:
            raise ValueError(f"genotype['{key}'] edge {j}<-{i}: op '{op}' is not part of the {self.kind} space "
                             f"(ops: {sorted({c[0] for c in self.columns})})")
        if rule is not None and rule not in RULES:
            raise ValueError(f"genotype['{key}'] edge {j}<-{i}: unknown learning rule '{rule}'; "
                             f"registered: {RULES.names()}")
        if op == "skip_connect" and (rule is None) != (stride == 1):
            want = "null (identity)" if stride == 1 else "a learning rule (FactorizedReduce)"
            raise ValueError(f"genotype['{key}'] edge {j}<-{i}: skip_connect at stride {stride} needs rule {want}")
        if op in RULE_OPS and rule is None:
            raise ValueError(f"genotype['{key}'] edge {j}<-{i}: '{op}' has weights and needs a learning rule")
        if op not in RULE_OPS and op != "skip_connect" and rule is not None:
            raise ValueError(f"genotype['{key}'] edge {j}<-{i}: '{op}' has no rule-trained weights; rule must be null")

    # ---- sampling (for evolutionary strategies) ---------------------------------------------------
    def candidates(self, cell: str, edge: tuple[int, int], include_none: bool = False) -> list[tuple]:
        s = self.stride(cell, edge)
        return [c for c in self.columns if self.column_valid(c, s) and (include_none or c[0] != "none")]

    def random_edge(self, cell: str, j: int, i: int, rng: np.random.Generator) -> dict:
        cands = self.candidates(cell, (j, i), include_none=self.kind == "nb201")
        op, rule = cands[int(rng.integers(len(cands)))]
        return {"node": j, "from": i, "op": op, "rule": rule}

    def sample(self, rng: np.random.Generator) -> dict:
        g: dict = {"space": self.kind}
        if self.kind == "darts":
            for cell in ("normal", "reduce"):
                edges = []
                for j in range(2, 6):
                    preds = sorted(int(p) for p in rng.choice(j, size=2, replace=False))
                    edges += [self.random_edge(cell, j, i, rng) for i in preds]
                g[cell] = edges
        else:
            g["edges"] = [self.random_edge("cell", j, i, rng) for j, i in self.edges]
        return g


def with_rule(genotype: dict, rule: str) -> dict:
    """The same architecture with every rule-carrying edge switched to ``rule`` (single-rule baseline)."""
    if rule not in RULES:
        raise ValueError(f"unknown learning rule '{rule}'; registered: {RULES.names()}")
    g = json.loads(json.dumps(genotype))
    for key in ("normal", "reduce", "edges"):
        for e in g.get(key, []):
            if e["rule"] is not None:
                e["rule"] = rule
    return g


def edge_rules(genotype: dict) -> list[str]:
    return [e["rule"] for key in ("normal", "reduce", "edges") for e in genotype.get(key, []) if e["rule"]]


def logits_size(space: CellSpace) -> int:
    return len(space.cell_types) * space.n_edges * space.n_columns


def split_logits(space: CellSpace, x: np.ndarray) -> dict[str, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).reshape(len(space.cell_types), space.n_edges, space.n_columns)
    return {c: x[k] for k, c in enumerate(space.cell_types)}
