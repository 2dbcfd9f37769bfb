"""Cost of one training-free fitness evaluation vs one training epoch, Fashion-MNIST, Loihi-deployable space.

For ``--n-archs`` random candidates of ``--target loihi`` (14x14 OR-pooled rate-coded spike images, T steps):
time one ``rdm`` evaluation (build + forward + score) at the default batch 64 / all T steps and at a cheap
setting (batch 32, first 2 steps), and time ``--train-batches`` training steps of batch 64 (forward + backward
+ Adam); one epoch is extrapolated as (seconds per training image) x 60,000. CPU times per process
(``time.process_time``) are reported next to wall times, because the machine is shared.

    python benchmarks/msenas_fitness_cost.py --n-archs 8 --out runs/msenas_fitness_cost
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-archs", type=int, default=8)
    p.add_argument("--T", type=int, default=6)
    p.add_argument("--train-batches", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/msenas_fitness_cost")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    import torch.nn.functional as F

    from neurosynth.io import write_json
    from neurosynth.losses import get_loss
    from snn_nas.engine.space import derive_seed, spec_hash
    from snn_nas.mse import builder  # noqa: F401
    from snn_nas.mse.data import fitness_batch, load_task
    from snn_nas.mse.evaluator import RDMFitnessEvaluator, build_seeded
    from snn_nas.mse.space import MSESpace, MSESpaceConfig

    task = load_task("fashion_mnist", T=args.T, conv=True, seed=args.seed, limit=640, test_limit=10,
                     encoding="rate")
    T, N = task.x_train.shape[:2]
    task.x_train = (F.max_pool2d(task.x_train.reshape(T * N, 1, 28, 28), 2) > 0).float().reshape(T, N, 1, 14, 14)
    space = MSESpace(MSESpaceConfig.from_dict({"input_shape": [1, 14, 14], "num_classes": 10, "target": "loihi",
                                               "max_layers": max(3, 3 * args.T // 4), "widths": [4, 8, 16],
                                               "stem_widths": [4, 8], "kernels": [1, 3], "depth": [1, 2],
                                               "max_nodes": 2}))
    x64, y64 = fitness_batch(task, 64, args.seed)
    x32, y32 = fitness_batch(task, 32, args.seed)
    ev_default = RDMFitnessEvaluator(x64, y64, all_scores=False)
    ev_cheap = RDMFitnessEvaluator(x32, y32, all_scores=False, fitness_T=2)
    loss_fn = get_loss("rate_ce")
    rng = np.random.default_rng(args.seed)
    rows = []
    for _ in range(args.n_archs):
        s = space.sample(rng)
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
    res = {"n_archs": len(rows), "T": args.T, "train_batches": args.train_batches, "medians": med, **ratios,
           "rows": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "cost.json", res)
    print(json.dumps({k: v for k, v in res.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
