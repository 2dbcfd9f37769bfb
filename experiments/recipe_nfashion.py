"""The neuromorphic Fashion-MNIST recipe (issue 21): train the float conv SNN, its Loihi-exact variant and the
non-spiking baselines on the same event frames, every choice on a validation split carved from the training
data, the test split read once at the end; results written after every epoch, ``--resume`` continues.

    python experiments/recipe_nfashion.py --data-root runs/nfdata3 --n-samples 20000,2000 --model snn \\
        --out runs/recipe_nf/snn
    python experiments/recipe_nfashion.py --data-root runs/nfdata3 --n-samples 20000,2000 --model loihi \\
        --out runs/recipe_nf/loihi
    python experiments/recipe_nfashion.py --data-root runs/nfdata3 --n-samples 20000,2000 --model cnn \\
        --out runs/recipe_nf/cnn                       # also: --model logreg
    python experiments/recipe_nfashion.py --collect runs/recipe_nf --out benchmarks/results/nfashion_recipe.json

Models (the builders live in ``examples/train_dvs_gesture.py``, so the example trains the same networks):

- ``snn``: :func:`build_nfashion_model`, conv3x3(32) -> BatchNorm -> LIF -> maxpool -> conv3x3(64) -> BatchNorm ->
  LIF -> maxpool -> FC 256 LIF -> 10 leaky integrators (mean membrane, cross-entropy), event counts as input;
- ``loihi``: the Loihi-exact pooled conv net of the example's ``--loihi`` (binary frames, 8-bit weights, zero reset,
  one-step delays, sum pooling, spike-count readout), ``--tail`` silent steps; its fixed-point accuracy on the whole
  test split comes from the integer reference that Lava's fixed-point run matches bit for bit
  (``neurosynth.hardware.lava.reference.simulate``; check a subset in Lava with the example's ``--verify-run``);
- ``cnn``: a non-spiking CNN (same conv stack with ReLU) on the event counts summed over time;
- ``logreg``: logistic regression on the log event counts summed over time (2 x 34 x 34), ``C`` chosen on validation.

The run folder holds ``progress.json`` (rewritten after every epoch), ``checkpoint.pt`` (every epoch) and, at the end,
a neurosynth run directory ``run/`` (``arch.json``, ``model.pt``, ``metrics.json``, ``manifest.json``) of the epoch
chosen on validation, and ``result.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def example_module():
    spec = importlib.util.spec_from_file_location("train_dvs_gesture", ROOT / "examples" / "train_dvs_gesture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default="runs/nfdata3")
    p.add_argument("--n-samples", default="20000,2000", metavar="TRAIN,TEST")
    p.add_argument("--model", choices=["snn", "loihi", "cnn", "logreg"], default="snn")
    p.add_argument("--T", type=int, default=None, help="time bins per sample (default: the recipe's)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--channels", type=int, default=None)
    p.add_argument("--hidden", type=int, default=None)
    p.add_argument("--tail", type=int, default=None, help="loihi: silent steps appended (default 6)")
    p.add_argument("--init-gain", type=float, default=None, help="loihi: initial weight gain (default 4)")
    p.add_argument("--binary", action="store_true",
                   help="snn/cnn: clip the frames to 0/1 as the Loihi net sees them (a diagnostic of the binarisation)")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split-seed", type=int, default=0, help="seeds the validation split (as the examples')")
    p.add_argument("--fixed-run", default=None, metavar="RUN",
                   help="do not train: accuracy of the trained --loihi example run RUN in fixed point (the integer "
                        "network Lava runs bit for bit) on every test sample; writes --out (JSON)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--collect", default=None, metavar="DIR",
                   help="do not train: gather the runs under DIR into the JSON file --out (see collect)")
    p.add_argument("--note", default=None, help="--collect: a JSON object added to the protocol")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------------ data

def frames(data_root: str, split: str, n: int, T: int):
    """All samples of a split binned into ``T`` frames: uint8 counts ``[N, T, 2, 34, 34]`` and labels, cached
    beside the event file (the binning is the example's: ``load("nfashion_mnist", T=T)``)."""
    import torch

    from neurosynth.datasets import load
    from neurosynth.io import atomic_path

    ds = load("nfashion_mnist", data_root, split, T=T, n_samples=n, cache=False, generate_missing=False)
    src = Path(ds.location.path)
    cache = src.with_name(f"{src.stem}-frames-T{T}.pt")
    if cache.exists():
        d = torch.load(cache, weights_only=True)
        return d["x"], d["y"], src
    xs = torch.zeros((len(ds), T, 2, 34, 34), dtype=torch.uint8)
    ys = torch.zeros(len(ds), dtype=torch.long)
    for i in range(len(ds)):
        x, y = ds[i]
        xs[i] = torch.as_tensor(x).clamp(0, 255).to(torch.uint8)
        ys[i] = int(y)
    with atomic_path(cache) as tmp:
        torch.save({"x": xs, "y": ys}, tmp)
    return xs, ys, src


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def val_split(y, fraction: float, seed: int):
    """The examples' split (``neurosynth.workflow.split_indices``: stratified, seeded), so the baselines are
    selected on the same validation samples as ``examples/train_dvs_gesture.py --val-fraction F --split-seed S``."""
    import torch

    from neurosynth.workflow import split_indices

    fit, val, split = split_indices(y.tolist(), fraction, seed)
    return torch.as_tensor(fit), torch.as_tensor(val), split


# ------------------------------------------------------------------------------------------------ models

def recipe(args) -> dict:
    ex = example_module()
    r = dict(ex.NFASHION_RECIPE[args.model if args.model in ex.NFASHION_RECIPE else "snn"])
    r["binary_frames"] = bool(args.binary) or args.model == "loihi"
    for k in ("T", "epochs", "batch_size", "lr", "channels", "hidden", "tail", "init_gain"):
        v = getattr(args, k)
        if v is not None:
            r[k] = v
    return r


def build(args, r):
    import torch.nn as nn

    ex = example_module()
    if args.model == "snn":
        return ex.build_nfashion_model(r["channels"], r["hidden"], beta=r["beta"], dropout=r["dropout"])
    if args.model == "loihi":
        from neurosynth.hardware.targets.loihi_qat import scale_synapses

        return scale_synapses(ex.build_loihi_model(34, r["channels"], r["hidden"], 10, beta=r["beta"]), r["init_gain"])
    c, h = r["channels"], r["hidden"]
    return nn.Sequential(nn.Conv2d(2, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(c, 2 * c, 3, padding=1, bias=False), nn.BatchNorm2d(2 * c), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(r["dropout"]), nn.Linear(2 * c * 64, h), nn.ReLU(),
                         nn.Linear(h, 10))


BINARY = False  # --binary


def inputs(model_kind: str, xb, tail: int = 0):
    """uint8 frames ``[B, T, 2, 34, 34]`` -> the model's input."""
    import torch

    if BINARY:
        xb = (xb > 0).to(xb.dtype)

    if model_kind == "cnn":
        return torch.log1p(xb.float().sum(1))
    x = xb.permute(1, 0, 2, 3, 4).float()  # time-first
    if model_kind == "loihi":
        x = (x > 0).float()
        if tail:
            x = torch.cat([x, x.new_zeros((tail, *x.shape[1:]))])
    return x


def logits(model_kind: str, out):
    if model_kind == "cnn":
        return out
    return out.sum(0) if model_kind == "loihi" else out.mean(0)  # spike counts / mean membrane


def accuracy(model, kind, X, Y, idx, bs, tail):
    import torch

    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, len(idx), 256):
            j = idx[s:s + 256]
            correct += int((logits(kind, model(inputs(kind, X[j], tail))).argmax(-1) == Y[j]).sum())
    return correct / max(len(idx), 1)


# ------------------------------------------------------------------------------------------------ training

def write_json(path: Path, obj) -> None:
    from neurosynth.io import atomic_write

    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=1)


def train(args) -> int:
    import torch

    global BINARY
    BINARY = bool(args.binary)

    from neurosynth.training import clamp_params_

    torch.set_num_threads(args.threads)
    r = recipe(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n_train, n_test = (int(v) for v in args.n_samples.split(","))
    t_cpu0 = time.process_time()
    X, Y, src_train = frames(args.data_root, "train", n_train, r["T"])
    Xt, Yt, src_test = frames(args.data_root, "test", n_test, r["T"])
    fit_idx, val_idx, split = val_split(Y, args.val_fraction, args.split_seed)
    data = {"train_file": src_train.name, "test_file": src_test.name, "train_sha256": file_sha256(src_train),
            "test_sha256": file_sha256(src_test), "n_fit": len(fit_idx), "n_val": len(val_idx), "n_test": len(Yt),
            "split": split.to_dict(),
            "frames_cpu_seconds": round(time.process_time() - t_cpu0, 1)}
    if args.model == "logreg":
        return train_logreg(args, r, X, Y, Xt, Yt, fit_idx, val_idx, data, out)
    torch.manual_seed(args.seed)
    model = build(args, r)
    opt = torch.optim.Adam(model.parameters(), lr=r["lr"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=r["epochs"])
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(args.seed + 1)
    hist = {"epoch": [], "train_loss": [], "train_accuracy": [], "val_accuracy": [], "cpu_seconds": [],
            "wall_seconds": []}
    best = {"val_accuracy": -1.0, "epoch": 0}
    ckpt = out / "checkpoint.pt"
    start = 0
    if args.resume and ckpt.exists():
        c = torch.load(ckpt, weights_only=False)
        model.load_state_dict(c["model"])
        opt.load_state_dict(c["opt"])
        sched.load_state_dict(c["sched"])
        g.set_state(c["gen"])
        hist, best, start = c["hist"], c["best"], c["epoch"]
        print(f"resumed after epoch {start}", flush=True)
    tail = r.get("tail", 0) if args.model == "loihi" else 0
    for epoch in range(start, r["epochs"]):
        c0, w0 = time.process_time(), time.time()
        model.train()
        perm = fit_idx[torch.randperm(len(fit_idx), generator=g)]
        tot = correct = n = 0
        for s in range(0, len(perm), r["batch_size"]):
            j = perm[s:s + r["batch_size"]]
            z = logits(args.model, model(inputs(args.model, X[j], tail)))
            loss = loss_fn(z, Y[j])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            clamp_params_(model)
            tot += float(loss) * len(j)
            correct += int((z.argmax(-1) == Y[j]).sum())
            n += len(j)
        sched.step()
        va = accuracy(model, args.model, X, Y, val_idx, r["batch_size"], tail)
        hist["epoch"].append(epoch + 1)
        hist["train_loss"].append(tot / n)
        hist["train_accuracy"].append(correct / n)
        hist["val_accuracy"].append(va)
        hist["cpu_seconds"].append(round(time.process_time() - c0, 1))
        hist["wall_seconds"].append(round(time.time() - w0, 1))
        if va > best["val_accuracy"]:  # ties keep the earlier epoch
            best = {"val_accuracy": va, "epoch": epoch + 1,
                    "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        from neurosynth.io import atomic_path

        with atomic_path(ckpt) as tmp:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "gen": g.get_state(), "hist": hist, "best": best, "epoch": epoch + 1}, tmp)
        write_json(out / "progress.json", {"model": args.model, "recipe": r, "data": data, "history": hist,
                                           "chosen_epoch_so_far": best["epoch"]})
        print(f"epoch {epoch + 1}: train {hist['train_accuracy'][-1]:.4f} val {va:.4f} "
              f"({hist['cpu_seconds'][-1]} s cpu, {hist['wall_seconds'][-1]} s wall)", flush=True)
    model.load_state_dict(best["state"])
    test_idx = torch.arange(len(Yt))
    result = {"model": args.model, "recipe": r, "data": data, "history": hist, "chosen_epoch": best["epoch"],
              "val_accuracy": best["val_accuracy"], "selection": "epoch with the highest validation accuracy",
              "test_accuracy": accuracy(model, args.model, Xt, Yt, test_idx, r["batch_size"], tail),
              "train_cpu_seconds": round(sum(hist["cpu_seconds"]), 1),
              "train_wall_seconds": round(sum(hist["wall_seconds"]), 1)}
    if args.model == "loihi":
        result["loihi_fixed_accuracy"] = fixed_accuracy(model, Xt, Yt, tail)
    save_run(args, model, r, result, out)
    write_json(out / "result.json", result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("history",)}), flush=True)
    return 0


def fixed_accuracy(model, Xt, Yt, tail: int) -> dict:
    """Accuracy of the integer (fixed-point) network that Lava runs bit for bit, on every test sample."""
    import numpy as np

    from neurosynth.hardware.lava.ir import check_fixed, extract
    from neurosynth.hardware.lava.reference import simulate

    net = extract(model.eval(), (2, 34, 34))
    check_fixed(net)
    correct, agree = 0, 0
    c0 = time.process_time()
    import torch

    for s in range(0, len(Yt), 100):
        x = inputs("loihi", Xt[s:s + 100], tail).numpy().astype(np.uint8)
        out = simulate(net, x, "fixed").output  # [T, B, 10]
        pred = out.sum(0).reshape(out.shape[1], -1).argmax(-1)
        with torch.no_grad():
            tp = model(torch.from_numpy(x).float()).sum(0).argmax(-1).numpy()
        correct += int((pred == Yt[s:s + 100].numpy()).sum())
        agree += int((pred == tp).sum())
    return {"accuracy": correct / len(Yt), "samples": len(Yt), "prediction_agreement_with_torch": agree / len(Yt),
            "cpu_seconds": round(time.process_time() - c0, 1),
            "how": "neurosynth.hardware.lava.reference.simulate(net, x, 'fixed') on the exported integer network"}


def fixed_run(args) -> int:
    """``--fixed-run RUN``: the fixed-point accuracy of a trained ``examples/train_dvs_gesture.py --loihi --size 34``
    run on the whole test file (its manifest gives T, tail and the data)."""
    import torch

    from neurosynth.rundir import load_run

    torch.set_num_threads(args.threads)
    run = Path(args.fixed_run)
    model, spec, _ = load_run(run)
    cfg = json.loads((run / "manifest.json").read_text())["config"]
    if tuple(spec["input_shape"]) != (2, 34, 34):
        raise SystemExit(f"error: {run} was trained on inputs {spec['input_shape']}; --fixed-run takes --size 34 runs")
    n_test = int(str(cfg["n_samples"]).split(",")[-1])
    Xt, Yt, src = frames(cfg["data_root"], "test", n_test, int(cfg["T"]))
    c0 = time.process_time()
    model.eval()
    torch_acc = accuracy(model, "loihi", Xt, Yt, torch.arange(len(Yt)), 64, int(cfg["tail"]))
    res = {"run": str(run), "test_file": src.name, "test_sha256": file_sha256(src), "T": cfg["T"], "tail": cfg["tail"],
           "torch_accuracy": torch_acc, "fixed": fixed_accuracy(model, Xt, Yt, int(cfg["tail"])),
           "cpu_seconds": None}
    res["cpu_seconds"] = round(time.process_time() - c0, 1)
    write_json(Path(args.out), res)
    print(json.dumps(res), flush=True)
    return 0


def save_run(args, model, r, result, out: Path) -> None:
    from neurosynth.rundir import RunDir

    with RunDir.create(out / "run", kind="example") as run:
        run.save_model(model)
        run.write_json("metrics.json", {k: v for k, v in result.items()})
        run.write_manifest([sys.executable, *sys.argv], {**vars(args), "recipe": r}, args.seed,
                           {k: v for k, v in result.items() if k != "history"})


def train_logreg(args, r, X, Y, Xt, Yt, fit_idx, val_idx, data, out: Path) -> int:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    def feats(x):
        return np.log1p(x.float().sum(1).reshape(len(x), -1).numpy())

    F, Ft = feats(X), feats(Xt)
    mu, sd = F[fit_idx].mean(0), F[fit_idx].std(0) + 1e-6
    F, Ft = (F - mu) / sd, (Ft - mu) / sd
    c0 = time.process_time()
    scores = {}
    for C in (0.001, 0.003, 0.01, 0.1, 1.0):
        m = LogisticRegression(C=C, max_iter=300).fit(F[fit_idx], Y[fit_idx].numpy())
        scores[C] = (float(m.score(F[val_idx], Y[val_idx].numpy())), m)
    C = max(scores, key=lambda c: (scores[c][0], -c))
    result = {"model": "logreg", "features": "log(1 + event counts summed over time), 2x34x34, standardised",
              "data": data, "val_accuracy_by_C": {str(c): s[0] for c, s in scores.items()}, "chosen_C": C,
              "val_accuracy": scores[C][0], "test_accuracy": float(scores[C][1].score(Ft, Yt.numpy())),
              "train_cpu_seconds": round(time.process_time() - c0, 1)}
    write_json(out / "result.json", result)
    print(json.dumps(result), flush=True)
    return 0


def collect(args) -> int:
    """``--collect DIR``: the recipe's result file from ``DIR/snn`` and ``DIR/loihi`` (example run directories),
    ``DIR/loihi_fixed.json`` (``--fixed-run``), ``DIR/loihi/loihi_verify.json`` (the example's Lava check, if run)
    and ``DIR/{cnn,logreg}/result.json`` (the baselines), plus ``DIR/cpu.log`` (CPU time sampled while they ran)."""
    d = Path(args.collect)

    def js(p):
        p = d / p
        return json.loads(p.read_text()) if p.exists() else None

    def example(name):
        m, man = js(f"{name}/metrics.json"), js(f"{name}/manifest.json")
        if m is None:
            return None
        keep = ("test_accuracy", "chosen_epoch", "val_accuracy", "train_seconds", "seconds_per_epoch", "n_train",
                "n_val", "n_test")
        h = m.get("history", {})
        return {**{k: m.get(k) for k in keep}, "val_accuracy_per_epoch": h.get("val_accuracy"),
                "train_accuracy_per_epoch": h.get("train_accuracy"),
                "command": man["command"] if isinstance(man["command"], str) else " ".join(man["command"]),
                "config": man["config"], "split": man.get("split"), "selection": man.get("selection")}

    snn, loihi, fixed, verify = example("snn"), example("loihi"), js("loihi_fixed.json"), js("loihi/loihi_verify.json")
    base = {k: js(f"{k}/result.json") for k in ("cnn", "logreg")}
    cpu = cpu_seconds(d / "cpu.log")
    out = {"test_accuracy": snn and snn["test_accuracy"],
           "loihi_fixed_accuracy": fixed and fixed["fixed"]["accuracy"],
           "loihi_torch_accuracy": loihi and loihi["test_accuracy"],
           "baselines": {k: v["test_accuracy"] for k, v in base.items() if v},
           "test_samples": snn and snn["n_test"],
           "protocol": {"snn": snn, "loihi": loihi, "loihi_fixed": fixed, "loihi_lava_check": verify and verify["loihi"],
                        "baselines": {k: {kk: vv for kk, vv in v.items() if kk != "history"} for k, v in base.items()
                                      if v},
                        "training_cpu_seconds": cpu, **(json.loads(args.note) if args.note else {})}}
    write_json(Path(args.out), out)
    print(json.dumps({k: v for k, v in out.items() if k != "protocol"}))
    return 0


def cpu_seconds(log: Path) -> dict:
    """The last CPU time sampled (``ps -o time``) for each run in ``log`` (runs/nf/monitor.sh)."""
    import re

    last: dict[str, float] = {}
    if not log.exists():
        return last
    for line in log.read_text().splitlines():
        m = re.match(r"\s*\d+\s+\S+\s+(?:(\d+)-)?(\d+):(\d+):(\d+)\s+(.*)", line)
        if not m:
            continue
        d_, h, mi, se, cmd = m.groups()
        secs = int(d_ or 0) * 86400 + int(h) * 3600 + int(mi) * 60 + int(se)
        name = re.search(r"--out runs/nf/(\w+)", cmd)
        if name and name.group(1) in ("snn", "loihi", "cnn", "logreg", "loihi_fixed"):
            last[name.group(1)] = secs
    return last


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.collect:
        return collect(args)
    if args.fixed_run:
        return fixed_run(args)
    return train(args)


if __name__ == "__main__":
    raise SystemExit(main())
