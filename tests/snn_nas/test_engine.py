"""Tests of the shared search engine (snn_nas.engine): space, strategies, archive, runner, resume."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from math import comb
from pathlib import Path

import numpy as np
import pytest

from snn_nas.engine import (
    EVALUATORS,
    Archive,
    GridSpace,
    HallOfFame,
    Runner,
    canonical_json,
    derive_seed,
    evaluate_safely,
    spec_hash,
)
from snn_nas.strategies import STRATEGIES

GENES = {"a": {"int": [0, 20]}, "b": {"int": [0, 20]}, "c": {"choices": [1, 2, 3]}}


def space():
    return GridSpace(GENES)


def quad(**kw):
    return EVALUATORS.get("quadratic")({"a": 10, "b": 3}, **kw)


def table(path):
    """Archive content that must not depend on worker count: hash -> (fitness, status, generation, seed)."""
    with Archive(path) as a:
        return {r["hash"]: (None if math.isnan(r["fitness"]) else round(r["fitness"], 12), r["status"],
                            r["generation"], r["seed"]) for r in a.records()}


# ---- space -------------------------------------------------------------------------------------------
def test_canonical_json_and_hash_golden():
    a = {"b": [1, 2.5, {"y": True, "x": None}], "a": "s"}
    b = {"a": "s", "b": [1, 2.5, {"x": None, "y": True}]}
    assert canonical_json(a) == '{"a":"s","b":[1,2.5,{"x":null,"y":true}]}'
    assert spec_hash(a) == spec_hash(b) == "ffd22aaa646df7ff"
    import hashlib

    assert spec_hash(a) == hashlib.sha256(canonical_json(a).encode()).hexdigest()[:16]
    assert len(spec_hash(a)) == 16 and spec_hash(a) != spec_hash({"a": "t", "b": []})
    with pytest.raises(ValueError, match="JSON"):
        canonical_json({"x": float("nan")})


def test_derive_seed_depends_on_run_seed_and_hash_only():
    assert derive_seed(1, "abc") == derive_seed(1, "abc")
    assert derive_seed(1, "abc") != derive_seed(2, "abc")
    assert derive_seed(1, "abc") != derive_seed(1, "abd")
    assert 0 <= derive_seed(123, "ffff") < 2**32


def test_gridspace_sample_is_reproducible_and_valid():
    s = space()
    a = [s.sample(np.random.default_rng(3)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    rng = np.random.default_rng(0)
    for _ in range(50):
        spec = s.sample(rng)
        assert s.validate(json.loads(json.dumps(spec))) == spec
        assert s.validate(s.mutate(spec, rng))
        assert s.validate(s.crossover(spec, s.sample(rng), rng))


@pytest.mark.parametrize(
    "genes,match",
    [({"a": 10, "b": 3}, "missing \\['c'\\]"), ({"a": 10, "b": 3, "c": 7}, "gene 'c' = 7"),
     ({"a": 99, "b": 3, "c": 1}, "gene 'a' = 99 is outside"), ({"a": 1.5, "b": 3, "c": 1}, "integer")],
)
def test_gridspace_validate_names_bad_field(genes, match):
    with pytest.raises(ValueError, match=match):
        space().validate({"genes": genes})


# ---- strategies --------------------------------------------------------------------------------------
def test_registry_lists_strategies():
    assert STRATEGIES.names() == ["cmaes", "dehb", "eg_cma", "evo", "ga", "nsga2", "random"]
    with pytest.raises(ValueError, match="registered strategys: .*ga"):
        STRATEGIES.get("nope")
    with pytest.raises(ValueError, match="unknown options"):
        STRATEGIES.get("random")(space(), np.random.default_rng(0), bogus=1)


def test_every_strategy_class_is_registered_under_its_own_name():
    """The registry is filled in one place (snn_nas/strategies/__init__.py): every Strategy subclass defined in the
    package is in it, under the ``name`` its saved state carries, and the engine itself holds no registry."""
    import importlib
    import inspect
    import pkgutil

    import snn_nas.engine
    import snn_nas.strategies
    from snn_nas.engine.strategy import Strategy

    defined = set()
    for info in pkgutil.iter_modules(snn_nas.strategies.__path__):
        mod = importlib.import_module(f"snn_nas.strategies.{info.name}")
        defined |= {c for _, c in inspect.getmembers(mod, inspect.isclass)
                    if issubclass(c, Strategy) and c is not Strategy and c.__module__ == mod.__name__}
    assert defined == {STRATEGIES.get(n) for n in STRATEGIES.names()}
    for n in STRATEGIES.names():
        assert STRATEGIES.get(n).name == n
    assert not hasattr(snn_nas.engine, "STRATEGIES")


def test_tournament_selection_probabilities_match_size_4():
    """P(rank r wins a 4-entrant tournament among n) = C(n-1-r, 3) / C(n, 4)."""
    ga = STRATEGIES.get("ga")(space(), np.random.default_rng(0))
    n = 8
    ga.population = [(float(-i), {"genes": {"a": i, "b": 0, "c": 1}}) for i in range(n)]
    draws = 20000
    counts = np.zeros(n)
    for _ in range(draws):
        counts[ga._select()["genes"]["a"]] += 1
    expected = np.array([comb(n - 1 - r, 3) / comb(n, 4) for r in range(n)])
    assert expected.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(counts / draws, expected, atol=0.012)
    assert counts[-3:].sum() == 0  # the 3 worst can never win a tournament of 4


def test_hall_of_fame_keeps_ten_best_distinct():
    hof = HallOfFame(10)
    specs = [{"i": i % 15} for i in range(30)]
    hof.update(specs, [{"fitness": float(i % 15)} for i in range(30)])
    hof.update([{"i": 99}], [{"fitness": float("nan")}])
    f = [x for x, _ in hof.items()]
    assert f == [float(v) for v in range(14, 4, -1)]
    assert len({spec_hash(s) for _, s in hof.items()}) == 10


def _fit_results(ev, specs):
    out = []
    for s in specs:
        r = evaluate_safely(ev, s, 0)
        out.append({"fitness": r["fitness"], "objectives": r["objectives"]})
    return out


def test_ga_finds_the_optimum_and_beats_random():
    ev = quad()
    best = {}
    for name in ("random", "ga"):
        st = STRATEGIES.get(name)(space(), np.random.default_rng(5))
        for _ in range(20):
            specs = st.ask(12)
            st.tell(specs, _fit_results(ev, specs))
        best[name] = st.hall_of_fame[0][0]
        assert len(st.hall_of_fame) == 10
    assert best["ga"] == 0.0  # -(a-10)^2-(b-3)^2 is maximal (0) at a=10, b=3
    assert best["ga"] > best["random"]


@pytest.mark.parametrize("name", ["random", "ga", "nsga2"])
def test_state_dict_round_trip_continues_identically(name):
    ev = quad(cost_gene="c")
    st = STRATEGIES.get(name)(space(), np.random.default_rng(1))
    for _ in range(3):
        specs = st.ask(8)
        st.tell(specs, _fit_results(ev, specs))
    state = json.loads(json.dumps(st.state_dict()))  # must be JSON
    st2 = STRATEGIES.get(name)(space(), np.random.default_rng(999))
    st2.load_state_dict(state)
    for _ in range(2):
        a, b = st.ask(8), st2.ask(8)
        assert a == b
        st.tell(a, _fit_results(ev, a))
        st2.tell(b, _fit_results(ev, b))
    assert st.hall_of_fame == st2.hall_of_fame


def test_nsga2_front_is_non_dominated_and_spans_costs():
    # objectives (a-10)^2 + (b-3)^2 and a conflict: the true front is b=3, a in 0..10
    ev = quad(cost_gene="a")
    st = STRATEGIES.get("nsga2")(space(), np.random.default_rng(2))
    for _ in range(8):
        specs = st.ask(12)
        st.tell(specs, _fit_results(ev, specs))
    front = st.pareto_front
    F = np.array([f for f, _ in front])
    for i in range(len(F)):
        for j in range(len(F)):
            assert not (np.all(F[j] <= F[i]) and np.any(F[j] < F[i])), "front member is dominated"
    assert F[:, 0].min() <= 1.0  # close to the optimum of the first objective
    assert len(set(F[:, 1])) >= 3  # trades off the cost objective
    assert all(0 <= s["genes"]["a"] <= 10 for _, s in front)
    assert len(st.population) == 12


def test_load_state_for_another_strategy_is_rejected():
    ga = STRATEGIES.get("ga")(space(), np.random.default_rng(0))
    with pytest.raises(ValueError, match="state is for strategy 'random'"):
        ga.load_state_dict(STRATEGIES.get("random")(space(), np.random.default_rng(0)).state_dict())


# ---- evaluator / archive -----------------------------------------------------------------------------
def test_evaluate_safely_records_failures_with_reason():
    ev = quad(fail_on={"a": 0}, nan_on={"a": 1})
    ok = evaluate_safely(ev, {"genes": {"a": 10, "b": 3, "c": 1}}, 0)
    assert ok["status"] == "ok" and ok["fitness"] == 0.0 and ok["seconds"] >= 0
    bad = evaluate_safely(ev, {"genes": {"a": 0, "b": 3, "c": 1}}, 0)
    assert bad["status"] == "failed" and "simulated failure" in bad["error"] and math.isnan(bad["fitness"])
    nan = evaluate_safely(ev, {"genes": {"a": 1, "b": 3, "c": 1}}, 0)
    assert nan["status"] == "failed" and "nan" in nan["error"]

    class OOM(EVALUATORS.get("quadratic")):
        def evaluate(self, spec, seed):
            raise MemoryError("boom")

    assert evaluate_safely(OOM({}), {"genes": {}}, 0)["error"].startswith("out of memory")


def test_archive_round_trip_and_corrupt_file(tmp_path):
    with Archive(tmp_path / "a.sqlite") as a:
        h = a.add({"x": 1}, {"status": "ok", "fitness": 2.5, "objectives": [1.0, float("inf")],
                             "metrics": {"m": 1}, "seconds": 0.1}, generation=3, seed=7)
        a.add({"x": 1}, {"status": "ok", "fitness": 9.0, "metrics": {}}, generation=4)  # ignored: known hash
        a.add({"x": 2}, {"status": "failed", "fitness": float("nan"), "error": "why", "metrics": {}}, generation=4)
        a.save_state(0, {"k": [1, 2]}, {"best": 1.0})
        a.set_meta("config", {"seed": 1})
    with Archive(tmp_path / "a.sqlite") as a:
        r = a.get(h)
        assert (r["fitness"], r["objectives"], r["metrics"], r["generation"], r["seed"]) == (
            2.5, [1.0, math.inf], {"m": 1}, 3, 7)
        assert len(a) == 2 and h in a and a.best(5)[0]["hash"] == h
        assert a.records("failed")[0]["error"] == "why"
        assert a.last_state() == (0, {"k": [1, 2]}) and a.get_meta("config") == {"seed": 1}
    (tmp_path / "bad.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(ValueError, match="not a usable search archive"):
        Archive(tmp_path / "bad.sqlite")


# ---- runner ------------------------------------------------------------------------------------------
def _run(path, *, workers=0, ray=None, strategy="ga", generations=4, resume=False, ev=None, seed=1):
    st = STRATEGIES.get(strategy)(space(), np.random.default_rng(seed))
    with Archive(path) as a:
        return Runner(space(), st, ev or quad(noise=0.1, cost_gene="c", fail_on={"a": 0}, nan_on={"a": 1}), a,
                      generations=generations, population=8, seed=seed, workers=workers, ray=ray,
                      progress=False, resume=resume).run()


def test_runner_records_failures_and_goes_on(tmp_path):
    ev = quad(fail_on={"c": 2})
    s = _run(tmp_path / "a.sqlite", ev=ev, strategy="random", generations=3)
    with Archive(tmp_path / "a.sqlite") as a:
        failed = a.records("failed")
        assert failed and all("simulated failure for c=2" in r["error"] for r in failed)
        assert all(r["spec"]["genes"]["c"] == 2 for r in failed)
        assert len(a.summaries()) == 3 and s["failed"] == len(failed)
        assert s["best"]["spec"]["genes"]["c"] != 2


def test_runner_never_evaluates_twice_and_refuses_silent_overwrite(tmp_path):
    p = tmp_path / "a.sqlite"
    s1 = _run(p)
    assert s1["evaluated_this_run"] == s1["evaluations"]
    with pytest.raises(ValueError, match="--resume"):
        _run(p)
    s2 = _run(p, resume=True)  # finished run: nothing left to do
    assert s2["evaluated_this_run"] == 0 and s2["evaluations"] == s1["evaluations"]
    s3 = _run(p, resume=True, generations=6)  # extend the budget: continue from generation 4
    assert s3["evaluated_this_run"] > 0 and len(s3["history"]) == 6
    with pytest.raises(ValueError, match="'seed' was 1"):
        _run(p, resume=True, seed=2)


def test_serial_and_two_workers_give_the_same_archive(tmp_path):
    _run(tmp_path / "s.sqlite")
    _run(tmp_path / "w.sqlite", workers=2)
    assert table(tmp_path / "s.sqlite") == table(tmp_path / "w.sqlite")
    assert len(table(tmp_path / "s.sqlite")) > 8


@pytest.mark.ray
def test_ray_gives_the_same_archive(tmp_path):
    pytest.importorskip("ray")
    _run(tmp_path / "s.sqlite", generations=2)
    _run(tmp_path / "r.sqlite", generations=2, ray="local:1")
    assert table(tmp_path / "s.sqlite") == table(tmp_path / "r.sqlite")


_CHILD = """
import sys, numpy as np
from snn_nas.engine import Archive, EVALUATORS, GridSpace, Runner
from snn_nas.strategies import STRATEGIES
genes = {genes!r}
sp = GridSpace(genes)
ev = EVALUATORS.get("quadratic")({{"a": 10, "b": 3}}, noise=0.1, sleep={sleep})
st = STRATEGIES.get("ga")(sp, np.random.default_rng(4))
Runner(sp, st, ev, Archive(sys.argv[1]), generations=6, population=8, seed=4, progress=False,
       resume=len(sys.argv) > 2).run()
"""


def test_resume_after_kill_9_matches_uninterrupted_run(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = tmp_path / "child.py"
    child.write_text(_CHILD.format(genes=GENES, sleep=0.02))
    killed = tmp_path / "killed.sqlite"
    proc = subprocess.Popen([sys.executable, str(child), str(killed)], env=env)
    deadline = time.time() + 60
    n = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if killed.exists():
            try:
                with sqlite3.connect(str(killed)) as db:
                    n = db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
            except sqlite3.Error:
                n = 0
            if n >= 13:  # inside the second generation
                break
    assert proc.poll() is None, "child finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Archive(killed) as a:
        before = {r["hash"] for r in a.records()}
        gens_done = len(a.summaries())
    assert 0 < gens_done < 6 and len(before) >= 13
    # resume in a fresh process (as the CLI would) and compare with an uninterrupted run
    subprocess.run([sys.executable, str(child), str(killed), "--resume"], env=env, check=True)
    full = tmp_path / "full.sqlite"
    subprocess.run([sys.executable, str(child), str(full)], env=env, check=True)
    assert table(killed) == table(full)
    with Archive(killed) as a:
        assert len(a.summaries()) == 6
        # every archived evaluation from before the kill was reused, not recomputed
        assert before <= {r["hash"] for r in a.records()}
        assert len(a.records()) == len({r["hash"] for r in a.records()})


def test_archive_records_one_shot_search_epochs_apart_from_evaluations(tmp_path):
    with Archive(tmp_path / "a.sqlite") as a:
        h = a.add_epoch(1, {"g": [1, 2]}, {"val_accuracy": 0.5, "alpha_entropy": {"cell": 1.2}})
        a.add_epoch(2, {"g": [2, 1]}, {"val_accuracy": 0.6})
        assert len(a) == 0 and a.records() == []  # a derived genotype is not an evaluated architecture
        ep = a.epochs()
        assert [e["epoch"] for e in ep] == [1, 2] and ep[0]["hash"] == h
        assert ep[0]["spec"] == {"g": [1, 2]} and ep[0]["metrics"]["alpha_entropy"] == {"cell": 1.2}
    with Archive(tmp_path / "a.sqlite") as a:  # persisted
        assert len(a.epochs()) == 2
