"""Exploring the spoken-digits recipe of ``examples/train_shd.py`` on the validation split (issue 21).

Reads the generated spike files directly (numpy), builds onset-aligned features, trains a small SNN built from
neurosynth layers on the training voices and logs the validation accuracy per epoch (one JSON line per epoch
to ``--log``). The test split is never read here: this script only chooses.

Features: spike counts in ``--dt-ms`` bins x 140 channel groups (5 units each, the recipe of Hammouamri et al.
and Bittar & Garner on SHD), from ``--pre-ms`` before the word onset for ``--window-ms``. The onset is the first
10 ms bin whose population count exceeds ``--onset-frac`` of the sample's peak 10 ms count (the first spike is
spontaneous activity at t ~ 0, so it is no onset).

    OMP_NUM_THREADS=1 nice python experiments/recipe_spoken_digits.py --data-root /work/data --arch rec \\
        --hidden 256 --epochs 20 --log /tmp/recipes_cache/rec.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

CACHE = Path("/tmp/recipes_cache")


def onset_index(pop: np.ndarray, frac: float, smooth: int) -> int:
    """First index where the ``smooth``-bin moving sum of the population count exceeds ``frac`` of its peak."""
    s = np.convolve(pop, np.ones(smooth), mode="full")[: pop.size] if smooth > 1 else pop
    if s.max() <= 0:
        return 0
    return int(np.argmax(s > frac * s.max())) - (smooth - 1)


def features(root: str, split: str, dt_ms: float, window_ms: float, pre_ms: float, frac: float,
             groups: int = 140, binary: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(x [N, T, groups] float32 counts, y [N])`` onset-aligned as the module docstring says (cached)."""
    from neurosynth.datasets.cochlea import read_shd_h5
    from neurosynth.datasets.spoken_digits import file_path

    path = file_path(root, split)
    key = hashlib.sha256(json.dumps([str(path), path.stat().st_mtime, dt_ms, window_ms, pre_ms, frac, groups,
                                     binary]).encode()).hexdigest()[:16]
    f = CACHE / f"{split}_{key}.npz"
    if f.exists():
        z = np.load(f)
        return z["x"], z["y"]
    d = read_shd_h5(path)
    dt = dt_ms / 1000
    T = int(round(window_ms / dt_ms))
    smooth = max(1, int(round(10 / dt_ms)))
    pre = int(round(pre_ms / dt_ms))
    x = np.zeros((len(d["times"]), T, groups), np.float32)
    per = 700 // groups
    for i, (t, u) in enumerate(zip(d["times"], d["units"])):
        b = (np.asarray(t) / dt).astype(np.int64)
        pop = np.bincount(b)
        start = max(onset_index(pop.astype(np.float64), frac, smooth) - pre, 0)
        b = b - start
        m = (b >= 0) & (b < T)
        np.add.at(x[i], (b[m], np.minimum(np.asarray(u)[m] // per, groups - 1)), 1.0)
    if binary:
        np.minimum(x, 1.0, out=x)
    y = np.asarray(d["labels"], np.int64)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(f, x=x, y=y)
    return x, y


def _delays():
    """``neurosynth.delays`` (before the delays branch lands: a copy of it from that branch)."""
    try:
        import neurosynth.delays as d
    except ImportError:
        import importlib.util

        spec = importlib.util.spec_from_file_location("ns_delays", CACHE / "ns_delays.py")
        d = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(d)
    return d


def build(arch: str, n_in: int, hidden: int, dropout: float, beta: float, beta_out: float, layers: int = 1,
          alpha: float = 0.0, max_delay: int = 12, bn: bool = False,
          seed: int = 0, init_gain: float = 3.0):
    import torch.nn as nn

    from neurosynth.layers import SNN, Recurrent
    from neurosynth.neurons import ALIF, LI, LIF

    if arch == "loihi":  # the Loihi-exact model of examples/train_shd.py --loihi (spike-count readout)
        from neurosynth.arch import build as build_spec
        from neurosynth.hardware.targets.loihi_qat import loihi_rsnn_spec, scale_synapses

        return scale_synapses(build_spec(loihi_rsnn_spec(n_in, hidden, 20, beta=beta, alpha=alpha)), init_gain)
    mods: list = []
    n = n_in
    for _ in range(layers):
        if arch == "delays":
            mods.append(_delays().DelayedLinear(n, hidden, max_delay=max_delay))
            if bn:
                mods.append(nn.BatchNorm1d(hidden))
            mods.append(LIF(beta=beta, threshold=1.0, shape=hidden, learn_beta=True))
            if dropout:
                mods.append(nn.Dropout(dropout))
            n = hidden
            continue
        mods.append(nn.Linear(n, hidden))
        if bn:
            mods.append(nn.BatchNorm1d(hidden))
        if arch == "ff":
            mods.append(LIF(beta=beta, threshold=1.0, shape=hidden, learn_beta=True))
        elif arch == "rec":
            mods.append(Recurrent(hidden, LIF(beta=beta, threshold=1.0, shape=hidden, learn_beta=True)))
        elif arch in ("adlif", "radlif", "se_adlif", "rse_adlif"):
            import torch

            from neurosynth.neurons import build_neuron

            neuron = build_neuron(arch.removeprefix("r") if arch.startswith("r") else arch, shape=hidden)
            neuron.init_uniform_(torch.Generator().manual_seed(seed))
            mods.append(Recurrent(hidden, neuron) if arch.startswith("r") else neuron)
        elif arch == "alif":
            mods.append(Recurrent(hidden, ALIF(beta=beta, threshold=1.0, adapt_decay=0.98, adapt_scale=0.5,
                                               shape=hidden)))
        else:
            raise ValueError(arch)
        if dropout:
            mods.append(nn.Dropout(dropout))
        n = hidden
    mods += [nn.Linear(n, 20), LI(beta=beta_out)]
    return SNN(*mods)


def readout_loss(out, y, readout: str, temp: float = 1.0):
    """``out [T, B, 20]`` membranes (divided by ``temp``) -> (loss, logits)."""
    import torch
    import torch.nn.functional as F

    out = out / temp

    if readout == "softmax_sum":  # Bittar & Garner / Hammouamri: sum over time of the softmax
        p = F.softmax(out, dim=-1).mean(0)
        logp = torch.log(p + 1e-8)
        return F.nll_loss(logp, y), logp
    if readout == "count":  # spike counts as logits (rate_ce)
        z = out.sum(0)
        return F.cross_entropy(z, y), z
    if readout == "max":
        z = out.max(0).values
    else:  # mean
        z = out.mean(0)
    return F.cross_entropy(z, y), z


def summarize(log_dir: str) -> dict:
    """Best validation accuracy (and its epoch, the curve) of every ``*.jsonl`` log in ``log_dir``."""
    rows = []
    keys = ["arch", "layers", "hidden", "dt_ms", "window_ms", "readout", "temp", "log1p", "input_gain", "bn",
            "chan_shift", "shift", "dropout", "lr", "batch_size", "alpha", "init_gain", "binary", "max_delay", "epochs"]
    for f in sorted(Path(log_dir).glob("*.jsonl")):
        lines = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        if len(lines) < 2 or "args" not in lines[0]:
            continue
        a, ep = lines[0]["args"], lines[1:]
        best = max(ep, key=lambda r: r["val_acc"])
        rows.append({"name": f.stem, "config": {k: a.get(k) for k in keys if k in a}, "epochs_run": len(ep),
                     "finished": len(ep) == a["epochs"], "best_val_acc": best["val_acc"], "best_epoch": best["epoch"],
                     "val_curve": [r["val_acc"] for r in ep], "last_train_acc": ep[-1]["train_acc"],
                     "cpu_s_per_epoch": round(sum(r["cpu_s"] for r in ep) / len(ep), 1)})
    return {"what": "validation accuracy (the 400-utterance valid split, 10 unseen voices) of exploratory runs of "
                    "experiments/recipe_spoken_digits.py (unfinished runs were stopped early); the test split was "
                    "never read", "runs": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default="/work/data")
    p.add_argument("--dt-ms", type=float, default=10.0)
    p.add_argument("--window-ms", type=float, default=700.0)
    p.add_argument("--pre-ms", type=float, default=30.0)
    p.add_argument("--onset-frac", type=float, default=0.1)
    p.add_argument("--binary", action="store_true")
    p.add_argument("--log1p", action="store_true")
    p.add_argument("--arch", default="rec", choices=["ff", "rec", "alif", "loihi", "delays", "adlif", "radlif", "se_adlif",
                                                     "rse_adlif"])
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--beta", type=float, default=0.95)
    p.add_argument("--max-delay", type=int, default=12, help="delays: taps K (delays 0..K-1 steps)")
    p.add_argument("--bn", action="store_true", help="BatchNorm1d after each hidden Linear (not for Loihi)")
    p.add_argument("--init-gain", type=float, default=3.0, help="loihi: initial weights x this")
    p.add_argument("--alpha", type=float, default=0.0, help="loihi: current decay (CubaLIF)")
    p.add_argument("--beta-out", type=float, default=0.95)
    p.add_argument("--readout", default="softmax_sum", choices=["softmax_sum", "max", "mean", "count"])
    p.add_argument("--temp", type=float, default=1.0, help="readout membranes are divided by this")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--shift", type=int, default=2, help="+-steps of random time shift (augmentation)")
    p.add_argument("--chan-shift", type=int, default=0, help="+-channel groups of random shift (augmentation)")
    p.add_argument("--input-gain", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log", default=None, help="per-epoch JSON lines (required unless --summarize)")
    p.add_argument("--summarize", default=None, metavar="LOG_DIR",
                   help="print the best validation accuracy of every log in LOG_DIR as JSON and exit")
    args = p.parse_args(argv)
    if args.summarize:
        print(json.dumps(summarize(args.summarize), indent=1))
        return 0
    if not args.log:
        p.error("--log is required")
    import torch

    from neurosynth.training import clamp_params_

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    fk = dict(dt_ms=args.dt_ms, window_ms=args.window_ms, pre_ms=args.pre_ms, frac=args.onset_frac,
              binary=args.binary)
    xtr, ytr = features(args.data_root, "train", **fk)
    xva, yva = features(args.data_root, "valid", **fk)

    def prep(x):
        x = torch.from_numpy(x)
        if args.log1p:
            x = torch.log1p(x)
        return (x * args.input_gain).transpose(0, 1).contiguous()  # [T, N, C]

    Xtr, Xva = prep(xtr), prep(xva)
    Ytr, Yva = torch.from_numpy(ytr), torch.from_numpy(yva)
    model = build(args.arch, Xtr.shape[-1], args.hidden, args.dropout, args.beta, args.beta_out, args.layers,
                  args.alpha, args.max_delay, args.bn, args.seed, args.init_gain)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    log = Path(args.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        fh.write(json.dumps({"args": vars(args), "T": Xtr.shape[0], "n_train": Xtr.shape[1]}) + "\n")
    best = 0.0
    for ep in range(1, args.epochs + 1):
        model.train()
        if args.arch == "delays":
            _delays().start_epoch(model, ep - 1, args.epochs)
        c0 = time.process_time()
        perm = torch.randperm(Xtr.shape[1], generator=g)
        tl, tc, n = 0.0, 0, 0
        for s in range(0, len(perm), args.batch_size):
            idx = perm[s:s + args.batch_size]
            xb = Xtr[:, idx]
            if args.shift:
                k = int(torch.randint(-args.shift, args.shift + 1, (1,), generator=g))
                xb = torch.roll(xb, k, 0)
            if args.chan_shift:  # voices differ by formant / pitch: shift along the tonotopic axis (zero fill)
                c = int(torch.randint(-args.chan_shift, args.chan_shift + 1, (1,), generator=g))
                if c:
                    xb = torch.roll(xb, c, 2)
                    if c > 0:
                        xb[..., :c] = 0
                    else:
                        xb[..., c:] = 0
            out = model(xb)
            loss, z = readout_loss(out, Ytr[idx], args.readout, args.temp)
            opt.zero_grad()
            loss.backward()
            opt.step()
            clamp_params_(model)
            tl += loss.item() * len(idx)
            tc += int((z.argmax(1) == Ytr[idx]).sum())
            n += len(idx)
        sched.step()
        model.eval()
        with torch.no_grad():
            zs = [readout_loss(model(Xva[:, s:s + 200]), Yva[s:s + 200], args.readout, args.temp)[1]
                  for s in range(0, Xva.shape[1], 200)]
            va = float((torch.cat(zs).argmax(1) == Yva).float().mean())
        best = max(best, va)
        rec = {"epoch": ep, "train_loss": round(tl / n, 4), "train_acc": round(tc / n, 4), "val_acc": round(va, 4),
               "best": round(best, 4), "cpu_s": round(time.process_time() - c0, 1)}
        with log.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
