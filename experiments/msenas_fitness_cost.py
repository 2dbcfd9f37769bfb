"""Cost of one training-free fitness evaluation vs one training epoch, Fashion-MNIST, Loihi-deployable space.

For ``--n-archs`` random candidates of ``--target loihi`` (14x14 OR-pooled rate-coded spike images, T steps):
time one ``rdm`` evaluation (build + forward + score) at the default batch 64 / all T steps and at a cheap
setting (batch 32, the first ``--cheap-T`` steps; 4 = the deepest candidate at T = 6), and time
``--train-batches`` training steps of batch 64 (forward + backward + Adam); one epoch is extrapolated as (seconds per training image) x 60,000. CPU times per process
(``time.process_time``) are reported next to wall times, because the machine is shared.

    python experiments/msenas_fitness_cost.py --n-archs 8 --out runs/msenas_fitness_cost
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _msenas_common import fashion_task, loihi_space, sample_unique


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-archs", type=int, default=8)
    p.add_argument("--T", type=int, default=6)
    p.add_argument("--train-batches", type=int, default=3)
    p.add_argument("--cheap-T", type=int, default=4, help="fitness horizon of the cheap setting (batch 32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/msenas_fitness_cost")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    from neurosynth.io import write_json
    from neurosynth.losses import get_loss
    from snn_nas.engine.space import derive_seed, spec_hash
    from snn_nas.mse import builder  # noqa: F401
    from snn_nas.mse.data import fitness_batch
    from snn_nas.mse.evaluator import RDMFitnessEvaluator, build_seeded

    task = fashion_task(T=args.T, seed=args.seed, train_limit=640, test_limit=10, pool=2)
    space = loihi_space(task.input_shape, args.T)
    x64, y64 = fitness_batch(task, 64, args.seed)
    x32, y32 = fitness_batch(task, 32, args.seed)
    ev_default = RDMFitnessEvaluator(x64, y64, all_scores=False)
    ev_cheap = RDMFitnessEvaluator(x32, y32, all_scores=False, fitness_T=args.cheap_T)
    loss_fn = get_loss("rate_ce")
    rows = []
    for s in sample_unique(space, args.n_archs, args.seed):
        seed = derive_seed(args.seed, spec_hash(s))
        r = {"hash": spec_hash(s)}
        for name, ev in (("default", ev_default), ("cheap", ev_cheap)):
            ev.evaluate(s, seed)  # warm-up (first-call allocations)
            w0, c0 = time.perf_counter(), time.process_time()
            ev.evaluate(s, seed)
            r[f"{name}_wall"], r[f"{name}_cpu"] = time.perf_counter() - w0, time.process_time() - c0
        m = build_seeded(s, seed)
        opt = torch.optim.Adam(m.parameters(), lr=1e-2)
        w0, c0 = time.perf_counter(), time.process_time()
        for b in range(args.train_batches):
            xb, yb = task.x_train[:, b * 64:(b + 1) * 64], task.y_train[b * 64:(b + 1) * 64]
            opt.zero_grad()
            loss_fn(m(xb), yb).backward()
            opt.step()
        n_img = 64 * args.train_batches
        r["epoch_wall_extrapolated"] = (time.perf_counter() - w0) / n_img * 60000
        r["epoch_cpu_extrapolated"] = (time.process_time() - c0) / n_img * 60000
        rows.append(r)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}), flush=True)
    med = {k: float(np.median([r[k] for r in rows])) for k in rows[0] if k != "hash"}
    ratios = {f"epoch_over_{n}_{kind}": float(np.median([r[f"epoch_{kind}_extrapolated"] / r[f"{n}_{kind}"]
                                                           for r in rows]))
              for n in ("default", "cheap") for kind in ("cpu", "wall")}
    res = {"n_archs": len(rows), "T": args.T, "cheap": {"batch": 32, "T": args.cheap_T}, "train_batches": args.train_batches, "medians": med, **ratios,
           "rows": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "cost.json", res)
    print(json.dumps({k: v for k, v in res.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
