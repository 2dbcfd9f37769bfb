import functools
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_custom_neuron_example_trains_end_to_end(tmp_path):
    metrics = _custom_neuron_module().main(["--epochs", "1", "--T", "8", "--out", str(tmp_path / "run")])
    assert metrics["test_accuracy"] > 0.3  # well above chance (0.1) after one epoch
    arch = json.loads((tmp_path / "run" / "arch.json").read_text())
    assert arch["layers"][1]["neuron"] == "quadratic_lif" and arch["layers"][1]["learn"] == ["a"]
    assert (tmp_path / "run" / "manifest.json").exists()
    # the epoch is chosen on validation images carved from the training images, never on test
    assert metrics["selection_rule"] == "best_val" and metrics["chosen_epoch"] == 1
    assert metrics["split"]["how"] == "carved" and metrics["split"]["n_fit"] + metrics["split"]["n_val"] == 1347


@functools.cache
def _custom_neuron_module():  # imported once: importing registers "quadratic_lif"
    spec = importlib.util.spec_from_file_location("custom_neuron_example", ROOT / "examples" / "custom_neuron.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_custom_neuron_example_membrane_stays_bounded():
    import torch

    mod = _custom_neuron_module()
    n = mod.QuadraticLIF(a=1.0, shape=4, learn=["a"])  # the largest a the projection allows
    x = torch.full((500, 2, 4), 50.0)
    out, state, trace = n.run(x)
    assert bool(torch.isfinite(trace).all()) and bool((state.v <= n.threshold).all())
    with torch.no_grad():
        n.a.fill_(25.0)
    n.clamp_params_()
    assert float(n.a.max()) == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_custom_neuron_example_defaults_do_not_diverge(tmp_path, seed):
    metrics = _custom_neuron_module().main(["--seed", str(seed), "--out", str(tmp_path / "run")])
    assert metrics["test_accuracy"] > 0.8
    assert 0.0 <= metrics["learned_a_mean"] <= 1.0
