"""The STDP digits recipe: learn features without labels on scikit-learn digits, assign labels, evaluate, and
write a run directory (``neurosynth train --method stdp`` calls :func:`train_stdp_digits`). The network and its
learning rule live in :mod:`neurosynth.plasticity.wta`."""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from neurosynth.plasticity.wta import DigitsSTDPConfig, assign_labels, classify, fit_stdp, spike_counts


def plot_receptive_fields(w: Tensor, assignments: Tensor | None, path: Path | None = None, shape=(8, 8)):
    """One mosaic image of every neuron's weights (tiles separated by a 1-pixel gap; label = assigned class)."""
    from neurosynth.plots import figure, finish

    n = w.shape[0]
    cols = min(20, n)
    rows = (n + cols - 1) // cols
    h, wd = shape
    mosaic = torch.full((rows * (h + 1) - 1, cols * (wd + 1) - 1), float("nan"))
    for i in range(n):
        r, c = divmod(i, cols)
        tile = w[i].reshape(shape)
        mosaic[r * (h + 1):r * (h + 1) + h, c * (wd + 1):c * (wd + 1) + wd] = tile / tile.max().clamp_min(1e-12)
    fig, ax = figure(figsize=(cols * 0.6, rows * 0.65))
    ax.imshow(mosaic.numpy(), cmap="hot", interpolation="nearest")
    if assignments is not None:
        for i in range(n):
            r, c = divmod(i, cols)
            ax.text(c * (wd + 1) + 0.2, r * (h + 1) + 1.0, str(int(assignments[i])), color="cyan", fontsize=6)
    ax.axis("off")
    ax.set_title("STDP receptive fields (each tile scaled to its max; number: assigned class)", fontsize=8)
    return finish(fig, path)


def train_stdp_digits(out_dir: Path, seed: int, epochs: int, progress: bool = True, **options: Any) -> dict:
    """Learn digit features without labels, assign labels, evaluate; write a run directory; return metrics.

    ``options``: any field of :class:`DigitsSTDPConfig` (e.g. ``n_neurons=100``, ``T=40``); ``command``
    (for the manifest). Writes ``manifest.json``, ``metrics.json``, ``arch.json``, ``model.pt``,
    ``plots/receptive_fields.png``, ``plots/confusion.png``.
    """
    from neurosynth.datasets.digits import load_digits_split
    from neurosynth.rundir import RunDir

    command = options.pop("command", None)
    known = {f.name for f in fields(DigitsSTDPConfig)}
    bad = sorted(set(options) - known)
    if bad:
        raise ValueError(f"unknown STDP digits option(s) {bad}; known: {sorted(known)}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    cfg = DigitsSTDPConfig(**options)
    with RunDir.create(out_dir, kind="train") as run:
        t0 = time.perf_counter()
        xtr, ytr, xte, yte = load_digits_split(test_size=cfg.test_size)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            net, history = fit_stdp(xtr, cfg, epochs, g, progress)
            c_train = spike_counts(net, xtr, cfg, g)
            net.assignments.copy_(assign_labels(c_train, ytr))
            train_acc = float((classify(c_train, net.assignments) == ytr).float().mean())
            c_test = spike_counts(net, xte, cfg, g)
            pred = classify(c_test, net.assignments)
        test_acc = float((pred == yte).float().mean())
        metrics = {
            "method": "stdp",
            "test_accuracy": test_acc,
            "train_accuracy": train_acc,
            "n_train": len(xtr),
            "n_test": len(xte),
            "epochs": epochs,
            "classes_covered": int(torch.unique(net.assignments).numel()),
            "spikes_per_sample_test": float(c_test.sum(1).mean()),
            "silent_test_samples": int((c_test.sum(1) == 0).sum()),
            "history": history,
            "train_seconds": round(time.perf_counter() - t0, 2),
        }
        run.save_model(net, net.to_spec())
        run.write_json("metrics.json", metrics)
        plot_receptive_fields(net.w, net.assignments, run.plot_path("receptive_fields"))
        plot_confusion(yte, pred, run.plot_path("confusion"))
        config = {"method": "stdp", "dataset": "digits", "epochs": epochs, **asdict(cfg)}
        run.write_manifest(command, config, seed, {k: v for k, v in metrics.items() if k != "history"})
    return copy.deepcopy(metrics)


def plot_confusion(y: Tensor, pred: Tensor, path: Path | None = None):
    from neurosynth.plots import figure, finish

    cm = torch.zeros(10, 10)
    for a, b in zip(y.tolist(), pred.tolist()):
        cm[a, b] += 1
    fig, ax = figure(figsize=(4, 4))
    ax.imshow(cm.numpy(), cmap="Blues")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"STDP digits: test accuracy {float((y == pred).float().mean()):.3f}", fontsize=9)
    return finish(fig, path)
