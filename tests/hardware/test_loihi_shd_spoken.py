"""``examples/train_shd.py --dataset spoken_digits --loihi --verify N`` on a tiny generated spoken_digits set.

The real-data path of the recurrent SHD example: espeak-ng speech through the cochlea (SHD layout, variable
sample lengths, a random onset, here only 32 cochlea channels, which the SHD reader still presents as 700-wide
frames), binary frames, the Loihi-exact recurrent model, netx ``dense_rec`` export and the Lava check, then
``neurosynth energy --model RUN`` reading the same test split back from the run's manifest.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from neurosynth.hardware.lava import compat

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _need_espeak():
    if shutil.which("espeak-ng") is None:
        msg = "espeak-ng is not installed; install it with: sudo apt-get install -y espeak-ng"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI must install espeak-ng: " + msg)
        pytest.skip(msg)


def _train_shd():
    spec = importlib.util.spec_from_file_location("_example_train_shd_sd", EXAMPLES / "train_shd.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.lava
@pytest.mark.skipif(not compat.lava_available(), reason="lava-nc is not installed")
def test_train_shd_loihi_on_spoken_digits_verifies_and_energy_reads_it(tmp_path, capsys):
    _need_espeak()
    from neurosynth.apps.cli import main as cli
    from neurosynth.datasets.spoken_digits import SpokenDigitsOptions, generate

    torch.set_num_threads(1)
    man = generate(tmp_path / "data", SpokenDigitsOptions(voices=3, per_voice=1, channels=32, seed=3), progress=False)
    assert man["files"]["test"]["samples"] == 20
    out = tmp_path / "run"
    argv = ["--data-root", str(tmp_path / "data"), "--dataset", "spoken_digits", "--loihi", "--epochs", "1",
            "--T", "10", "--hidden", "8", "--levels", "2", "--batch-size", "10", "--verify", "4", "--out", str(out),
            "--no-progress"]
    assert _train_shd().main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_train"] == 20 and metrics["n_test"] == 20
    res = metrics["loihi"]
    assert res["passed"] and res["float_exact"] and res["fixed_exact"] and res["samples"] == 4
    assert res["accuracy_lava_float"] == res["accuracy_torch"]
    assert res["energy"]["T"] == 10 and res["energy"]["syn_ops"] > 0  # the cochlea's spikes reached the network
    assert (out / "loihi.h5").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["dataset"] == "spoken_digits" and manifest["config"]["input"]["levels"] == 2
    channels = manifest["config"]["input"]["channels"]
    assert json.loads((out / "arch.json").read_text())["input_shape"] == [2 * channels]  # two lines per channel
    # the Lava check alone, on the saved run (what a long --verify on real data runs after the training)
    (out / "loihi.h5").unlink()
    assert _train_shd().main(["--verify", "3", "--verify-run", str(out)]) == 0
    again = json.loads((out / "loihi_verify.json").read_text())
    assert again["passed"] and again["samples"] == 3 and again["dataset"] == "spoken_digits"
    assert again["accuracy_lava_float"] == again["accuracy_torch"] and again["steps"] == 10
    assert (out / "loihi.h5").is_file()
    capsys.readouterr()
    # the energy CLI reads the same spoken_digits test split back (and never generates one)
    assert cli(["energy", "--model", str(out), "--no-progress"]) == 0
    assert "T=10" in capsys.readouterr().out
    # the recipe collector's per-family accuracies, rebuilt from the saved model, reproduce the recorded test accuracy
    spec = importlib.util.spec_from_file_location("_sdr", EXAMPLES.parent / "benchmarks" / "spoken_digits_recipe.py")
    sdr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sdr)
    fam = sdr.family_accuracy(out)
    assert fam["all"] == round(metrics["test_accuracy"], 4) and sum(v["n"] for k, v in fam.items() if k != "all") == 20
    assert sdr.mean_by_family([fam, fam]) == {k: v["acc"] for k, v in fam.items() if k != "all"}


def test_verify_run_needs_verify_n_and_a_loihi_run(tmp_path, capsys):
    mod = _train_shd()
    with pytest.raises(SystemExit):
        mod.parse_args(["--verify-run", str(tmp_path)])
    assert "--verify-run RUN_DIR needs --verify N" in capsys.readouterr().err
    args = mod.parse_args(["--verify", "5", "--verify-run", str(tmp_path)])  # no --data-root needed
    assert args.verify == 5 and args.data_root is None
    args = mod.parse_args(["--data-root", str(tmp_path), "--dataset", "spoken_digits"])
    assert args.dataset == "spoken_digits"
