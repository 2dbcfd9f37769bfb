"""Pictures: the derived cell(s) with operation and learning rule on every edge, and training curves."""

from __future__ import annotations

RULE_COLORS = {"bp": "black", "fa": "tab:red", "dfa": "tab:purple", "usf": "tab:blue", "brsf": "tab:green",
               "frsf": "tab:orange", None: "gray"}


def _node_names(kind: str) -> dict[int, str]:
    if kind == "darts":
        return {0: "c_{k-2}", 1: "c_{k-1}", 2: "0", 3: "1", 4: "2", 5: "3"}
    return {0: "in", 1: "1", 2: "2", 3: "out"}


def _draw_cell(ax, edges: list[dict], kind: str, title: str) -> None:
    from matplotlib.patches import FancyArrowPatch

    names = _node_names(kind)
    nodes = sorted({e["node"] for e in edges} | {e["from"] for e in edges} | ({0, 1} if kind == "darts" else {0}))
    if kind == "darts":
        pos = {0: (0.0, 2.0), 1: (0.0, -2.0)}
        pos.update({j: (3.0 * (j - 1), 1.6 * (1 if j % 2 else -1)) for j in range(2, 6)})
        pos["out"] = (3.0 * 5.0, 0.0)
    else:
        pos = {j: (2.2 * j, 0.0) for j in range(4)}
    for n in nodes:
        x, y = pos[n]
        ax.text(x, y, names[n], ha="center", va="center", fontsize=9, zorder=3,
                bbox={"boxstyle": "round,pad=0.35", "fc": "lightyellow" if n in (0, 1) and kind == "darts"
                      else "lightblue", "ec": "k"})
    for k, e in enumerate(edges):
        (x0, y0), (x1, y1) = pos[e["from"]], pos[e["node"]]
        if kind == "nb201":
            rad = 0.0 if e["node"] - e["from"] == 1 else (0.35 if e["from"] == 0 else -0.35) * (e["node"] - e["from"]) / 2
        else:
            rad = 0.2 * (1 if k % 2 else -1)
        color = RULE_COLORS.get(e["rule"], "gray")
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                                     mutation_scale=12, color=color, lw=1.4, shrinkA=14, shrinkB=14, zorder=1))
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        dx, dy = x1 - x0, y1 - y0
        ox, oy = 0.5 * rad * dy, -0.5 * rad * dx  # midpoint of matplotlib's arc3 quadratic Bezier
        label = e["op"] + ("" if e["rule"] is None else f"\n[{e['rule']}]")
        ax.text(mx + ox, my + oy, label, fontsize=7, ha="center", va="center", color=color, zorder=2,
                bbox={"fc": "white", "ec": "none", "alpha": 0.75, "pad": 0.5})
    if kind == "darts":
        for j in range(2, 6):
            ax.annotate("", xy=pos["out"], xytext=pos[j], arrowprops={"arrowstyle": "-|>", "color": "lightgray"})
        ax.text(*pos["out"], "c_{k}", ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round,pad=0.35", "fc": "palegreen", "ec": "k"})
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="datalim")
    ax.autoscale_view()
    ax.margins(0.15)
    ax.axis("off")


def plot_genotype(genotype: dict, path=None, title: str = ""):
    """Save a PNG of the cell(s): every edge labelled ``op [rule]`` and coloured by rule."""
    from neurosynth.plots import figure, finish

    kind = genotype["space"]
    cells = [("normal", "normal cell"), ("reduce", "reduction cell")] if kind == "darts" else [("edges", "cell")]
    fig, axes = figure(1, len(cells), figsize=(9 * len(cells), 5.5))
    axes = axes if len(cells) > 1 else [axes]
    for ax, (key, name) in zip(axes, cells):
        _draw_cell(ax, genotype[key], kind, name)
    used = sorted({e["rule"] for k, _ in cells for e in genotype[k]}, key=lambda r: (r is None, r or ""))
    from matplotlib.lines import Line2D

    handles = [Line2D([0], [0], color=RULE_COLORS.get(r, "gray"), lw=2, label=r or "no weights") for r in used]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    if title:
        fig.suptitle(title)
    return finish(fig, path)


def plot_search_history(history: list[dict], path=None, title: str = ""):
    from neurosynth.plots import figure, finish

    fig, ax = figure(1, 2, figsize=(10, 3.6))
    ep = [h["epoch"] for h in history]
    ax[0].plot(ep, [h["train_loss"] for h in history], "o-", label="train loss")
    ax[0].set_ylabel("loss")
    ax[1].plot(ep, [h["val_accuracy"] for h in history], "o-", label="supernet val accuracy")
    ax[1].set_ylabel("accuracy")
    ax[1].set_ylim(0, 1.02)
    from matplotlib.ticker import MaxNLocator

    for a in ax:
        a.set_xlabel("epoch")
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.legend()
    if title:
        fig.suptitle(title)
    return finish(fig, path)


def plot_alpha_entropy(report: dict, path=None, title: str = ""):
    """Normalised alpha entropy ``H / log(k)`` of every edge over the search epochs (1 = uniform), one panel per
    cell type, from :func:`snn_nas.bionas.search.alpha_entropy_report`; warm-up epochs (alpha frozen) are shaded."""
    from matplotlib.ticker import MaxNLocator

    from neurosynth.plots import figure, finish

    cells = list(report["cells"])
    fig, axes = figure(1, len(cells), figsize=(6.5 * len(cells), 4.2))
    axes = axes if len(cells) > 1 else [axes]
    ep = [0, *report["epochs"]]
    frozen = [e for e, upd in zip(report["epochs"], report["alpha_updates"]) if not upd]
    for ax, cell in zip(axes, cells):
        c = report["cells"][cell]
        for j, (edge, u) in enumerate(zip(c["edges"], c["uniform_entropy"])):
            ys = [1.0] + [row[j] / u if u > 0 else 0.0 for row in c["entropy_per_epoch"]]
            ax.plot(ep, ys, "o-", ms=3, lw=1.2, label=f"{edge[0]}<-{edge[1]}")
        if frozen:
            ax.axvspan(0, max(frozen), color="gray", alpha=0.12, label="warm-up (alpha frozen)")
        ax.axhline(1.0, color="k", lw=0.8, ls=":")
        ax.set_xlabel("search epoch (0 = initial, uniform)")
        ax.set_ylabel("entropy / log(candidates)")
        ax.set_title(f"{cell}: min {c['min_normalised_entropy']:.3f}, mean {c['mean_normalised_entropy']:.3f}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7, ncol=2 if len(c["edges"]) > 8 else 1)
    fig.suptitle(f"{title} (verdict: {report['verdict']})" if title else f"alpha entropy per edge ({report['verdict']})")
    return finish(fig, path)


def plot_curves(curves: dict[str, list[list[float]]], path=None, ylabel: str = "", title: str = "", log: bool = False):
    """Mean (line) and min-max band over seeds of per-epoch curves, one per configuration."""
    import numpy as np

    from neurosynth.plots import figure, finish

    fig, ax = figure(figsize=(7, 4.2))
    for name, runs in curves.items():
        a = np.asarray(runs, dtype=float)
        x = np.arange(1, a.shape[1] + 1)
        ls = "-" if name.startswith("mixed") else "--"
        ax.plot(x, a.mean(0), ls, lw=2 if name.startswith("mixed") else 1.3, label=name)
        ax.fill_between(x, a.min(0), a.max(0), alpha=0.15)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return finish(fig, path)
