"""ANN training and ANN -> SNN conversion runs on scikit-learn digits (8x8), writing run directories.

* :func:`train_ann_digits` trains a small ReLU CNN (Conv-BN-ReLU, Conv-BN-ReLU, AvgPool, Linear) and writes a
  run directory (``arch.json`` ArchSpec, ``model.pt``, ``metrics.json``, ``manifest.json``).
* :func:`convert_run` loads such a run, converts it (:func:`neurosynth.conversion.convert`), measures accuracy
  at every ``T`` and the synaptic operations per ``T``, and writes a run directory with the converted SNN,
  ``metrics.json``, ``accuracy_vs_T.csv`` / ``.md`` and ``plots/accuracy_vs_T.png``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from neurosynth.conversion.convert import accuracy_vs_T, ann_layers, convert, repeat_input

DEFAULT_TS = (8, 16, 32, 64, 128, 256)
ANN_FORMAT_NOTE = "ReLU ANN (ArchSpec sequential; run it on [B, ...] layer by layer)"


def digits_cnn_spec(c1: int = 16, c2: int = 32) -> dict:
    """ArchSpec of the ReLU CNN for 1x8x8 digits."""
    return {
        "format": "neurosynth.arch/1", "kind": "sequential", "input_shape": [1, 8, 8], "note": ANN_FORMAT_NOTE,
        "layers": [
            {"type": "conv2d", "in_channels": 1, "out_channels": c1, "kernel_size": 3, "padding": 1},
            {"type": "batchnorm2d", "num_features": c1}, {"type": "relu"},
            {"type": "conv2d", "in_channels": c1, "out_channels": c2, "kernel_size": 3, "padding": 1, "stride": 2},
            {"type": "batchnorm2d", "num_features": c2}, {"type": "relu"},
            {"type": "avgpool2d", "kernel_size": 2},
            {"type": "flatten"},
            {"type": "linear", "in_features": c2 * 4, "out_features": 10},
        ],
    }


def ann_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run a sequential ANN on ``[B, ...]`` (not time-first)."""
    for m in ann_layers(model):
        x = m(x)
    return x


def train_ann_digits(out_dir: Path, seed: int = 0, epochs: int = 40, lr: float = 3e-3, batch_size: int = 64,
                     test_size: float = 0.25, progress: bool = True, command: Any = None) -> dict:
    """Train the digits ReLU CNN; write a run directory; return its metrics."""
    from neurosynth.arch import build
    from neurosynth.datasets.digits import load_digits_split
    from neurosynth.rundir import RunDir
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    spec = digits_cnn_spec()
    with torch.random.fork_rng(devices=[]):  # seeded weight init without touching the caller's global RNG
        torch.manual_seed(seed)
        model = build(spec)
    xtr, ytr, xte, yte = load_digits_split(test_size=test_size, image=True)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    t0 = time.perf_counter()
    it = range(epochs)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="ann", unit="epoch")
    for _ in it:
        model.train()
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), batch_size):
            j = perm[i:i + batch_size]
            loss = nn.functional.cross_entropy(ann_forward(model, xtr[j]), ytr[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        test_acc = float((ann_forward(model, xte).argmax(-1) == yte).float().mean())
        train_acc = float((ann_forward(model, xtr).argmax(-1) == ytr).float().mean())
    metrics = {"method": "ann", "test_accuracy": test_acc, "train_accuracy": train_acc, "epochs": epochs,
               "train_seconds": round(time.perf_counter() - t0, 2)}
    with RunDir.create(out_dir, kind="train") as run:
        run.save_model(model, spec)
        run.write_json("metrics.json", metrics)
        config = {"method": "ann", "dataset": "digits", "test_size": test_size, "split_seed": 0, "epochs": epochs,
                  "lr": lr, "batch_size": batch_size}
        run.write_manifest(command, config, seed, metrics)
    return metrics


def _synops_per_T(snn: nn.Module, x: torch.Tensor, Ts: list[int], batch_size: int = 256) -> dict[int, dict] | None:
    try:
        from neurosynth.hardware.energy import count_ops
    except ImportError:  # pragma: no cover - hardware part not installed
        return None
    out = {}
    for T in Ts:
        total = None
        for i in range(0, len(x), batch_size):
            c = count_ops(snn, repeat_input(x[i:i + batch_size], T))
            total = c if total is None else total.merge(c)
        s = total.summary()
        out[T] = {"syn_ops": s["syn_ops"], "eff_macs": s["eff_macs"], "spikes": s["spikes"],
                  "ann_macs": s["ann_macs"], "activation_sparsity": s["activation_sparsity"]}
    return out


def convert_run(ann_dir: Path, out_dir: Path, calib_batches: int, Ts: list[int] | tuple[int, ...] = DEFAULT_TS, *,
                percentile: float = 99.9, v_init: float = 0.5, batch_size: int = 64, synops_samples: int = 128,
                progress: bool = True, command: Any = None) -> dict:
    """Convert the ANN of run directory ``ann_dir``; write the SNN run to ``out_dir``; return metrics."""
    from neurosynth.arch import to_spec
    from neurosynth.datasets.digits import load_digits_split
    from neurosynth.errors import UserError
    from neurosynth.io import read_json
    from neurosynth.rundir import RunDir, load_run

    if calib_batches < 1:
        raise UserError(f"--calib-batches must be >= 1, got {calib_batches}")
    Ts = sorted({int(t) for t in Ts})
    if not Ts or Ts[0] < 1:
        raise UserError("--T needs positive integers, e.g. --T 8,16,32,64")
    ann, spec, ann_metrics = load_run(ann_dir)
    manifest_path = Path(ann_dir) / "manifest.json"
    cfg = read_json(manifest_path).get("config", {}) if manifest_path.exists() else {}
    if cfg.get("dataset", "digits") != "digits":
        raise UserError(f"{ann_dir} was trained on {cfg.get('dataset')!r}; `neurosynth convert` supports digits runs")
    try:
        ann_layers(ann)
    except ValueError as e:
        raise UserError(f"{ann_dir} does not hold a convertible ReLU ANN: {e}") from e
    image = list(spec.get("input_shape", [64])) == [1, 8, 8]
    xtr, _, xte, yte = load_digits_split(test_size=float(cfg.get("test_size", 0.25)),
                                         seed=int(cfg.get("split_seed", 0)), image=image)
    calib = xtr[: calib_batches * batch_size]
    t0 = time.perf_counter()
    snn, report = convert(ann, calib, percentile=percentile, v_init=v_init)
    with torch.no_grad():
        ann_acc = float((ann_forward(ann, xte).argmax(-1) == yte).float().mean())
    acc = accuracy_vs_T(snn, xte, yte, Ts)
    synops = _synops_per_T(snn, xte[:synops_samples], Ts) if synops_samples > 0 else None
    metrics = {
        "method": "ann2snn", "ann_accuracy": ann_acc, "snn_accuracy": {str(T): a for T, a in acc.items()},
        "gap_pp": {str(T): round(100 * (ann_acc - a), 3) for T, a in acc.items()},
        "first_T_within_1pp": next((T for T in Ts if ann_acc - acc[T] <= 0.01), None),
        "test_accuracy": acc[max(Ts)], "n_test": len(xte), "calib_samples": len(calib),
        "scales": list(report.scales), "percentile": percentile, "v_init": v_init,
        "synops": {str(T): v for T, v in synops.items()} if synops else None,
        "synops_source": f"neurosynth.hardware.energy.count_ops (NeuroBench effective ACs per sample, first "
        f"{min(synops_samples, len(xte))} test samples; eff_macs = analog first-layer MACs)" if synops else None,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    with RunDir.create(out_dir, kind="convert") as run:
        snn_spec = to_spec(snn, list(spec.get("input_shape", [])) or None, plugin="neurosynth.conversion.convert",
                           note="converted SNN: feed the analog input repeated over T; output = per-step logits")
        run.save_model(snn, snn_spec)
        run.write_json("metrics.json", metrics)
        table = _table(ann_acc, acc, synops)
        from neurosynth.io import atomic_write

        with atomic_write(run.file("accuracy_vs_T.md")) as f:
            f.write(table)
        with atomic_write(run.file("accuracy_vs_T.csv")) as f:
            f.write("T,snn_accuracy,ann_accuracy,syn_ops_per_sample,eff_macs_per_sample,spikes_per_sample\n")
            for T in Ts:
                s = (synops or {}).get(T, {})
                f.write(f"{T},{acc[T]:.4f},{ann_acc:.4f},{s.get('syn_ops', '')},{s.get('eff_macs', '')},"
                        f"{s.get('spikes', '')}\n")
        plot_accuracy_vs_T(ann_acc, acc, synops, run.plot_path("accuracy_vs_T"))
        config = {"method": "ann2snn", "ann_run": str(ann_dir), "calib_batches": calib_batches, "batch_size": batch_size,
                  "synops_samples": synops_samples,
                  "Ts": Ts, "percentile": percentile, "v_init": v_init, "dataset": "digits", **{
                      k: cfg[k] for k in ("test_size", "split_seed") if k in cfg}}
        run.write_manifest(command, config, cfg.get("split_seed"), {k: metrics[k] for k in (
            "ann_accuracy", "snn_accuracy", "first_T_within_1pp", "synops")})
    return metrics


def _table(ann_acc: float, acc: dict[int, float], synops: dict | None) -> str:
    lines = ["| T | SNN accuracy | ANN accuracy | gap (pp) | SynOps / sample | analog-input MACs / sample |",
             "|---:|---:|---:|---:|---:|---:|"]
    for T, a in acc.items():
        s = (synops or {}).get(T)
        so = f"{s['syn_ops']:,.0f}" if s else "n/a"
        mc = f"{s['eff_macs']:,.0f}" if s else "n/a"
        lines.append(f"| {T} | {100 * a:.2f}% | {100 * ann_acc:.2f}% | {100 * (ann_acc - a):+.2f} | {so} | {mc} |")
    return "\n".join(lines) + "\n"


def plot_accuracy_vs_T(ann_acc: float, acc: dict[int, float], synops: dict | None, path: Path | None = None):
    from neurosynth.plots import figure, finish

    Ts = list(acc)
    fig, ax = figure(figsize=(5, 3.5))
    ax.plot(Ts, [100 * acc[T] for T in Ts], "o-", label="converted SNN (IF, reset by subtraction)")
    ax.axhline(100 * ann_acc, color="k", ls="--", label=f"ANN {100 * ann_acc:.2f}%")
    ax.axhspan(100 * ann_acc - 1, 100 * ann_acc, color="grey", alpha=0.15, label="within 1 pp")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("time steps T")
    ax.set_ylabel("test accuracy (%)")
    if synops:
        ax2 = ax.twinx()
        ax2.plot(Ts, [synops[T]["syn_ops"] / 1e3 for T in Ts], "s:", color="tab:red", label="SynOps")
        ax2.set_ylabel("SynOps per sample (x1000)", color="tab:red")
    ax.legend(loc="center right", fontsize=7)
    ax.set_title("ANN -> SNN conversion on digits", fontsize=9)
    return finish(fig, path)
