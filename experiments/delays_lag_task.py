"""Do learned delays learn? A task only delays solve: which of two lags separates two spikes.

Each sample has 8 input channels over T=30 steps: channel 0 spikes at a random t0 and channel 1 at t0 + lag, with
lag 2 (class 0) or 6 (class 1); every channel also carries Bernoulli(0.02) noise spikes. The hidden neurons are
memoryless (LIF with beta = 0: a neuron fires only when its input in that very step crosses the threshold), so a
network without delays sees two identical single spikes in both classes and cannot tell them apart, while a
``DelayedLinear`` can bring the two spikes of one lag into the same step.

Networks (seeded): ``[DelayedLinear(8, 16, K=10) | Linear(8, 16)] -> LIF(beta=0, threshold 0.5, zero reset) -> Linear(16, 2) ->
LI(beta=0.9)``, loss ``max_membrane_ce``, Adam lr 1e-2, batch 50, ``fit`` (which anneals sigma: 10 -> 5 -> ... over
the first quarter of the epochs). Data: 1,000 train / 200 validation / 1,000 test samples drawn with separate
generators. The epoch is chosen on validation accuracy (first best), the test set is read once for that epoch.

    OMP_NUM_THREADS=1 python experiments/delays_lag_task.py --seeds 0 1 2 --epochs 30 \\
        --json experiments/results/delays_lag_task.json
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

import neurosynth as ns
from neurosynth.delays import DelayedLinear
from neurosynth.training import evaluate, fit

T, N_IN, LAGS = 30, 8, (2, 6)


def make_data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = (torch.rand(T, n, N_IN, generator=g) < 0.02).float()
    lag = torch.tensor(LAGS)[y]
    t0 = (torch.rand(n, generator=g) * (T - 1 - lag).float()).long()
    idx = torch.arange(n)
    x[t0, idx, 0] = 1.0
    x[t0 + lag, idx, 1] = 1.0
    return x, y


def loader(x, y, batch: int):
    return [(x[:, i:i + batch], y[i:i + batch]) for i in range(0, y.shape[0], batch)]


def build(delays: bool, seed: int, K: int = 10):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    first = DelayedLinear(N_IN, 16, max_delay=K, generator=g) if delays else torch.nn.Linear(N_IN, 16, bias=False)
    return ns.SNN(first, ns.LIF(beta=0.0, threshold=0.5, reset="zero"), torch.nn.Linear(16, 2), ns.LI(beta=0.9))


def run(delays: bool, seed: int, epochs: int) -> dict:
    torch.manual_seed(seed)
    train = loader(*make_data(1000, 1000 + seed), 50)
    val = loader(*make_data(200, 2000 + seed), 200)
    test = loader(*make_data(1000, 3000 + seed), 500)
    model = build(delays, seed)
    best = {"val": -1.0}

    def on_epoch_end(epoch, hist):
        acc = hist["val_accuracy"][-1]
        if acc > best["val"]:
            best.update(val=acc, epoch=epoch + 1, state=copy.deepcopy(model.state_dict()))

    t0 = time.perf_counter()
    hist = fit(model, train, epochs=epochs, lr=1e-2, loss="max_membrane_ce", val_loader=val, progress=False,
               on_epoch_end=on_epoch_end)
    seconds = time.perf_counter() - t0
    model.load_state_dict(best["state"])
    res = evaluate(model, test, loss="max_membrane_ce")
    out = {"model": "delayed_linear" if delays else "linear", "seed": seed, "epochs": epochs,
           "chosen_epoch": best["epoch"], "val_accuracy": best["val"], "test_accuracy": res["accuracy"],
           "test_samples": res["samples"], "train_seconds": round(seconds, 1),
           "final_train_accuracy": hist["train_accuracy"][-1]}
    if delays:
        d = model[0].hard_delays()
        out["learned_delay_difference_ch1_minus_ch0"] = (d[:, 1] - d[:, 0]).tolist()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for seed in args.seeds:
        for delays in (True, False):
            r = run(delays, seed, args.epochs)
            rows.append(r)
            print(f"{r['model']:15s} seed {seed}: val {r['val_accuracy']:.3f} (epoch {r['chosen_epoch']}) "
                  f"test {r['test_accuracy']:.3f} ({r['train_seconds']} s)", flush=True)
            if args.json:
                from neurosynth.io import atomic_write

                args.json.parent.mkdir(parents=True, exist_ok=True)
                with atomic_write(args.json) as f:
                    f.write(json.dumps({"task": __doc__.split("\n\n")[1], "rows": rows,
                                        "command": "OMP_NUM_THREADS=1 python experiments/delays_lag_task.py "
                                                   + " ".join(argv or [])}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
