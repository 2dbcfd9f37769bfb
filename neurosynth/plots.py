"""PNG plots for run directories (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .rundir import save_figure  # noqa: E402


def plot_history(hist: dict, path: str | Path, title: str = "") -> Path:
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    ep = hist["epoch"]
    a1.plot(ep, hist["train_loss"], label="train")
    if any(v == v for v in hist.get("val_loss", [])):
        a1.plot(ep, hist["val_loss"], label="test")
    a1.set_xlabel("epoch")
    a1.set_ylabel("loss")
    a1.legend()
    a2.plot(ep, hist["train_accuracy"], label="train")
    if any(v == v for v in hist.get("val_accuracy", [])):
        a2.plot(ep, hist["val_accuracy"], label="test")
    a2.set_xlabel("epoch")
    a2.set_ylabel("accuracy")
    a2.set_ylim(0, 1.02)
    a2.legend()
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_raster(records: dict, path: str | Path, sample: int = 0, title: str = "") -> Path:
    """Spike raster of every recorded spiking layer for one sample (``records[name]: [T, B, ...]``)."""
    layers = [(k, v) for k, v in records.items() if v.dim() >= 3]
    fig, axes = plt.subplots(len(layers), 1, figsize=(8, 1.8 * max(len(layers), 1) + 0.6), squeeze=False)
    for ax, (name, s) in zip(axes[:, 0], layers):
        s = s[:, sample].reshape(s.shape[0], -1).detach().cpu()
        t, n = (s > 0).nonzero(as_tuple=True)
        ax.scatter(t.numpy(), n.numpy(), s=2, marker="|", color="k")
        ax.set_ylabel(f"layer {name}\nneuron")
        ax.set_xlim(-0.5, s.shape[0] - 0.5)
    axes[-1, 0].set_xlabel("time step")
    fig.suptitle(title or f"spike raster, sample {sample}")
    return save_figure(fig, path)
