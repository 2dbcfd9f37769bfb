import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_custom_neuron_example_trains_end_to_end(tmp_path):
    spec = importlib.util.spec_from_file_location("custom_neuron_example", ROOT / "examples" / "custom_neuron.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    metrics = mod.main(["--epochs", "1", "--T", "8", "--out", str(tmp_path / "run")])
    assert metrics["test_accuracy"] > 0.3  # well above chance (0.1) after one epoch
    arch = json.loads((tmp_path / "run" / "arch.json").read_text())
    assert arch["layers"][1]["neuron"] == "quadratic_lif" and arch["layers"][1]["learn"] == ["a"]
    assert (tmp_path / "run" / "manifest.json").exists()
