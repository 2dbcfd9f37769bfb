"""Unsupervised STDP digits pipeline: building blocks, run directory, determinism, label assignment."""

from __future__ import annotations

import json

import pytest
import torch

from neurosynth.apps.recipes.stdp_digits import train_stdp_digits
from neurosynth.plasticity import (
    HomeostasisParams,
    LIFWTAParams,
    adaptive_threshold_step,
    lateral_inhibition,
    lif_wta_init,
    lif_wta_step,
    normalize_weights,
    winner_take_all,
)
from neurosynth.plasticity.wta import assign_labels, classify


def test_winner_take_all_golden():
    v = torch.tensor([[0.5, 2.0, 1.5, 3.0], [0.1, 0.2, 0.3, 0.4]])
    torch.testing.assert_close(winner_take_all(v, 1.0, k=1), torch.tensor([[0, 0, 0, 1.0], [0, 0, 0, 0]]))
    torch.testing.assert_close(winner_take_all(v, 1.0, k=2), torch.tensor([[0, 1.0, 0, 1], [0, 0, 0, 0]]))
    # per-neuron thresholds change the winner
    torch.testing.assert_close(winner_take_all(v[:1], torch.tensor([0.0, 0.0, 0.0, 2.5]), k=1),
                               torch.tensor([[0, 1.0, 0, 0]]))
    with pytest.raises(ValueError, match="k must be"):
        winner_take_all(v, 1.0, k=0)


def test_lateral_inhibition_and_homeostasis_and_normalisation():
    v = torch.tensor([[1.0, 1.0, 1.0]])
    s = torch.tensor([[1.0, 0.0, 1.0]])
    torch.testing.assert_close(lateral_inhibition(v, s, 0.5), torch.tensor([[0.5, 0.0, 0.5]]))
    theta = adaptive_threshold_step(torch.tensor([1.0, 0.0]), torch.tensor([[1.0, 0.0], [1.0, 1.0]]),
                                    HomeostasisParams(theta_plus=0.1, tau_theta=10.0), batch_reduce="sum")
    torch.testing.assert_close(theta, torch.tensor([1.0 * torch.exp(torch.tensor(-0.1)).item() + 0.2, 0.1]))
    w = torch.rand(5, 7) + 0.1
    torch.testing.assert_close(normalize_weights(w, 3.0).sum(1), torch.full((5,), 3.0))
    wc = torch.rand(2, 3, 2, 2)
    torch.testing.assert_close(normalize_weights(wc, 1.0, dim=(1, 2, 3)).sum((1, 2, 3)), torch.ones(2))


def test_lif_wta_step_one_winner_and_refractory():
    p = LIFWTAParams(beta=1.0, threshold=1.0, refractory=2, k=1, reset="zero")
    st = lif_wta_init(1, 3)
    s, st = lif_wta_step(torch.tensor([[2.0, 3.0, 0.5]]), st, torch.zeros(3), p)
    torch.testing.assert_close(s, torch.tensor([[0.0, 1.0, 0.0]]))
    assert st.v[0, 1] == 0 and st.v[0, 0] == 2.0
    s, st = lif_wta_step(torch.tensor([[0.0, 5.0, 0.0]]), st, torch.zeros(3), p)  # neuron 1 is refractory
    torch.testing.assert_close(s, torch.tensor([[1.0, 0.0, 0.0]]))


def test_label_assignment_and_classification():
    counts = torch.tensor([[5.0, 0, 1], [4, 1, 0], [0, 3, 2], [1, 0, 6]])
    labels = torch.tensor([0, 0, 1, 2])
    a = assign_labels(counts, labels, n_classes=3)
    torch.testing.assert_close(a, torch.tensor([0, 1, 2]))
    torch.testing.assert_close(classify(counts, a, 3), torch.tensor([0, 0, 1, 2]))


def test_fit_is_deterministic_and_bounded():
    from neurosynth.plasticity.wta import DigitsSTDPConfig, fit_stdp

    x = torch.rand(40, 64)
    cfg = DigitsSTDPConfig(n_neurons=10, T=5, batch_size=20)
    n1, _ = fit_stdp(x, cfg, 1, torch.Generator().manual_seed(1))
    n2, _ = fit_stdp(x, cfg, 1, torch.Generator().manual_seed(1))
    n3, _ = fit_stdp(x, cfg, 1, torch.Generator().manual_seed(2))
    assert torch.equal(n1.w, n2.w) and torch.equal(n1.theta, n2.theta)
    assert not torch.equal(n1.w, n3.w)
    assert float(n1.w.min()) >= 0 and float(n1.w.max()) <= 1


def test_train_stdp_digits_writes_run_directory(tmp_path):
    from neurosynth.rundir import load_run

    m1 = train_stdp_digits(tmp_path / "a", seed=3, epochs=1, progress=False, n_neurons=20, T=10, batch_size=64)
    assert m1["test_accuracy"] > 0.3  # well above chance (0.1) even for this tiny, 1-epoch run
    for name in ("manifest.json", "metrics.json", "model.pt", "arch.json", "plots/receptive_fields.png"):
        assert (tmp_path / "a" / name).exists(), name
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["config"]["n_neurons"] == 20
    model, spec, metrics = load_run(tmp_path / "a")
    assert spec["kind"] == "stdp_wta" and metrics["test_accuracy"] == m1["test_accuracy"]
    assert float(model.w.min()) >= 0 and float(model.w.max()) <= 1
    with pytest.raises(ValueError, match="unknown STDP digits option"):
        train_stdp_digits(tmp_path / "c", seed=0, epochs=1, progress=False, neurons=5)
