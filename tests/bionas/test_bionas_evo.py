"""EvoSearch: GP operators on architecture trees, the evo and cmaes strategies of the shared engine."""

import json

import numpy as np
import pytest

from snn_nas.bionas.engine_space import BioNASSearchSpace
from snn_nas.engine import GridSpace, SearchSpace
from snn_nas.strategies import STRATEGIES, gp


class ToySpace(SearchSpace):
    """Variable-length stacks of layers: a minimal variable-topology space."""

    name = "toy"
    widths = (4, 8, 16, 32)

    def sample(self, rng):
        n = int(rng.integers(1, 6))
        return {"space": "toy", "layers": [{"type": "conv", "width": int(rng.choice(self.widths))} for _ in range(n)],
                "lr": 0.1}

    def validate(self, spec):
        if spec.get("space") != "toy" or not 1 <= len(spec.get("layers", [])) <= 8:
            raise ValueError("bad toy spec")
        for layer in spec["layers"]:
            if set(layer) != {"type", "width"} or layer["width"] not in self.widths or layer["type"] != "conv":
                raise ValueError(f"bad layer {layer}")
        return spec


def _fitness(spec):
    return {"fitness": float(sum(layer["width"] for layer in spec["layers"]) - 3 * len(spec["layers"]))}


def test_gp_operators_keep_validity_and_vary_topology():
    sp, rng = ToySpace(), np.random.default_rng(0)
    a, b = sp.sample(rng), sp.sample(rng)
    lengths, changed_leaves = set(), 0
    for _ in range(60):
        c = gp.subtree_crossover(a, b, rng, sp.validate, protect=("space",))
        if c is not None:
            sp.validate(c)
            lengths.add(len(c["layers"]))
        m = gp.node_mutation(a, rng, sp.validate, sp.sample, protect=("space",))
        if m is not None:
            diff = [(p, v) for p, v in gp.walk(m) if gp.kind(v) == "leaf" and gp.get(a, p) != v] \
                if all(gp.kind(v) != "leaf" or _exists(a, p) for p, v in gp.walk(m)) else []
            changed_leaves += len(diff) == 1
        s = gp.subtree_mutation(a, rng, sp.validate, sp.sample, protect=("space",))
        if s is not None:
            sp.validate(s)
    assert len(lengths) > 1  # crossover exchanges variable-length subtrees
    assert changed_leaves > 10  # node mutation changes exactly one leaf


def _exists(tree, path):
    try:
        gp.get(tree, path)
        return True
    except (KeyError, IndexError, TypeError):
        return False


def test_put_is_pure_and_get_path_wildcards():
    t = {"a": [{"b": 1}, {"b": 2}]}
    u = gp.put(t, ("a", 1, "b"), 5)
    assert t["a"][1]["b"] == 2 and u["a"][1]["b"] == 5
    assert [v for _, v in gp.get_path(t, "a.*.b")] == [1, 2]


def test_evo_defaults_tournament4_hof10_and_improves():
    sp = ToySpace()
    st = STRATEGIES.get("evo")(sp, np.random.default_rng(1))
    assert st.tournament == 4 and st.hof.size == 10
    best = []
    for _ in range(12):
        specs = st.ask(10)
        st.tell(specs, [_fitness(s) for s in specs])
        best.append(st.hall_of_fame[0][0])
    assert len(st.hall_of_fame) == 10
    assert best[-1] > best[0]
    assert [f for f, _ in st.hall_of_fame] == sorted((f for f, _ in st.hall_of_fame), reverse=True)


@pytest.mark.parametrize("name", ["evo", "cmaes"])
def test_strategy_state_roundtrip_on_bionas_space(name):
    sp = BioNASSearchSpace("darts")
    st = STRATEGIES.get(name)(sp, np.random.default_rng(0))
    for _ in range(3):
        specs = st.ask(6)
        for s in specs:
            sp.validate(s)
        st.tell(specs, [{"fitness": float(len([e for e in s["normal"] if e["rule"] == "usf"]))} for s in specs])
    state = json.loads(json.dumps(st.state_dict()))
    other = STRATEGIES.get(name)(sp, np.random.default_rng(99))
    other.load_state_dict(state)
    assert other.ask(6) == st.ask(6)


def test_evo_cma_tunes_continuous_parameters():
    space = GridSpace({"w": {"choices": [1, 2]}, "x": {"float": [0.0, 1.0]}, "y": {"float": [0.0, 1.0]}})
    st = STRATEGIES.get("evo")(space, np.random.default_rng(0), continuous={"genes.x": [0, 1], "genes.y": [0, 1]})

    def f(s):
        return {"fitness": -((s["genes"]["x"] - 0.8) ** 2 + (s["genes"]["y"] - 0.2) ** 2)}

    first = None
    for _ in range(15):
        specs = st.ask(8)
        res = [f(s) for s in specs]
        first = first if first is not None else max(r["fitness"] for r in res)
        st.tell(specs, res)
    assert st.hall_of_fame[0][0] > -0.01 and st.hall_of_fame[0][0] > first
    assert st.cma is not None and len(st.cma.history) == 15


def test_cmaes_requires_a_continuous_encoding():
    with pytest.raises(ValueError, match="vector_dim and decode"):
        STRATEGIES.get("cmaes")(ToySpace(), np.random.default_rng(0))


def test_failed_candidates_rank_last():
    sp = BioNASSearchSpace("nb201")
    st = STRATEGIES.get("evo")(sp, np.random.default_rng(0))
    specs = st.ask(4)
    st.tell(specs, [{"fitness": float("nan")}, {"fitness": 0.5}, {"fitness": float("nan")}, {"fitness": 0.1}])
    assert [f for f, _ in st.hall_of_fame] == [0.5, 0.1]
    assert st.population[0][0] == 0.5 and st.population[-1][0] == float("-inf")


def test_evo_on_the_mse_snn_space():
    mse = pytest.importorskip("snn_nas.mse.space")
    sp = mse.MSESpace()
    st = STRATEGIES.get("evo")(sp, np.random.default_rng(0))
    n_cells = set()
    for _ in range(3):
        specs = st.ask(6)
        for s in specs:
            sp.validate(s)
            n_cells.add(len(s["cells"]))
        st.tell(specs, [{"fitness": float(sum(c["width"] for c in s["cells"]))} for s in specs])
    assert sum(st.n_operator[k] for k in ("crossover", "node", "subtree")) > 0
    assert len(n_cells) > 1  # variable topology
