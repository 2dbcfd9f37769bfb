"""ANN->SNN conversion: exact folding, IF rate = clipped/rounded activation, CLI errors and a tiny end-to-end run."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from neurosynth.conversion import (
    FirstStepCharge,
    accuracy_vs_T,
    activation_scales,
    convert,
    fold_avgpool,
    fold_batchnorm,
    repeat_input,
)


def _cnn(seed=0):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                      nn.Conv2d(4, 6, 3, padding=1, stride=2), nn.BatchNorm2d(6), nn.ReLU(),
                      nn.AvgPool2d(2), nn.Flatten(), nn.Linear(24, 5))
    # non-trivial BN statistics
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.rand(16, 1, 8, 8) * 2)
    m.eval()
    return m


def _run(layers, x):
    for m in layers:
        x = m(x)
    return x


def test_fold_batchnorm_and_avgpool_are_exact():
    m = _cnn()
    x = torch.rand(7, 1, 8, 8)
    ref = m(x)
    folded = fold_batchnorm(list(m.children()))
    assert not any(isinstance(layer, nn.BatchNorm2d) for layer in folded)
    torch.testing.assert_close(_run(folded, x), ref, rtol=1e-5, atol=1e-5)
    pooled = fold_avgpool(folded, (1, 8, 8))
    assert not any(isinstance(layer, nn.AvgPool2d) for layer in pooled)
    torch.testing.assert_close(_run(pooled, x), ref, rtol=1e-5, atol=1e-5)


def test_if_rate_equals_rounded_activation_with_half_init():
    # one ReLU layer, threshold-balanced to lambda = max activation: after T steps the spike count of an IF
    # neuron with v(0)=1/2 and reset by subtraction is round(T * a / lambda) (clipped to [0, T])
    lin = nn.Linear(3, 4)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.5, 0.1, 0.0], [0.2, 0.3, 0.1], [0.0, 0.0, 0.9], [-1.0, 0.0, 0.0]]))
        lin.bias.zero_()
    ann = nn.Sequential(lin, nn.ReLU(), nn.Linear(4, 2))
    x = torch.tensor([[0.3, 0.7, 0.2], [0.9, 0.1, 0.5]])
    snn, rep = convert(ann, x, percentile=100.0, v_init=0.5)
    lam = rep.scales[0]
    a = torch.relu(lin(x))
    assert lam == pytest.approx(float(a.detach().max()), rel=1e-6)
    from neurosynth.neurons import IF

    _, records = snn(repeat_input(x, 32), record=True)
    first_if = next(name for name, mod in snn.named_children() if isinstance(mod, IF))
    spikes = records[first_if]
    counts = spikes.sum(0)
    torch.testing.assert_close(counts, torch.round(32 * a.detach() / lam).clamp(0, 32))


def test_half_init_beats_zero_init_at_small_T():
    m = _cnn(1)
    x = torch.rand(64, 1, 8, 8)
    y = m(x).argmax(-1)  # agreement with the ANN
    acc = {}
    for v in (0.0, 0.5):
        snn, _ = convert(m, x, percentile=99.9, v_init=v)
        acc[v] = accuracy_vs_T(snn, x, y, [4, 64])
    assert acc[0.5][64] >= 0.9
    assert acc[0.5][4] >= acc[0.0][4]


def test_accuracy_vs_T_matches_separate_runs():
    m = _cnn(2)
    x = torch.rand(20, 1, 8, 8)
    y = torch.randint(0, 5, (20,))
    snn, _ = convert(m, x)
    one = accuracy_vs_T(snn, x, y, [3, 10])
    for T in (3, 10):
        pred = snn(repeat_input(x, T)).sum(0).argmax(-1)
        assert one[T] == pytest.approx(float((pred == y).float().mean()))


def test_activation_scales_percentile():
    layers = [nn.Identity(), nn.ReLU()]
    x = torch.arange(-10, 101, dtype=torch.float32)[None]
    assert activation_scales(layers, x, 100.0) == [100.0]
    assert activation_scales(layers, x, 50.0) == [50.5]


def test_unsupported_layers_raise_clear_errors():
    with pytest.raises(ValueError, match="MaxPool2d"):
        convert(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2)), torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="not supported"):
        convert(nn.Sequential(nn.Linear(3, 3), nn.Tanh()), torch.rand(2, 3))
    with pytest.raises(ValueError, match="v_init"):
        convert(nn.Sequential(nn.Linear(3, 3), nn.ReLU()), torch.rand(2, 3), v_init=2.0)


def test_first_step_charge():
    x = torch.zeros(3, 2, 4)
    out = FirstStepCharge(0.5)(x)
    assert float(out[0].min()) == 0.5 and float(out[1:].abs().max()) == 0.0
    assert x.abs().max() == 0  # input not modified


@pytest.mark.slow
def test_cli_convert_end_to_end(tmp_path, capsys):
    from neurosynth.apps.cli import main
    from neurosynth.rundir import load_run

    ann, out = tmp_path / "ann", tmp_path / "snn"
    rc = main(["convert", "--train-ann", "--epochs", "2", "--ann", str(ann), "--out", str(out), "--calib-batches",
               "1", "--T", "2,8", "--synops-samples", "8", "--no-progress"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["snn_accuracy"]) == {"2", "8"}
    assert metrics["synops"]["8"]["syn_ops"] > metrics["synops"]["2"]["syn_ops"] > 0
    for name in ("manifest.json", "model.pt", "arch.json", "accuracy_vs_T.md", "plots/accuracy_vs_T.png"):
        assert (out / name).exists(), name
    model, spec, _ = load_run(out)
    assert spec["plugin"] == "neurosynth.conversion.convert"
    assert "T |" in capsys.readouterr().out


def test_cli_convert_errors(tmp_path, capsys):
    from neurosynth.apps.cli import main

    assert main(["convert", "--ann", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["convert", "--ann", str(tmp_path), "--out", str(tmp_path / "o"), "--calib-batches", "0"]) == 2
    assert "--calib-batches" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["convert", "--ann", "a", "--out", "b", "--T", "8,x"])
