"""The statistics of benchmarks/search_vs_random.py (paired t-intervals, Pareto fronts, hypervolume) against
hand-computed values, and the summary of a tiny fake run (no training)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("search_vs_random", ROOT / "benchmarks" / "search_vs_random.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_t_interval_golden(bench):
    r = bench.t_interval([0.01, 0.03, 0.02])
    half = 4.302652729911275 * 0.01 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert r["n"] == 3 and r["mean"] == pytest.approx(0.02) and r["sd"] == pytest.approx(0.01)
    assert r["ci95"] == pytest.approx([0.02 - half, 0.02 + half])


def test_pareto_front_and_hypervolume_golden(bench):
    pts = [(0.8, 100.0), (0.9, 300.0), (0.7, 200.0), (0.85, 300.0)]  # (0.7, 200) and (0.85, 300) are dominated
    assert bench.pareto_front(pts) == [(0.8, 100.0), (0.9, 300.0)]
    # 0.8 over SynOps [100, 300) + 0.9 over [300, 1000), divided by the reference 1000
    assert bench.hypervolume(pts, 1000.0) == pytest.approx((0.8 * 200 + 0.9 * 700) / 1000)
    assert bench.hypervolume([(0.5, 2000.0)], 1000.0) == 0.0  # beyond the reference point: nothing
    assert bench.hypervolume([(1.0, 0.0)], 1000.0) == pytest.approx(1.0)


def test_summary_of_a_fake_run(bench, tmp_path):
    rows = bench.Rows(tmp_path / "rows.jsonl")
    spec = {s: {"id": s} for s in ("a", "b", "c", "d", "e")}
    from snn_nas.engine import spec_hash

    accs = {0: [0.80, 0.78, 0.79, 0.70, 0.77], 1: [0.82, 0.79, 0.80, 0.71, 0.77]}
    for seed, acc in accs.items():
        for arm, sp, a in zip(bench.ARMS, "abcde", acc):
            front = [{"val_accuracy": a, "synops": 100.0}] if arm in ("searched", "random", "random_sh") else None
            rows.add({"key": f"arm/{seed}/{arm}", "seed": seed, "arm": arm, "spec": spec[sp], "cpu_s": 10.0,
                      **({"front": front} if front else {})})
            rows.add({"key": f"final/{seed}/{spec_hash(spec[sp])}", "seed": seed, "hash": spec_hash(spec[sp]),
                      "spec": spec[sp], "test_accuracy": a, "val_accuracy": a, "synops": 100.0, "params": 5})
    for s, a in ((100, 0.5), (101, 0.52)):
        rows.add({"key": f"noise/h/{s}", "seed": s, "hash": "h", "test_accuracy": a})
    out = bench.summarise("fashion_mnist", {"tag": "x"}, bench.Rows(tmp_path / "rows.jsonl"), {"train": 1}, 1000.0, {})
    json.dumps(out)
    assert [r["seed"] for r in out["seeds"]] == [0, 1]
    assert out["seeds"][0]["searched"] == 0.80 and out["seeds"][1]["hand"] == 0.77
    assert out["noise_floor_sd"] == pytest.approx(math.sqrt(2) * 0.01)  # sd of [0.50, 0.52]
    d = out["summary"]["paired_differences"]["searched-random"]
    assert d["mean"] == pytest.approx(0.025) and d["n"] == 2
    assert out["summary"]["wins"] == {"searched>random": 2, "searched>random_sh": 2, "searched>old_ga": 2,
                                      "searched>hand": 2}
    assert out["summary"]["hypervolume_final_networks"]["searched"] == pytest.approx(0.81 * 0.9)
