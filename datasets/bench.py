"""Measure the data pipeline: milliseconds per sample read + binned (first epoch, fills the cache) and
read from the cache (later epochs), on generated files in the real layouts.

    python -m neurosynth.datasets.bench --dataset shd --events 8000 --samples 50
    python -m neurosynth.datasets.bench --dataset dvs_gesture --events 200000 --samples 10

Prints one JSON line. The event counts per sample are parameters (state them with the numbers).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=["shd", "dvs_gesture"], default="shd")
    p.add_argument("--events", type=int, default=8000, help="events per generated sample (upper bound of a uniform draw is 2x)")
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import torch

    from . import load
    from .testing import write_fake_dvs_gesture, write_fake_shd

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        if args.dataset == "shd":
            write_fake_shd(root, n_train=args.samples, n_test=1, seed=args.seed, max_events=2 * args.events)
            kw = {}
        else:
            write_fake_dvs_gesture(root, n_train=args.samples, n_test=1, seed=args.seed, max_events=2 * args.events,
                                   duration_ms=6000)
            kw = {"T": 16, "spatial_factor": 0.25}
        ds = load(args.dataset, root, "train", cache=root / "cache", **kw)
        n_events = sum(len(ds.events(i)[0]) for i in range(len(ds)))
        t0 = time.perf_counter()
        for i in range(len(ds)):
            ds[i]
        first = (time.perf_counter() - t0) / len(ds)
        t0 = time.perf_counter()
        for i in range(len(ds)):
            ds[i]
        cached = (time.perf_counter() - t0) / len(ds)
        x, _ = ds[0]
        n = len(ds)
    print(json.dumps({"dataset": args.dataset, "samples": n, "mean_events_per_sample": n_events / n,
                      "sample_shape": list(x.shape), "ms_per_sample_read_bin_cache": round(first * 1e3, 2),
                      "ms_per_sample_from_cache": round(cached * 1e3, 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
