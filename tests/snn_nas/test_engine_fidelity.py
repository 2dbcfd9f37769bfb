"""Multi-fidelity engine (snn_nas.engine.fidelity, snn_nas.multifidelity): budgets, rungs, promotion, resume."""

from __future__ import annotations

import math

import numpy as np
import pytest

from snn_nas.engine import EVALUATORS, Archive, GridSpace
from snn_nas.engine.fidelity import Budget, RungSchedule, spec_features, units_to_budget
from snn_nas.multifidelity import run_multifidelity

GENES = {"a": {"int": [0, 20]}, "b": {"int": [0, 20]}, "c": {"choices": [1, 2, 3]}}
TOY = RungSchedule(min_budget=1, max_budget=9, eta=3, unit_images=1)


def space():
    return GridSpace(GENES)


def quad(**kw):
    return EVALUATORS.get("quadratic")({"a": 10, "b": 3}, cost_gene="c", **kw)


# ---- budgets and schedule ------------------------------------------------------------------------------
def test_units_to_budget_spends_images_first_then_epochs():
    assert units_to_budget(1, 2000, 18000) == Budget(1, 2000)
    assert units_to_budget(3, 2000, 18000) == Budget(1, 6000)
    assert units_to_budget(9, 2000, 18000) == Budget(1, 18000)
    assert units_to_budget(27, 2000, 18000) == Budget(3, 18000)
    assert units_to_budget(27, 2000, 18000).presentations == 27 * 2000
    with pytest.raises(ValueError, match="epochs"):
        Budget(0, 10)


def test_schedule_rungs_and_brackets_follow_hyperband():
    s = RungSchedule(min_budget=1, max_budget=9, eta=3)
    assert s.s_max == 2 and [s.rung_units(r) for r in range(3)] == [1, 3, 9]
    assert s.bracket() == [(9, 0), (3, 1), (1, 2)]  # successive halving from rung 0
    # Hyperband's table for R = 9, eta = 3: n = ceil(3/(s+1) * 3^s)
    assert s.bracket(1) == [(5, 1), (1, 2)] and s.bracket(0) == [(3, 2)]
    assert RungSchedule(1, 9, 3, n0=27).bracket() == [(27, 0), (9, 1), (3, 2)]
    assert RungSchedule(1, 9, 3, n0=27).bracket_units() == 81  # the 2-core bracket of nas_anchors.md §6
    with pytest.raises(ValueError, match="eta"):
        RungSchedule(eta=1)


def test_spec_features_have_fixed_names_for_lists_of_any_length():
    f1 = spec_features({"cells": [{"width": 4, "n": "lif"}], "x": True})
    f2 = spec_features({"cells": [{"width": 4, "n": "lif"}, {"width": 16, "n": "alif"}], "x": False})
    assert f1["cells.*.width:sum"] == 4 and f2["cells.*.width:sum"] == 20 and f2["cells.*.width:max"] == 16
    assert f2["cells:len"] == 2 and f2["cells.*.n=alif"] == 1 and f1["x:sum"] == 1.0


# ---- smoke: every fidelity x strategy runs and archives per (candidate, budget) ---------------------------
@pytest.mark.parametrize("fidelity", ["sh", "hyperband", "asha", "none"])
@pytest.mark.parametrize("strategy", ["dehb", "random"])
def test_every_fidelity_runs_and_archives_per_budget(tmp_path, fidelity, strategy):
    with Archive(tmp_path / "a.sqlite") as a:
        s = run_multifidelity(space(), quad(fidelity_noise=5.0), a, strategy=strategy, fidelity=fidelity,
                              schedule=TOY, brackets=2, objectives=("accuracy", "synops"), seed=1)
        recs = a.budget_records()
        keys = [(r["hash"], r["budget"]["epochs"], r["budget"]["images"]) for r in recs]
        assert len(keys) == len(set(keys)) == s["evaluations"] > 0  # one row per (candidate, budget)
        budgets = {r["rung"]: Budget.from_dict(r["budget"]) for r in recs}
        assert all(budgets[r] == TOY.budget(r) for r in budgets)
        assert s["best"] is not None and math.isfinite(s["best"]["fitness"]) and s["front"]
        assert s["evaluation_cpu_seconds"] >= 0


def test_budget_free_evaluator_is_refused(tmp_path):
    from snn_nas.engine.evaluator import Evaluator

    class NoBudget(Evaluator):
        name = "nobudget"

        def evaluate(self, spec, seed):
            return {"fitness": 0.0}

    with Archive(tmp_path / "a.sqlite") as a, pytest.raises(ValueError, match="supports_budget"):
        run_multifidelity(space(), NoBudget(), a, fidelity="sh", schedule=TOY, objectives=("accuracy",))


def test_asha_refuses_a_generational_strategy(tmp_path):
    with Archive(tmp_path / "a.sqlite") as a, pytest.raises(ValueError, match="generational"):
        run_multifidelity(space(), quad(), a, strategy="ga", fidelity="asha", schedule=TOY)


def test_dehb_is_registered_and_round_trips_its_state():
    from snn_nas.strategies import STRATEGIES

    st = STRATEGIES.get("dehb")(space(), np.random.default_rng(0))
    specs = st.ask(6)
    st.tell(specs, [{"fitness": -float(i), "objectives": [float(i), 1.0], "rung": 1} for i in range(6)])
    d = st.state_dict()
    st2 = STRATEGIES.get("dehb")(space(), np.random.default_rng(99))
    st2.load_state_dict(d)
    assert st.ask(4) == st2.ask(4)
