"""Plot functions return their figure, write a PNG only when given a path, and label what they show."""

import matplotlib
import pytest
import torch

from neurosynth import LIF, SNN
from neurosynth.plots import plot_history, plot_raster


def _records():
    torch.manual_seed(0)
    net = SNN(torch.nn.Linear(16, 24), LIF(), torch.nn.Linear(24, 5), LIF())
    with torch.no_grad():
        for m in (net[0], net[2]):
            m.weight.mul_(4)
    _, rec = net((torch.rand(12, 2, 16) < 0.4).float(), record=True)
    return net, rec


def test_raster_returns_figure_and_saves_only_with_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    net, rec = _records()
    fig = plot_raster(rec, model=net)
    assert isinstance(fig, matplotlib.figure.Figure) and list(tmp_path.iterdir()) == []
    axes = fig.axes
    assert len(axes) == 2
    for ax, n in zip(axes, (24, 5)):  # the y-axis spans every neuron of the layer, not the two that spiked
        assert ax.get_ylim() == pytest.approx((-0.5, n - 0.5))
        assert f"{n} neurons" in ax.get_title(loc="left") and "LIF" in ax.get_title(loc="left")
        assert all(float(t).is_integer() for t in ax.get_xticks())
    assert axes[-1].get_xlabel() == "time step"
    out = tmp_path / "r.png"
    assert plot_raster(rec, out) is not None and out.stat().st_size > 1000


def test_raster_refuses_records_without_time_batch():
    with pytest.raises(ValueError, match=r"\[T, B"):
        plot_raster({"x": torch.zeros(3)})


def test_history_integer_epochs_and_path(tmp_path):
    hist = {"epoch": [1, 2, 3], "train_loss": [2, 1, 0.5], "train_accuracy": [0.2, 0.5, 0.7],
            "val_loss": [float("nan")] * 3, "val_accuracy": [float("nan")] * 3}
    fig = plot_history(hist)
    assert all(float(t).is_integer() for t in fig.axes[0].get_xticks())
    assert [a.get_xlabel() for a in fig.axes] == ["epoch", "epoch"]
    plot_history(hist, tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 1000


def test_energy_plot_bars_side_by_side():
    from neurosynth.apps.cli.energy import plot_energy
    from neurosynth.hardware.energy import compare, count_ops_loader

    net, _ = _records()
    x = (torch.rand(6, 3, 16) < 0.3).float()
    counts = count_ops_loader(net, [(x, torch.zeros(3, dtype=torch.long))], max_samples=3, progress=False)
    fig = plot_energy(compare(counts, "loihi", "cmos45_fp32"), counts)
    left = fig.axes[0]
    xs = sorted(round(p.get_x(), 3) for p in left.patches)
    assert len(xs) == len(set(xs)) == 4  # 2 layers x (SNN, ANN), none drawn over another
    assert left.get_xlabel() == "layer"


def test_loihi_check_plot_labels_and_legend():
    from neurosynth.apps.cli.export_loihi import plot_loihi_check

    fig = plot_loihi_check({"layers": ["a", "b"], "float_spikes": {"a": 3, "b": 2},
                            "fixed_vs_torch_spike_agreement": {"a": 1.0, "b": 0.5}, "accuracy_torch": 0.9})
    assert fig.axes[0].get_xlabel() == "layer"
    assert len(fig.legends) == 1 and len(fig.legends[0].get_texts()) == 2
    fig.canvas.draw()  # constrained layout keeps the legend inside the figure
    box = fig.legends[0].get_window_extent()
    assert box.y0 >= 0 and box.x0 >= 0 and box.x1 <= fig.bbox.x1


def test_raster_shows_label_prediction_and_the_output_layer():
    # a spiking output: the last recorded layer is marked as the output layer, label and prediction in the title
    net, rec = _records()
    out = rec[list(rec)[-1]]
    fig = plot_raster(rec, model=net, output=out, label=3, prediction=1)
    assert len(fig.axes) == 2 and "output layer" in fig.axes[-1].get_title(loc="left")
    assert "label 3, predicted 1" in fig._suptitle.get_text()
    # a membrane (LI) readout is not among the spike records: it gets a panel of its own
    membrane = torch.randn(12, 2, 5)
    fig = plot_raster(rec, model=net, output=membrane, label=2, prediction=4)
    assert len(fig.axes) == 3 and "output layer (membrane readout)" in fig.axes[-1].get_title(loc="left")
    assert all(float(t).is_integer() for t in fig.axes[-1].get_xticks())


def test_search_plots_integer_generations_and_every_cost(tmp_path):
    from snn_nas.mse.run import plot_fitness, plot_pareto

    recs = [{"status": "ok", "generation": g, "fitness": 0.1 * i, "hash": f"h{g}{i}",
             "objectives": [-0.1 * i, 10.0 + i * (g + 1), 100.0 - i]} for g in range(3) for i in range(4)]
    hist = [{"generation": g, "best": 0.3, "mean": 0.15} for g in range(3)]
    fig = plot_fitness(recs, hist, None, "rdm")
    assert all(float(t).is_integer() for t in fig.axes[0].get_xticks())
    front = plot_pareto(recs, tmp_path / "p.png", "rdm", ["params", "synops"])
    assert (tmp_path / "p.png").exists() and front and set(front[0]) == {"hash", "fitness", "params", "synops"}
