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


# ---- rung sizes and promotion ------------------------------------------------------------------------------
def _by_bracket_rung(archive):
    out = {}
    for r in archive.budget_records():
        out.setdefault((r["bracket"], r["rung"]), []).append(r)
    return out


def test_successive_halving_rung_sizes_and_best_third_promoted(tmp_path):
    with Archive(tmp_path / "a.sqlite") as a:
        run_multifidelity(space(), quad(fidelity_noise=3.0), a, strategy="random", fidelity="sh", schedule=TOY,
                          brackets=2, objectives=("accuracy",), seed=0)
        rows = _by_bracket_rung(a)
    assert {k: len(v) for k, v in rows.items()} == {(0, 0): 9, (0, 1): 3, (0, 2): 1, (1, 0): 9, (1, 1): 3, (1, 2): 1}
    for b in (0, 1):
        for rung in (0, 1):
            below = sorted(rows[(b, rung)], key=lambda r: -r["fitness"])
            k = len(rows[(b, rung + 1)])
            assert {r["hash"] for r in rows[(b, rung + 1)]} == {r["hash"] for r in below[:k]}  # the best 1/eta


def test_hyperband_brackets_start_at_their_rung(tmp_path):
    with Archive(tmp_path / "a.sqlite") as a:
        s = run_multifidelity(space(), quad(), a, strategy="random", fidelity="hyperband", schedule=TOY,
                              brackets=3, objectives=("accuracy",), seed=0)
        rows = _by_bracket_rung(a)
    assert {k: len(v) for k, v in rows.items()} == {(0, 0): 9, (0, 1): 3, (0, 2): 1, (1, 1): 5, (1, 2): 1,
                                                      (2, 2): 3}
    assert s["units"] == 27 + 24 + 27 == sum(TOY.bracket_units(x) for x in (2, 1, 0))


def _dominates(u, v):
    return all(x <= y for x, y in zip(u, v)) and any(x < y for x, y in zip(u, v))


def test_pareto_promotion_keeps_the_front_and_never_a_dominated_candidate_over_its_dominator(tmp_path):
    wide = GridSpace({"a": {"int": [0, 20]}, "b": {"int": [0, 20]}, "c": {"int": [1, 50]}})
    sched = RungSchedule(1, 9, 3, unit_images=1, n0=27)
    ev = EVALUATORS.get("quadratic")({"a": 10, "b": 3}, cost_gene="c")
    with Archive(tmp_path / "a.sqlite") as a:
        run_multifidelity(wide, ev, a, strategy="random", fidelity="sh", schedule=sched, brackets=1,
                          objectives=("accuracy", "synops"), seed=3)
        rows = _by_bracket_rung(a)
    rung0, rung1 = rows[(0, 0)], rows[(0, 1)]
    assert len(rung0) == 27 and len(rung1) == 9
    up = {r["hash"] for r in rung1}
    F = {r["hash"]: (-r["fitness"], r["metrics"]["synops"]) for r in rung0}
    front = {h for h in F if not any(_dominates(F[g], F[h]) for g in F)}
    assert 1 < len(front) <= 9 and front <= up  # the whole first front goes up
    for h in up:  # nothing promoted is dominated by a candidate left behind
        assert not any(_dominates(F[g], F[h]) for g in F if g not in up)
    # single-objective promotion of the same rung would have taken a different set: the cost mattered
    best9 = {r["hash"] for r in sorted(rung0, key=lambda r: -r["fitness"])[:9]}
    assert best9 != up


def test_dehb_fills_later_brackets_with_offspring_of_promoted_candidates(tmp_path):
    with Archive(tmp_path / "a.sqlite") as a:
        s = run_multifidelity(space(), quad(), a, strategy="dehb", fidelity="sh", schedule=TOY, brackets=3,
                              objectives=("accuracy",), seed=0, strategy_options={"p_random": 0.0})
        rows = _by_bracket_rung(a)
        promoted = {r["hash"] for r in rows[(0, 1)]}
        first = [r["spec"]["genes"] for r in rows[(0, 0)]]
        later = [r["spec"]["genes"] for r in rows[(2, 0)]]
    # bracket 0 is random; by bracket 2 every proposal is a mutant of a promoted candidate (one gene changed or a
    # crossover of two promoted ones), so the rung-0 population is much closer to the optimum (a=10, b=3)
    dist = lambda g: abs(g["a"] - 10) + abs(g["b"] - 3)  # noqa: E731
    assert np.mean([dist(g) for g in later]) < np.mean([dist(g) for g in first]) - 3
    assert promoted and s["best"]["fitness"] >= -5


# ---- training-free scores: prefilter and predictor ---------------------------------------------------------
def _rung0_true(archive, ev, bracket=None):
    return [ev.true_fitness(r["spec"]) for r in archive.budget_records()
            if r["rung"] == 0 and (bracket is None or r["bracket"] == bracket)]


def test_prefilter_keeps_the_best_scored_proposals(tmp_path):
    ev = quad(fidelity_noise=3.0)
    scorer = EVALUATORS.get("quadratic")({"a": 10, "b": 3}, noise=5.0)  # an informative but noisy training-free score
    got = {}
    for name, kw in (("plain", {}), ("prefilter", {"prefilter": 45, "scorer": scorer})):
        with Archive(tmp_path / f"{name}.sqlite") as a:
            s = run_multifidelity(space(), ev, a, strategy="random", fidelity="sh", schedule=TOY, brackets=2,
                                  objectives=("accuracy",), seed=5, **kw)
            got[name] = _rung0_true(a, ev)
            if name == "prefilter":
                assert s["prefiltered"] == 90 and len(got[name]) == 18  # 45 scored per bracket, 9 kept
                with Archive(tmp_path / f"{name}.sqlite") as again:
                    assert again.get_features(a.budget_records()[0]["hash"])["score"] <= 0  # scores are cached
    assert np.mean(got["prefilter"]) > np.mean(got["plain"]) + 20


def test_predictor_ranks_proposals_once_it_has_data(tmp_path):
    ev = quad(fidelity_noise=3.0)
    got = {}
    for name, pred in (("plain", False), ("predictor", True)):
        with Archive(tmp_path / f"{name}.sqlite") as a:
            s = run_multifidelity(space(), ev, a, strategy="random", fidelity="sh", schedule=TOY, brackets=4,
                                  objectives=("accuracy",), seed=2, predictor=pred)
            got[name] = [np.mean(_rung0_true(a, ev, b)) for b in range(4)]
            if pred:
                assert s["predicted"] == 3 * 27 and s["predictor_trained_on"] == 27  # from bracket 1 on
    assert got["predictor"][0] == got["plain"][0]  # bracket 0: no data yet, the same random proposals
    assert np.mean(got["predictor"][1:]) > np.mean(got["plain"][1:]) + 20


# ---- resume after kill -9 -------------------------------------------------------------------------------------
_CHILD = """
import sys
from snn_nas.engine import Archive, EVALUATORS, GridSpace
from snn_nas.engine.fidelity import RungSchedule
from snn_nas.multifidelity import run_multifidelity

if __name__ == "__main__":
    path, log, fidelity, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    sp = GridSpace({genes!r})
    ev = EVALUATORS.get("quadratic")({{"a": 10, "b": 3}}, cost_gene="c", fidelity_noise=4.0, sleep={sleep},
                                      log_to=log)
    with Archive(path) as a:
        run_multifidelity(sp, ev, a, strategy="dehb", fidelity=fidelity, brackets=3, seed=7, workers=workers,
                          schedule=RungSchedule(1, 9, 3, unit_images=1), objectives=("accuracy", "synops"),
                          resume=len(sys.argv) > 5)
"""


def _table(path):
    with Archive(path) as a:
        return {(r["hash"], r["budget"]["images"]): (round(r["fitness"], 12), r["rung"], r["bracket"], r["seed"])
                for r in a.budget_records()}


def _evaluated(log):
    return [tuple(line.split()[:2]) for line in log.read_text().splitlines()] if log.exists() else []


def _kill_after(tmp_path, fidelity, workers, n_kill, *, sleep=0.03, full=True):
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}
    child = tmp_path / "child.py"
    child.write_text(_CHILD.format(genes=GENES, sleep=sleep))
    killed, klog = tmp_path / "killed.sqlite", tmp_path / "killed.log"
    proc = subprocess.Popen([sys.executable, str(child), str(killed), str(klog), fidelity, str(workers)], env=env,
                            start_new_session=True)
    deadline, n = time.time() + 120, 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
        if killed.exists():
            try:
                with sqlite3.connect(str(killed)) as db:
                    n = db.execute("SELECT COUNT(*) FROM budget_evaluations").fetchone()[0]
            except sqlite3.Error:
                n = 0
            if n >= n_kill:
                break
    assert proc.poll() is None, "child finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the search and its worker processes, as kill -9 of a process group
    proc.wait()
    before = _table(killed)
    evaluated_before = _evaluated(klog)
    subprocess.run([sys.executable, str(child), str(killed), str(klog), fidelity, str(workers), "--resume"],
                   env=env, check=True)
    full, flog = tmp_path / "full.sqlite", tmp_path / "full.log"
    if full:
        subprocess.run([sys.executable, str(child), str(full), str(flog), fidelity, str(workers)], env=env, check=True)
    return before, evaluated_before, _evaluated(klog), killed, full


@pytest.mark.parametrize("fidelity", ["sh", pytest.param("asha", marks=pytest.mark.slow)])
def test_one_worker_resume_after_kill_9_gives_the_uninterrupted_archive(tmp_path, fidelity):
    before, ev_before, ev_all, killed, full = _kill_after(tmp_path, fidelity, 0, 11)
    assert 11 <= len(before) < len(_table(full))
    assert _table(killed) == _table(full)
    after = ev_all[len(ev_before):]
    done_before = {(h, str(i)) for h, i in before}
    assert not done_before & set(after)  # nothing archived before the kill was evaluated again
    with Archive(killed) as a:  # and the order of arrival is the uninterrupted run's
        order_k = [(r["hash"], r["budget"]["images"]) for r in a.budget_records()]
    with Archive(full) as a:
        assert order_k == [(r["hash"], r["budget"]["images"]) for r in a.budget_records()]


@pytest.mark.slow
def test_asha_with_two_workers_resumes_without_losing_or_repeating(tmp_path):
    before, ev_before, ev_all, killed, _ = _kill_after(tmp_path, "asha", 2, 12, sleep=0.25, full=False)
    final = _table(killed)
    assert all(final[k] == v for k, v in before.items())  # every finished evaluation kept as it was
    after = ev_all[len(ev_before):]
    assert not {(h, str(i)) for h, i in before} & set(after)  # none repeated
    assert len(after) == len(set(after)) and len(final) > len(before)
    with Archive(killed) as a:
        units = sum(TOY.rung_units(r["rung"]) for r in a.budget_records())
    assert units <= 3 * TOY.bracket_units() + 1e-9


# ---- the archive: per-budget records, migration, versions ----------------------------------------------------
def test_archive_keeps_one_record_per_candidate_and_budget(tmp_path):
    spec = space().sample(np.random.default_rng(0))
    rec = {"status": "ok", "fitness": 0.5, "objectives": [-0.5, 3.0], "metrics": {"synops": 3.0}, "error": None,
           "seconds": 0.1, "cpu_seconds": 0.1}
    with Archive(tmp_path / "a.sqlite") as a:
        h = a.add_at_budget(spec, rec, Budget(1, 100), rung=0, bracket=0, seed=4)
        a.add_at_budget(spec, {**rec, "fitness": 0.7}, Budget(1, 300), rung=1, bracket=0, seed=4)
        a.add_at_budget(spec, {**rec, "fitness": 0.1}, Budget(1, 100), rung=0, bracket=1, seed=4)  # first wins
        assert a.get_at_budget(h, Budget(1, 100))["fitness"] == 0.5
        assert a.get_at_budget(h, Budget(1, 300))["fitness"] == 0.7 and a.get_at_budget(h, Budget(3, 100)) is None
        assert [r["budget"] for r in a.budget_records()] == [{"epochs": 1, "images": 100}, {"epochs": 1, "images": 300}]
        assert len(a.budget_records(budget=Budget(1, 300))) == 1 and len(a) == 0  # apart from budget-free records


def test_version_1_archive_is_migrated_and_a_newer_one_refused(tmp_path):
    import sqlite3

    from snn_nas.engine.archive import ARCHIVE_VERSION

    old = tmp_path / "old.sqlite"
    with sqlite3.connect(old) as db:  # the schema release 0.1 wrote: no budget table, no version
        db.executescript("""
            CREATE TABLE evaluations (hash TEXT PRIMARY KEY, spec TEXT NOT NULL, fitness REAL, objectives TEXT,
                metrics TEXT NOT NULL, status TEXT NOT NULL, error TEXT, seconds REAL, generation INTEGER NOT NULL,
                seed INTEGER, created REAL NOT NULL);
            CREATE TABLE strategy_state (generation INTEGER PRIMARY KEY, state TEXT NOT NULL, summary TEXT NOT NULL,
                created REAL NOT NULL);
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO evaluations VALUES ('abc', '{"genes":{}}', 0.25, NULL, '{}', 'ok', NULL, 0.1, 0, 1, 0.0);
        """)
    with Archive(old) as a:
        assert a.get_meta("archive_version") == ARCHIVE_VERSION == 2
        assert a.get("abc")["fitness"] == 0.25 and a.budget_records() == []
        a.add_at_budget({"genes": {}}, {"status": "ok", "fitness": 0.5}, Budget(1, 10), rung=0, bracket=0)
    with sqlite3.connect(old) as db:
        db.execute("UPDATE meta SET value='3' WHERE key='archive_version'")
    with pytest.raises(ValueError, match="version 3, newer than this neurosynth reads"):
        Archive(old)


def test_pareto_helpers_match_a_brute_force_definition():
    from snn_nas.engine.pareto import nondominated_rank, pareto_indices, pareto_order

    F = np.random.default_rng(0).integers(0, 6, size=(40, 2)).astype(float)
    F[3] = np.inf  # a failed candidate
    rank = nondominated_rank(F)
    front = [i for i in range(40) if np.isfinite(F[i]).all() and not any(_dominates(F[j], F[i]) for j in range(40))]
    assert pareto_indices(F) == front == [i for i in range(40) if rank[i] == 0]
    order = pareto_order(F)
    assert sorted(order) == list(range(40)) and set(order[: len(front)]) == set(front) and order[-1] == 3
    assert all(rank[order[i]] <= rank[order[i + 1]] for i in range(39))


# ---- parallel executors -------------------------------------------------------------------------------------
def _sync_table(path, **kw):
    with Archive(path) as a:
        run_multifidelity(space(), quad(fidelity_noise=4.0), a, strategy="dehb", fidelity="sh", schedule=TOY,
                          brackets=2, objectives=("accuracy", "synops"), seed=3, **kw)
    return _table(path)


def test_successive_halving_gives_the_same_archive_serially_and_on_two_workers(tmp_path):
    assert _sync_table(tmp_path / "s.sqlite") == _sync_table(tmp_path / "w.sqlite", workers=2)


@pytest.mark.ray
def test_sh_and_asha_run_on_ray(tmp_path):
    pytest.importorskip("ray")
    assert _sync_table(tmp_path / "s.sqlite") == _sync_table(tmp_path / "r.sqlite", ray="local:2")
    # Three brackets' worth of units: with two jobs in flight, extra rung-0 jobs run while a promotion waits, so
    # one bracket's 27 units (exactly enough serially) need not leave room for the 9-unit rung-2 job. Reaching
    # rung 2 needs 3 rung-1 results, which any completion order gets within ~36 units.
    with Archive(tmp_path / "asha.sqlite") as a:
        s = run_multifidelity(space(), quad(), a, strategy="dehb", fidelity="asha", schedule=TOY, brackets=3,
                              objectives=("accuracy",), seed=3, ray="local:2", workers=2)
        records = a.budget_records()
        assert s["evaluations"] == len(records) > 9 and s["units"] <= 3 * TOY.bracket_units()
        assert {r["rung"] for r in records} == {0, 1, 2}
        by_rung = {r: {x["hash"] for x in records if x["rung"] == r} for r in (0, 1, 2)}
        assert by_rung[2] <= by_rung[1] <= by_rung[0]  # a candidate reaches rung r+1 only through rung r
