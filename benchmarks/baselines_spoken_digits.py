"""Non-spiking baselines on spoken_digits: the context every SNN number on it needs.

Reads the generated files (``neurosynth data generate spoken_digits --root DATA``: train / valid / test split by
voice) and fits, on the training split only, choosing hyper-parameters and epochs on the validation split:

- ``logreg``: logistic regression on onset-aligned, length-normalised log spike counts (8 time bins from the
  first to the last spike x 70 groups of 10 units);
- ``mlp``: a one-hidden-layer MLP (256 ReLU units) on the same features;
- ``gru``: a GRU(128) on onset-aligned log counts in 40 bins of 20 ms x 140 groups of 5 units (0.8 s from the
  first spike), dropout 0.2, +-2-bin time-shift augmentation, Adam; the epoch with the best validation accuracy;
- ``gru_chan_shift``: the same GRU also trained with the SNN recipe's channel shifts (every sample moved by a
  uniform -K..K groups, zero-filled; ``--gru-chan-shift K``, default 2), so that the SNN's augmentation is not
  counted as the spiking model's edge;
- ``gru_chan_shift_stretch`` (with ``--gru-time-stretch S``): that GRU also trained on samples played at random
  speeds, the SNN's ``--time-stretch``.

The GRUs are trained once per ``--seeds`` seed (same seeds, same data, same budget); their value is the mean test
accuracy over the seeds, each seed's figures are in the protocol.

Writes ``{"logreg": ACC, "mlp": ACC, "gru": ACC, "gru_chan_shift": ACC, "protocol": {...}}`` (test accuracies as
fractions; the protocol holds the features, the selection, the split sizes, the files' SHA-256, per-family test
accuracy, and the CPU seconds) atomically to ``--out``.

    OMP_NUM_THREADS=1 nice python benchmarks/baselines_spoken_digits.py --data-root DATA --seeds 0 1 2 \\
        --out benchmarks/results/spoken_digits_baselines.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np


def load_split(root, split):
    from neurosynth.datasets.cochlea import read_shd_h5
    from neurosynth.datasets.spoken_digits import file_path

    d = read_shd_h5(file_path(root, split))
    return d["times"], d["units"], np.asarray(d["labels"]), d["speaker"]


def onset(t: np.ndarray) -> float:
    return float(t.min()) if t.size else 0.0


def summary_features(times, units, channels=700, T=8, groups=70):
    """Onset-aligned, length-normalised log counts ``[N, T * groups]``."""
    out = np.zeros((len(times), T, groups), np.float32)
    per = int(np.ceil(channels / groups))
    for i, (t, u) in enumerate(zip(times, units)):
        if t.size == 0:
            continue
        t0, t1 = onset(t), float(t.max())
        b = np.clip(((t - t0) / max(t1 - t0, 1e-3) * T).astype(int), 0, T - 1)
        np.add.at(out[i], (b, np.minimum(u // per, groups - 1)), 1.0)
    return np.log1p(out).reshape(len(times), -1)


def sequence_features(times, units, channels=700, T=40, dt=0.02, groups=140):
    """Onset-aligned log counts ``[N, T, groups]`` (``T`` bins of ``dt`` s from the first spike)."""
    out = np.zeros((len(times), T, groups), np.float32)
    per = int(np.ceil(channels / groups))
    for i, (t, u) in enumerate(zip(times, units)):
        if t.size == 0:
            continue
        b = ((t - onset(t)) / dt).astype(int)
        m = b < T
        np.add.at(out[i], (b[m], np.minimum(u[m] // per, groups - 1)), 1.0)
    return np.log1p(out)


def fit_sklearn(kind, Xtr, ytr, Xva, yva, Xte, yte, seed):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    best = None
    grid = [1e-3, 1e-2, 1e-1, 1.0] if kind == "logreg" else [1e-3, 1e-2, 1e-1, 1.0]
    for h in grid:
        if kind == "logreg":
            clf = LogisticRegression(C=h, max_iter=2000)
        else:
            clf = MLPClassifier(hidden_layer_sizes=(256,), alpha=h, max_iter=300, early_stopping=False,
                                random_state=seed)
        model = make_pipeline(StandardScaler(), clf).fit(Xtr, ytr)
        va = float((model.predict(Xva) == yva).mean())
        if best is None or va > best[0]:
            best = (va, h, model)
    va, h, model = best
    pred = model.predict(Xte)
    return float((pred == yte).mean()), {"selected": h, "grid": grid, "valid_acc": va}, pred


def shift_channels(x, shifts):
    """``x [B, T, C]`` with sample ``b`` moved by ``shifts[b]`` channels (zero-filled; the SNN's ``shift_frames``)."""
    import torch

    from neurosynth.apps.recipes.audio import shift_frames

    return torch.stack([shift_frames(x[b], 0, int(dc)) for b, dc in enumerate(shifts)])


def fit_gru(Xtr, ytr, Xva, yva, Xte, yte, seed, epochs, hidden=128, chan_shift=0, stretch=0.0):
    import torch

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    Xtr_t, Xva_t, Xte_t = (torch.from_numpy(x) for x in (Xtr, Xva, Xte))
    ytr_t = torch.from_numpy(ytr.astype(np.int64))

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(Xtr.shape[2], hidden, batch_first=True)
            self.drop = torch.nn.Dropout(0.2)
            self.out = torch.nn.Linear(hidden, 20)

        def forward(self, x):
            h, _ = self.gru(x)
            return self.out(self.drop(h.mean(1)))

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)

    def predict(X):
        net.eval()
        with torch.no_grad():
            return net(X).argmax(1).numpy()

    best = (-1.0, 0, None)
    history = []
    for ep in range(epochs):
        net.train()
        perm = torch.randperm(len(Xtr_t), generator=gen)
        for s in range(0, len(perm), 64):
            idx = perm[s:s + 64]
            shift = int(torch.randint(-2, 3, (1,), generator=gen))
            xb = torch.roll(Xtr_t[idx], shifts=shift, dims=1)
            if stretch:  # each sample played at a log-uniform speed in [1/(1+s), 1+s] (the SNN's --time-stretch)
                from neurosynth.apps.recipes.audio import stretch_frames, stretch_speed

                u = torch.rand(len(idx), generator=gen, dtype=torch.float64)
                xb = torch.stack([stretch_frames(xb[b], stretch_speed(stretch, u[b])) for b in range(len(idx))])
            if chan_shift:
                xb = shift_channels(xb, torch.randint(-chan_shift, chan_shift + 1, (len(idx),), generator=gen))
            loss = torch.nn.functional.cross_entropy(net(xb), ytr_t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        va = float((predict(Xva_t) == yva).mean())
        history.append(round(va, 4))
        if va > best[0]:
            best = (va, ep + 1, {k: v.clone() for k, v in net.state_dict().items()})
    net.load_state_dict(best[2])
    pred = predict(Xte_t)
    return float((pred == yte).mean()), {"epochs": epochs, "selected_epoch": best[1], "valid_acc": best[0],
                                         "valid_history": history, "hidden": hidden, "chan_shift": chan_shift,
                                         "time_stretch": stretch}, pred


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", required=True, help="the folder holding SpokenDigits/ (as given to data generate)")
    p.add_argument("--out", default="benchmarks/results/spoken_digits_baselines.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="train the GRUs once per seed and report the mean (default: --seed alone)")
    p.add_argument("--gru-epochs", type=int, default=30)
    p.add_argument("--gru-time-stretch", type=float, default=0.0, metavar="S",
                   help="also train gru_chan_shift_stretch: gru_chan_shift with samples played at log-uniform speeds "
                        "in [1/(1+S), 1+S] (default 0: skip it)")
    p.add_argument("--gru-chan-shift", type=int, default=2, metavar="K",
                   help="also train gru_chan_shift: the GRU with +-K-group channel shifts (0: skip it)")
    args = p.parse_args(argv)
    import torch

    from neurosynth.datasets.spoken_digits import _read_manifest, check
    from neurosynth.errors import UserError
    from neurosynth.io import atomic_write

    if args.gru_chan_shift < 0 or args.gru_epochs < 1 or not 0 <= args.gru_time_stretch < 10:
        raise UserError(f"--gru-chan-shift must be >= 0, --gru-epochs >= 1 and --gru-time-stretch in [0, 10) (got "
                        f"{args.gru_chan_shift}, {args.gru_epochs} and {args.gru_time_stretch})")
    ok, reason = check(args.data_root)
    if not ok:
        raise UserError(f"no complete spoken_digits under {args.data_root} ({reason}); generate it with: "
                        f"neurosynth data generate spoken_digits --root {args.data_root}")
    torch.set_num_threads(1)
    man = _read_manifest(args.data_root)
    from neurosynth.datasets.spoken_digits import accuracy_by_family, sample_families

    test_families = sample_families(args.data_root, "test")
    data = {s: load_split(args.data_root, s) for s in ("train", "valid", "test")}
    ch = int(man["cochlea"]["n_channels"])
    res, proto = {}, {"features": {}, "models": {}}
    c0 = time.process_time()
    feats = {s: summary_features(d[0], d[1], ch) for s, d in data.items()}
    y = {s: d[2] for s, d in data.items()}
    for kind in ("logreg", "mlp"):
        acc, info, pred = fit_sklearn(kind, feats["train"], y["train"], feats["valid"], y["valid"], feats["test"],
                                      y["test"], args.seed)
        res[kind] = round(acc, 4)
        info["test_by_family"] = accuracy_by_family(pred, y["test"], test_families)
        proto["models"][kind] = info
    proto["features"]["logreg/mlp"] = ("onset-aligned, length-normalised log1p spike counts: 8 time bins from the "
                                       "first to the last spike x 70 groups of 10 units; standardised")
    seq = {s: sequence_features(d[0], d[1], ch) for s, d in data.items()}
    seeds = args.seeds if args.seeds else [args.seed]
    models = [("gru", 0, 0.0)]
    if args.gru_chan_shift:
        models.append(("gru_chan_shift", args.gru_chan_shift, 0.0))
    if args.gru_time_stretch:
        models.append(("gru_chan_shift_stretch", args.gru_chan_shift, args.gru_time_stretch))
    for name, cs, st in models:
        runs = []
        for seed in seeds:
            acc, info, pred = fit_gru(seq["train"], y["train"], seq["valid"], y["valid"], seq["test"], y["test"], seed,
                                      args.gru_epochs, chan_shift=cs, stretch=st)
            info.update(seed=seed, test_acc=round(acc, 4),
                        test_by_family=accuracy_by_family(pred, y["test"], test_families))
            runs.append(info)
        accs = [r["test_acc"] for r in runs]
        res[name] = round(float(np.mean(accs)), 4)
        proto["models"][name] = {**runs[0], "seeds": seeds, "per_seed": runs,
                                 "test_mean": res[name], "test_sd": round(float(np.std(accs, ddof=1)), 4)
                                 if len(accs) > 1 else None}
    proto["features"]["gru"] = ("onset-aligned log1p counts, 40 bins of 20 ms (0.8 s) x 140 groups of 5 units; "
                                "GRU(128), mean over time, dropout 0.2, +-2-bin time-shift augmentation, Adam 2e-3, "
                                "batch 64; the epoch with the best validation accuracy; mean test accuracy over the "
                                "seeds")
    if args.gru_time_stretch:
        proto["features"]["gru_chan_shift_stretch"] = (f"as gru_chan_shift, and every training sample played at a "
                                                       f"log-uniform speed in [1/(1+S), 1+S], S = "
                                                       f"{args.gru_time_stretch} (the SNN's --time-stretch)")
    if args.gru_chan_shift:
        proto["features"]["gru_chan_shift"] = (f"as gru, and every training sample moved by a uniform "
                                               f"-{args.gru_chan_shift}..{args.gru_chan_shift} channel groups "
                                               f"(zero-filled), the SNN recipe's channel shifts")
    proto.update({
        "selection": "hyper-parameters and epochs chosen on the validation split (unseen voices); test used once",
        "splits": {s: {"samples": int(len(y[s])), "voices": len(man["voices"][s])} for s in y},
        "dataset": {"options": man["options"], "espeak_ng": man["espeak_ng"],
                    "sha256": {s: f["sha256"] for s, f in man["files"].items()}},
        "seed": args.seed, "seeds": seeds, "cpu_seconds": round(time.process_time() - c0, 1),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores (shared), torch threads 1",
        "command": "python benchmarks/baselines_spoken_digits.py " + " ".join(argv if argv is not None else
                                                                              __import__("sys").argv[1:]),
    })
    res["protocol"] = proto
    with atomic_write(args.out, "w") as f:
        f.write(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k != "protocol"}))
    return 0


if __name__ == "__main__":
    from neurosynth.errors import run_script

    raise SystemExit(run_script(main))
