"""Genetic programming over architecture trees.

Any JSON spec is a tree: dicts and lists are inner nodes, scalars are leaves; a node is addressed by its
*path* (tuple of dict keys / list indices). Variable topology is natural: a list (layers, edges, branches)
may change length when a subtree carrying it is exchanged.

Operators (all pure: they return new specs and draw only from the given ``numpy.random.Generator``):

* :func:`subtree_crossover`: replace a random subtree of parent A with a *compatible* subtree of parent B
  (same role: same last key, or both list items of lists with the same key, and the same node kind).
  With probability ``p_homologous`` the exchange happens at the same path in both parents.
* :func:`node_mutation`: replace one leaf with the value at the same path in a freshly sampled donor tree
  (so the value comes from the space's own distribution).
* :func:`subtree_mutation`: replace a random inner subtree with a compatible subtree grown by the space
  (a fresh ``space.sample(rng)``).

A child must pass ``space.validate``; operators retry ``tries`` times and return ``None`` when no valid
child was found (the strategy then falls back to ``space.mutate``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import numpy as np

Path = tuple


def walk(tree: Any, path: Path = ()) -> list[tuple[Path, Any]]:
    """All ``(path, node)`` pairs, root first (depth-first, keys sorted)."""
    out = [(path, tree)]
    if isinstance(tree, dict):
        for k in sorted(tree):
            out += walk(tree[k], path + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += walk(v, path + (i,))
    return out


def get(tree: Any, path: Path) -> Any:
    for p in path:
        tree = tree[p]
    return tree


def put(tree: Any, path: Path, value: Any) -> Any:
    """A deep copy of ``tree`` with the node at ``path`` replaced by a copy of ``value``."""
    if not path:
        return copy.deepcopy(value)
    new = copy.deepcopy(tree)
    parent = get(new, path[:-1])
    parent[path[-1]] = copy.deepcopy(value)
    return new


def kind(node: Any) -> str:
    return "dict" if isinstance(node, dict) else "list" if isinstance(node, list) else "leaf"


def role(path: Path) -> tuple:
    """The structural role of a node: its key, or ``("[]", parent key)`` for list items."""
    if not path:
        return ("root",)
    if isinstance(path[-1], int):
        parent = next((p for p in reversed(path) if not isinstance(p, int)), None)
        return ("[]", parent)
    return ("key", path[-1])


def signature(path: Path, node: Any) -> tuple:
    return role(path) + (kind(node),)


def _choice(rng: np.random.Generator, items: list):
    return items[int(rng.integers(len(items)))]


def _valid(validate: Callable[[dict], Any], spec: dict) -> bool:
    try:
        validate(json.loads(json.dumps(spec)))
        return True
    except (ValueError, KeyError, TypeError, IndexError):
        return False


def subtree_crossover(a: dict, b: dict, rng: np.random.Generator, validate: Callable, *, tries: int = 10,
                      p_homologous: float = 0.5, protect: tuple = ()) -> dict | None:
    nodes_a = [(p, n) for p, n in walk(a) if p and not _protected(p, protect)]
    nodes_b = walk(b)
    for _ in range(tries):
        if not nodes_a:
            return None
        pa, na = _choice(rng, nodes_a)
        if rng.random() < p_homologous:
            try:
                nb = get(b, pa)
            except (KeyError, IndexError, TypeError):
                continue
            if kind(nb) != kind(na):
                continue
        else:
            sig = signature(pa, na)
            pool = [n for p, n in nodes_b if p and signature(p, n) == sig]
            if not pool:
                continue
            nb = _choice(rng, pool)
        if nb == na:
            continue
        child = put(a, pa, nb)
        if _valid(validate, child):
            return child
    return None


def node_mutation(a: dict, rng: np.random.Generator, validate: Callable, sample: Callable, *, tries: int = 10,
                  protect: tuple = ()) -> dict | None:
    leaves = [(p, n) for p, n in walk(a) if p and kind(n) == "leaf" and not _protected(p, protect)]
    for _ in range(tries):
        if not leaves:
            return None
        path, old = _choice(rng, leaves)
        donor = sample(rng)
        try:
            new = get(donor, path)
        except (KeyError, IndexError, TypeError):
            continue
        if kind(new) != "leaf" or new == old:
            continue
        child = put(a, path, new)
        if _valid(validate, child):
            return child
    return None


def subtree_mutation(a: dict, rng: np.random.Generator, validate: Callable, sample: Callable, *, tries: int = 10,
                     protect: tuple = ()) -> dict | None:
    inner = [(p, n) for p, n in walk(a) if p and kind(n) != "leaf" and not _protected(p, protect)]
    for _ in range(tries):
        if not inner:
            return None
        path, old = _choice(rng, inner)
        donor = sample(rng)
        sig = signature(path, old)
        pool = [n for p, n in walk(donor) if p and signature(p, n) == sig]
        if not pool:
            continue
        new = _choice(rng, pool)
        if new == old:
            continue
        child = put(a, path, new)
        if _valid(validate, child):
            return child
    return None


def _protected(path: Path, protect: tuple) -> bool:
    return bool(path) and path[0] in protect


def get_path(tree: Any, dotted: str) -> list[tuple[Path, Any]]:
    """Resolve a dotted path with ``*`` wildcards (``"layers.*.params.beta"``) to existing ``(path, value)``."""
    parts = [int(p) if p.isdigit() else p for p in dotted.split(".")] if dotted else []
    found = [((), tree)]
    for part in parts:
        nxt = []
        for path, node in found:
            if part == "*":
                items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
                nxt += [(path + (k,), v) for k, v in items]
            elif isinstance(node, dict) and part in node:
                nxt.append((path + (part,), node[part]))
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                nxt.append((path + (part,), node[part]))
        found = nxt
    return found
