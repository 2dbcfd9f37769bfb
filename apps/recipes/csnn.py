"""Conv-SNN recipe for static-image datasets (Fashion-MNIST by default): conv -> BN -> spiking neuron -> pool
blocks, direct (analog current) input repeated over ``T`` steps, a leaky-integrator readout scored by its
mean membrane (cross-entropy), Adam with cosine decay. Writes a run directory like ``neurosynth train``.

Two presets (``recipe=``):

* ``"cpu"`` (the default): small and fast, sized for a 2-core CPU: T=2, channels 16,32, one FC layer of 256,
  LIF (beta 0.5), batch 128, Adam 2e-3, 8 epochs. Measured in ``docs/datasets.md``.
* ``"full"``: SpikingJelly's Fashion-MNIST tutorial network (conv128-BN-spike-maxpool x2, FC 2048, T=4)
  with a learnable membrane decay (PLIF-style), dropout 0.5, Adam 1e-3, 64 epochs: meant for a GPU; the
  published reference points are 93.3% (SpikingJelly, IF neurons) and 94.38% (PLIF paper). Not measured
  here (no GPU was available).

Any field can be overridden (the CLI flags ``--T``, ``--channels``, ``--hidden``, ``--neuron``, ``--beta``,
``--epochs``, ``--lr``, ``--batch-size``, ``--encoder``...).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

RECIPES: dict[str, dict] = {
    "cpu": {"T": 2, "channels": "16,32", "hidden": "256", "neuron": "lif", "beta": 0.5, "threshold": 1.0,
            "learn": "", "dropout": 0.0, "pool": "max", "epochs": 8, "lr": 2e-3, "batch_size": 128,
            "encoder": "current", "weight_decay": 0.0, "surrogate": "atan"},
    "full": {"T": 4, "channels": "128,128", "hidden": "2048", "neuron": "lif", "beta": 0.5, "threshold": 1.0,
             "learn": "beta", "dropout": 0.5, "pool": "max", "epochs": 64, "lr": 1e-3, "batch_size": 128,
             "encoder": "current", "weight_decay": 0.0, "surrogate": "atan"},
}


def resolve(cfg: dict) -> dict:
    """The recipe's defaults with every field of ``cfg`` that is not ``None`` on top."""
    from neurosynth.errors import UserError

    name = cfg.get("recipe") or "cpu"
    if name not in RECIPES:
        raise UserError(f"--recipe must be one of {sorted(RECIPES)}; got {name!r}")
    out = {**RECIPES[name], **{k: v for k, v in cfg.items() if v is not None}}
    out["recipe"] = name
    return out


def _ints(value, flag: str) -> list[int]:
    from neurosynth.errors import UserError

    try:
        vals = [int(v) for v in str(value).split(",") if v.strip()]
    except ValueError as e:
        raise UserError(f"{flag} must be comma-separated integers, e.g. 16,32; got {value!r}") from e
    if any(v < 1 for v in vals):
        raise UserError(f"{flag} sizes must be positive; got {value!r}")
    return vals


def build_spec(cfg: dict, input_shape, n_out: int) -> dict:
    from neurosynth.arch import csnn_spec
    from neurosynth.errors import UserError
    from neurosynth.neurons import NEURONS

    channels = _ints(cfg["channels"], "--channels")
    if not channels:
        raise UserError("--channels needs at least one conv block, e.g. 16,32")
    hidden = _ints(cfg.get("hidden", ""), "--hidden")
    try:
        cls = NEURONS.get(cfg["neuron"])
    except ValueError as e:
        raise UserError(str(e)) from e
    params = {k: cfg[k] for k in ("beta", "threshold") if k in cls.defaults and cfg.get(k) is not None}
    kw = {"surrogate": cfg.get("surrogate", "atan")}
    learn = [s for s in str(cfg.get("learn") or "").split(",") if s and s in cls.defaults]
    if learn:
        kw["learn"] = learn
    if cfg.get("reset"):
        kw["reset"] = cfg["reset"]
    try:
        return csnn_spec(list(input_shape), channels, n_out, hidden, neuron=cfg["neuron"], neuron_params=params,
                         readout="li", pool=cfg.get("pool", "max"), dropout=float(cfg.get("dropout", 0.0)), **kw)
    except ValueError as e:
        raise UserError(f"cannot build the conv SNN for input {list(input_shape)}: {e}") from e


def load_data(cfg: dict):
    """Train and test :class:`EncodedImages` ([C, H, W] images) and their batch loaders."""
    from neurosynth.datasets import DATASETS, entries, load
    from neurosynth.errors import UserError

    name = cfg["dataset"]
    if name not in DATASETS or not DATASETS.get(name).is_image:
        raise UserError(f"--arch csnn trains on static image datasets {[e.name for e in entries(is_image=True)]}; "
                        f"got {name!r} (for event data use examples/train_dvs_gesture.py)")
    T = int(cfg["T"])
    if T < 1:
        raise UserError(f"--T must be >= 1; got {T}")
    encoding = {"current": "direct"}.get(cfg["encoder"], cfg["encoder"])
    kw = {"T": T, "encoding": encoding, "seed": int(cfg.get("seed", 0)), "flatten": False}
    if cfg.get("download"):
        kw["download"] = True
    limit = cfg.get("limit")
    if limit:
        kw["limit"] = int(limit)
    root = cfg.get("root")
    train = load(name, root, "train", **kw)
    test = load(name, root, "test", **{k: v for k, v in kw.items() if k != "limit"})
    bs = int(cfg["batch_size"])
    if bs < 1:
        raise UserError(f"--batch-size must be >= 1; got {bs}")
    return train, test, train.batches(bs, shuffle=True, seed=int(cfg.get("seed", 0))), test.batches(1000, shuffle=False)


def train_csnn(cfg: dict) -> dict:
    """Train the conv SNN from a config dict (CLI arguments; ``None`` means the recipe's default), write the run
    directory ``cfg['out']`` and return the metrics."""
    import torch

    from neurosynth.arch import build
    from neurosynth.errors import UserError
    from neurosynth.plots import plot_history, plot_raster
    from neurosynth.rundir import RunDir
    from neurosynth.training import evaluate, fit
    from neurosynth.utils import seed_all

    cfg = resolve({k: v for k, v in cfg.items() if not k.startswith("_") and not callable(v)})
    device = str(cfg.get("device") or "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was requested but no CUDA device is available; use --device cpu")
    epochs = int(cfg["epochs"])
    if epochs < 1:
        raise UserError(f"--epochs must be >= 1; got {epochs}")
    if not float(cfg["lr"]) > 0:
        raise UserError(f"--lr must be > 0; got {cfg['lr']}")
    torch.set_num_threads(max(1, int(cfg.get("threads") or 1)))
    seed = int(cfg.get("seed", 0))
    seed_all(seed)
    train, test, train_batches, test_batches = load_data(cfg)
    spec = build_spec(cfg, train.images.shape[1:], train.n_classes)
    model = build(spec)
    loss = "mean_membrane_ce"
    run_dir = RunDir(cfg["out"])
    t0, c0 = time.perf_counter(), time.process_time()
    hist = fit(model, train_batches, epochs=epochs, lr=float(cfg["lr"]), loss=loss, val_loader=test_batches,
               device=device, progress=not cfg.get("no_progress", False), amp=cfg.get("amp"),
               weight_decay=float(cfg.get("weight_decay", 0.0)))
    train_seconds, train_cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    model.cpu()
    ev = evaluate(model, test.batches(1000, shuffle=False), loss, record_rates=True)
    metrics = {
        "dataset": f"{cfg['dataset']} (train {len(train)}, test {len(test)})",
        "recipe": cfg["recipe"],
        "test_accuracy": ev["accuracy"],
        "test_loss": ev["loss"],
        "test_samples": ev["samples"],
        "best_epoch_test_accuracy": max(hist["val_accuracy"]),
        "train_accuracy": hist["train_accuracy"][-1],
        "firing_rates": ev["firing_rates"],
        "epochs": epochs,
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu_seconds,
        "threads": torch.get_num_threads(),
        "history": hist,
    }
    run_dir.save_model(model, spec)
    run_dir.write_json("metrics.json", metrics)
    plot_history(hist, run_dir.plot_path("curves"), title=f"{cfg['dataset']} conv SNN, T={cfg['T']}")
    from neurosynth.losses import get_loss

    x, y = next(iter(test.batches(1, shuffle=False)))
    with torch.no_grad():
        out, rec = model(x, record=True)
    plot_raster(rec, run_dir.plot_path("raster"), title="spike raster, first test sample", output=out,
                label=int(y[0]), prediction=int(get_loss(loss).predict(out)[0]))
    run_dir.write_manifest(cfg.get("_command") or sys.argv, {**cfg, "out": str(Path(cfg["out"]))}, seed,
                           {"test_accuracy": ev["accuracy"], "train_seconds": train_seconds})
    return metrics
