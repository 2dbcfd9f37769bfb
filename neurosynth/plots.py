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
    """Loss and accuracy per epoch (train, and validation when the history has it) from :func:`neurosynth.fit`."""
    from matplotlib.ticker import MaxNLocator

    fig, (a1, a2) = figure(1, 2, figsize=(9, 3.4))
    ep = hist["epoch"]
    a1.plot(ep, hist["train_loss"], "o-", ms=3, label="train")
    if any(v == v for v in hist.get("val_loss", [])):
        a1.plot(ep, hist["val_loss"], "o-", ms=3, label="validation")
    a1.set_ylabel("loss")
    a2.plot(ep, hist["train_accuracy"], "o-", ms=3, label="train")
    if any(v == v for v in hist.get("val_accuracy", [])):
        a2.plot(ep, hist["val_accuracy"], "o-", ms=3, label="validation")
    a2.set_ylabel("accuracy")
    a2.set_ylim(0, 1.02)
    for a in (a1, a2):
        a.set_xlabel("epoch")
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.legend()
    if title:
        fig.suptitle(title)
    return finish(fig, path)


def plot_raster(records: dict, path: str | Path | None = None, sample: int = 0, title: str = "", model=None,
                output=None, label: int | None = None, prediction: int | None = None):
    """Spike raster of every recorded spiking layer for one sample.

    ``records[name]``: spikes ``[T, B, ...]`` (what ``SNN.forward(x, record=True)`` returns). One panel per
    layer, labelled with its name (and its module type when ``model`` is given) and neuron count; the y-axis
    spans all neurons of the layer, ticks are whole time steps and neuron indices. ``output``: the model's output
    ``[T, B, classes]``; a spiking output is the last recorded layer (its panel is marked "output"), any other
    (an LI readout's membrane) gets a panel of its own. ``label``/``prediction`` go into the title, and the
    output panel marks the label's row.
    """
    from matplotlib.ticker import MaxNLocator

    layers = [(k, v) for k, v in records.items() if hasattr(v, "dim") and v.dim() >= 3]
    if not layers and not (hasattr(output, "dim") and output.dim() >= 3):
        raise ValueError("plot_raster needs at least one record shaped [T, B, ...]; got "
                         f"{ {k: tuple(getattr(v, 'shape', ())) for k, v in records.items()} }")
    modules = dict(model.named_children()) if model is not None else {}
    if not (hasattr(output, "dim") and output.dim() >= 3):
        output = None
    out_is_last = output is not None and bool(layers) and layers[-1][1] is output
    if output is not None and not out_is_last:
        if layers and bool(((output == 0) | (output == 1)).all()):  # spikes: the last record is the output layer
            out_is_last = layers[-1][1].shape == output.shape and bool((layers[-1][1] == output).all())
        if not out_is_last:
            layers.append(("output", output))
    out_name = layers[-1][0] if output is not None else None
    heights = [max(1.0, min(3.0, 0.6 + v[0, 0].numel() / 60)) for _, v in layers]
    fig, axes = figure(len(layers), 1, figsize=(8, sum(heights) + 0.8), squeeze=False,
                       gridspec_kw={"height_ratios": heights}, sharex=True)
    T = int(layers[0][1].shape[0])
    for ax, (name, s) in zip(axes[:, 0], layers):
        s = s[:, sample].reshape(s.shape[0], -1).detach().cpu().float()
        n_neurons = s.shape[1]
        if name == "output" and out_name == "output":  # a membrane readout: its trajectory as an image
            ax.imshow(s.T.numpy(), aspect="auto", origin="lower", cmap="viridis", interpolation="nearest",
                      extent=(-0.5, T - 0.5, -0.5, n_neurons - 0.5))
            if label is not None:
                ax.axhline(label, color="r", lw=0.8, ls="--")
            ax.set_xlim(-0.5, T - 0.5)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
            ax.set_ylabel("class")
            ax.set_title(f"output layer (membrane readout): {n_neurons} classes"
                         + (f"; dashed: label {label}" if label is not None else ""), fontsize=8, loc="left")
            continue
        t, n = (s > 0).nonzero(as_tuple=True)
        ax.scatter(t.numpy(), n.numpy(), s=12 if n_neurons <= 64 else 4, marker="|", color="k", linewidths=1)
        if name == out_name and label is not None:
            ax.axhspan(label - 0.5, label + 0.5, color="r", alpha=0.15, lw=0)
        ax.set_ylim(-0.5, n_neurons - 0.5)
        ax.set_xlim(-0.5, T - 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        kind = f" {type(modules[name]).__name__}" if name in modules else ""
        rate = float(s.mean()) if s.numel() else 0.0
        ax.set_ylabel("neuron")
        role = " (output layer" + (f"; shaded: label {label}" if label is not None else "") + ")" \
            if name == out_name else ""
        ax.set_title(f"layer {name}{kind}{role}: {n_neurons} neurons, {int(s.sum())} spikes (rate {rate:.3f})",
                     fontsize=8, loc="left")
    axes[-1, 0].set_xlabel("time step")
    facts = [f"label {label}" if label is not None else "", f"predicted {prediction}" if prediction is not None else ""]
    facts = ", ".join(f for f in facts if f)
    head = title or f"spike raster, sample {sample}"
    fig.suptitle(f"{head}: {facts}" if facts else head)
    return finish(fig, path)
