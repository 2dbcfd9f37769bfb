"""Plots for run directories and notebooks (matplotlib).

Every plot function returns its :class:`matplotlib.figure.Figure` and writes a PNG only when given a
``path``. Figures are built with :func:`figure`, outside pyplot's global state: nothing to close, nothing
leaks in a loop, and in a notebook the returned figure shows once (as the cell's value)::

    fig = plot_raster(records)            # look at it
    plot_raster(records, "raster.png")    # or save it (atomically) and still get the figure back
"""

from __future__ import annotations

from pathlib import Path

from .rundir import save_figure


def figure(nrows: int = 1, ncols: int = 1, *, figsize=None, squeeze: bool = True, **subplot_kw):
    """``(fig, axes)`` like ``plt.subplots``, for a figure that pyplot does not track (constrained layout, so
    labels and legends are not clipped)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=squeeze, **subplot_kw)
    return fig, axes


def finish(fig, path: str | Path | None = None):
    """Save ``fig`` as a PNG at ``path`` (atomically) when a path is given; return ``fig``."""
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_history(hist: dict, path: str | Path | None = None, title: str = ""):
    """Loss and accuracy per epoch (train, and test when the history has it) from :func:`neurosynth.fit`."""
    from matplotlib.ticker import MaxNLocator

    fig, (a1, a2) = figure(1, 2, figsize=(9, 3.4))
    ep = hist["epoch"]
    a1.plot(ep, hist["train_loss"], "o-", ms=3, label="train")
    if any(v == v for v in hist.get("val_loss", [])):
        a1.plot(ep, hist["val_loss"], "o-", ms=3, label="test")
    a1.set_ylabel("loss")
    a2.plot(ep, hist["train_accuracy"], "o-", ms=3, label="train")
    if any(v == v for v in hist.get("val_accuracy", [])):
        a2.plot(ep, hist["val_accuracy"], "o-", ms=3, label="test")
    a2.set_ylabel("accuracy")
    a2.set_ylim(0, 1.02)
    for a in (a1, a2):
        a.set_xlabel("epoch")
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.legend()
    if title:
        fig.suptitle(title)
    return finish(fig, path)


def plot_raster(records: dict, path: str | Path | None = None, sample: int = 0, title: str = "", model=None):
    """Spike raster of every recorded spiking layer for one sample.

    ``records[name]``: spikes ``[T, B, ...]`` (what ``SNN.forward(x, record=True)`` returns). One panel per
    layer, labelled with its name (and its module type when ``model`` is given) and neuron count; the y-axis
    spans all neurons of the layer, ticks are whole time steps and neuron indices.
    """
    from matplotlib.ticker import MaxNLocator

    layers = [(k, v) for k, v in records.items() if hasattr(v, "dim") and v.dim() >= 3]
    if not layers:
        raise ValueError("plot_raster needs at least one record shaped [T, B, ...]; got "
                         f"{ {k: tuple(getattr(v, 'shape', ())) for k, v in records.items()} }")
    modules = dict(model.named_children()) if model is not None else {}
    heights = [max(1.0, min(3.0, 0.6 + v[0, 0].numel() / 60)) for _, v in layers]
    fig, axes = figure(len(layers), 1, figsize=(8, sum(heights) + 0.8), squeeze=False,
                       gridspec_kw={"height_ratios": heights}, sharex=True)
    T = int(layers[0][1].shape[0])
    for ax, (name, s) in zip(axes[:, 0], layers):
        s = s[:, sample].reshape(s.shape[0], -1).detach().cpu()
        n_neurons = s.shape[1]
        t, n = (s > 0).nonzero(as_tuple=True)
        ax.scatter(t.numpy(), n.numpy(), s=12 if n_neurons <= 64 else 4, marker="|", color="k", linewidths=1)
        ax.set_ylim(-0.5, n_neurons - 0.5)
        ax.set_xlim(-0.5, T - 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        kind = f" {type(modules[name]).__name__}" if name in modules else ""
        rate = float(s.mean()) if s.numel() else 0.0
        ax.set_ylabel("neuron")
        ax.set_title(f"layer {name}{kind}: {n_neurons} neurons, {int(s.sum())} spikes (rate {rate:.3f})",
                     fontsize=8, loc="left")
    axes[-1, 0].set_xlabel("time step")
    fig.suptitle(title or f"spike raster, sample {sample}")
    return finish(fig, path)
