"""The multi-fidelity engine on a synthetic problem whose low budgets rank noisily: what each mode and flag adds.

A check of the machinery, not evidence about networks (that is ``benchmarks/search_vs_random.py``). The problem:
``GridSpace`` of 4 integer genes in [0, 30] and a cost gene in [1, 50]; the value of a candidate at budget ``b`` is
``-sum((g - target)^2) + fidelity_noise / sqrt(b.presentations) * N(0, 1)`` (``QuadraticEvaluator``), so rung 0
(1 unit) ranks with noise sd 60, the top rung (9 units) with sd 20. Every arm gets the same budget in units (4
successive-halving brackets of n0 = 27: 4 x 81 = 324 units) and picks its best by its own noisy top-rung value;
the score reported is the chosen candidate's *true* value (what a final retrain with infinite budget would show).
Seeds are paired: arm X with seed s and arm Y with seed s see the same problem (the same target).

    python benchmarks/fidelity_synthetic.py --seeds 20 --out benchmarks/results/fidelity_synthetic.json
"""

from __future__ import annotations

import argparse
import math
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

GENES = {f"g{i}": {"int": [0, 30]} for i in range(4)} | {"cost": {"int": [1, 50]}}
UNITS = 324.0


def arms():
    return {
        "random (every candidate at the top budget)": dict(strategy="random", fidelity="none"),
        "random + SH": dict(strategy="random", fidelity="sh"),
        "DEHB + SH": dict(strategy="dehb", fidelity="sh"),
        "DEHB + Hyperband": dict(strategy="dehb", fidelity="hyperband"),
        "DEHB + ASHA": dict(strategy="dehb", fidelity="asha"),
        "DEHB + SH + prefilter 81": dict(strategy="dehb", fidelity="sh", prefilter=81),
        "DEHB + SH + predictor": dict(strategy="dehb", fidelity="sh", predictor=True),
    }


def run_arm(kw: dict, seed: int, tmp: Path) -> dict:
    from snn_nas.engine import EVALUATORS, Archive, GridSpace
    from snn_nas.engine.fidelity import RungSchedule
    from snn_nas.multifidelity import run_multifidelity

    rng = np.random.default_rng(1000 + seed)
    target = {f"g{i}": int(rng.integers(0, 31)) for i in range(4)}
    ev = EVALUATORS.get("quadratic")(target, cost_gene="cost", fidelity_noise=60.0)
    scorer = EVALUATORS.get("quadratic")(target, noise=150.0)  # a weakly informative training-free score
    sched = RungSchedule(1, 9, 3, unit_images=1, n0=27)
    kw = dict(kw)
    if kw.get("prefilter"):
        kw["scorer"] = scorer
    brackets = 36 if kw["fidelity"] in ("hyperband", "asha") else 4
    if kw["fidelity"] == "none":
        kw["fidelity"], brackets = "none", 2  # 2 x 18 candidates at 9 units
        sched = RungSchedule(1, 9, 3, unit_images=1, n0=18)
    t0 = time.process_time()
    with Archive(tmp / f"{seed}-{time.perf_counter_ns()}.sqlite") as a:
        s = run_multifidelity(GridSpace(GENES), ev, a, schedule=sched, brackets=brackets, total_budget=UNITS,
                              seed=seed, objectives=("accuracy",), **kw)
    return {"true": ev.true_fitness(s["best"]["spec"]), "chosen_on": s["best"]["fitness"], "units": s["units"],
            "evaluations": s["evaluations"], "cpu_s": time.process_time() - t0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--out", default="benchmarks/results/fidelity_synthetic.json")
    args = ap.parse_args(argv)
    from neurosynth.io import write_json

    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as d:
        for name, kw in arms().items():
            rows[name] = [run_arm(kw, s, Path(d)) for s in range(args.seeds)]
            v = [r["true"] for r in rows[name]]
            print(f"{name:45s} true value of the pick {np.mean(v):8.1f} +- {np.std(v, ddof=1):6.1f}  "
                  f"units {np.mean([r['units'] for r in rows[name]]):.0f}", flush=True)
    base = [r["true"] for r in rows[next(iter(rows))]]
    summary = {}
    for name, rs in rows.items():
        v = np.array([r["true"] for r in rs])
        d = v - np.array(base)
        half = 2.093 * d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else math.nan  # t(0.975, 19)
        summary[name] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)), "diff_vs_random_mean": float(d.mean()),
                         "diff_ci95": [float(d.mean() - half), float(d.mean() + half)],
                         "wins_vs_random": int((d > 0).sum()), "ties": int((d == 0).sum()),
                         "units_mean": float(np.mean([r["units"] for r in rs]))}
    write_json(args.out, {"protocol": {"genes": GENES, "fidelity_noise": 60.0, "rungs_units": [1, 3, 9], "eta": 3,
                                       "n0": 27, "units_per_arm": UNITS, "seeds": list(range(args.seeds)),
                                       "scorer_noise": 150.0, "command": "python benchmarks/fidelity_synthetic.py "
                                       f"--seeds {args.seeds}", "machine": platform.node()},
                          "summary": summary, "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
