"""The spoken-digits benchmark scripts: ``spoken_digits_energy.py`` (the GRU's MAC count and the energy ratio from the
recorded results) and ``spoken_digits_recipe.py`` (the seeds of one recipe must be the same recipe)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from neurosynth.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def _bench(name="spoken_digits_energy"):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gru_macs_and_ratio_from_the_recorded_results():
    mod = _bench()
    assert mod.gru_macs(2, 3, 4, 5) == 2 * 3 * 3 * (4 + 3) + 3 * 5
    recipe = {"loihi_fixed_accuracy": 0.7, "protocol": {"loihi": {
        "run": "r", "command": "c", "lava_check": {"samples": 10, "energy": {
            "T": 70, "syn_ops": 1e6, "neuron_updates": 1e4, "loihi_nj": 4600.0}}}}}
    baselines = {"gru": 0.9, "protocol": {"models": {"gru": {"hidden": 10}}}}
    doc = mod.compare(recipe, baselines, gru_T=10, gru_inputs=90, classes=20)
    macs = 10 * 3 * 10 * 100 + 10 * 20
    assert doc["gru"]["macs"] == macs
    assert doc["gru"]["energy_j_cmos45_fp32"] == pytest.approx(macs * 4.6e-12)
    assert doc["gru"]["snn_over_cmos45_fp32"] == pytest.approx(4.6e-6 / (macs * 4.6e-12))


def test_float_snn_macs_count_input_recurrent_and_readout_weights():
    mod = _bench()
    assert mod.float_snn_macs(2, 4, 3, 2, 5, recurrent=True) == 2 * (4 * 3 + 3 * 3 + 2 * 3 * 3 + 3 * 5)
    assert mod.float_snn_macs(2, 4, 3, 2, 5, recurrent=False) == 2 * (4 * 3 + 3 * 3 + 3 * 5)
    recipe = {"test_accuracy": 0.9, "protocol": {"float": {
        "run": "f", "model": {"arch": "adlif", "hidden": 8, "layers": 2},
        "input": {"window_ms": 700.0, "dt_ms": 20.0, "channels": 140}}}}
    f = mod.float_snn(recipe)
    assert f["T"] == 35 and f["macs"] == 35 * (140 * 8 + 8 * 8 + 2 * 8 * 8 + 8 * 20)
    assert f["energy_j_cmos45_fp32"] == pytest.approx(f["macs"] * 4.6e-12)
    recipe["protocol"]["float"]["model"]["arch"] = "delays"  # K taps per synapse: not priced by this formula
    assert mod.float_snn(recipe) is None


def test_recorded_comparison_matches_the_recorded_inputs():
    mod = _bench()
    res = ROOT / "benchmarks" / "results"
    doc = mod.compare(json.loads((res / "spoken_digits_recipe.json").read_text()),
                      json.loads((res / "spoken_digits_baselines.json").read_text()))
    saved = json.loads((res / "spoken_digits_energy.json").read_text())
    assert saved["gru"]["macs"] == doc["gru"]["macs"] and saved["snn_loihi"]["energy_j"] == doc["snn_loihi"]["energy_j"]
    assert saved["float_snn"]["macs"] == doc["float_snn"]["macs"]


def _run(name, hidden=256, dt=10.0, epochs=80):
    return {"run": name, "model": {"arch": "recurrent", "hidden": hidden, "layers": 2}, "input": {"dt_ms": dt},
            "epochs": epochs, "seed": 0}


def test_seeds_of_one_recipe_must_share_network_input_and_epochs():
    check = _bench("spoken_digits_recipe").check_same_recipe
    check("--loihi", [_run("a"), _run("b"), _run("c")])
    with pytest.raises(UserError, match=r"c differs from a in model \{'hidden': \(256, 512\)\}"):
        check("--loihi", [_run("a"), _run("b"), _run("c", hidden=512)])
    with pytest.raises(UserError, match="differs from a in input"):
        check("--float", [_run("a"), _run("b", dt=20.0)])
    with pytest.raises(UserError, match=r"in epochs \(80, 60\)"):
        check("--float", [_run("a"), _run("b", epochs=60)])


def test_runs_recorded_before_an_option_existed_compare_at_its_default():
    """A run whose manifest predates the ``log1p`` input field or the ``time_stretch`` option reads as their
    defaults, so it is the same recipe as a newer run at those defaults, and not the same as one that used them."""
    mod = _bench("spoken_digits_recipe")
    old = {"dt_ms": 10.0, "window_ms": 700.0, "channels": 700, "align": "onset", "binary": True, "levels": 1}
    assert mod._input(old)["log1p"] is False and mod._input(None) is None
    a = {**_run("a"), "input": mod._input(old)}
    b = {**_run("b"), "input": mod._input({**old, "log1p": False})}
    mod.check_same_recipe("--loihi", [a, b])
    c = {**_run("c"), "input": mod._input({**old, "binary": False, "log1p": True})}
    with pytest.raises(UserError, match="log1p"):
        mod.check_same_recipe("--loihi", [a, c])



def test_paired_comparison_counts_wins_ties_and_losses_by_seed():
    """The goal block compares the float recipe with each baseline seed by seed: a difference under 0.1 point (one
    test sample in 1,000) is a tie, not a win, so a mean 0.03 points above a baseline reads as what it is."""
    paired = _bench("spoken_digits_recipe").paired
    runs = [{"seed": s, "test_accuracy": a} for s, a in ((0, 0.929), (1, 0.923), (2, 0.929))]
    base = {"per_seed": [{"seed": s, "test_acc": a} for s, a in ((0, 0.929), (1, 0.920), (2, 0.931))]}
    got = paired(runs, base)
    assert got["diff_points"] == [0.0, 0.3, -0.2] and (got["wins"], got["ties"], got["losses"]) == (1, 1, 1)
    assert got["mean_diff_points"] == pytest.approx(0.03, abs=1e-9)
    assert paired(runs, {"per_seed": base["per_seed"][:2]}) is None  # seed 2 missing: no paired comparison
    assert paired(runs, {}) is None


def test_loihi_gap_is_float_minus_fixed_point_seed_by_seed():
    gap = _bench("spoken_digits_recipe").loihi_gap
    fl = [{"seed": s, "test_accuracy": a} for s, a in ((0, 0.923), (1, 0.922), (2, 0.928))]
    lo = [{"seed": s, "loihi_fixed": {"accuracy": a}} for s, a in ((0, 0.904), (1, 0.899), (2, 0.887))]
    assert gap(fl, lo) == {"seeds": [0, 1, 2], "float_minus_loihi_fixed_points": [1.9, 2.3, 4.1], "mean_points": 2.77,
                           "seeds_within_2_points": 1}
    assert gap(fl, lo[:2]) is None  # seed 2 has no Loihi run: no per-seed gap


def _drop_option(argv: list[str], name: str) -> list[str]:
    if name not in argv:
        return argv
    i = argv.index(name)
    return argv[:i] + argv[i + 2:]


def test_results_file_rebuilds_from_its_own_records(tmp_path, monkeypatch):
    """Run directories are not kept, so the recorded command is rerun with ``--recorded`` (the committed file):
    every run it names comes from its entry there, per-family accuracies and the --extra keys included, and the
    rebuilt file equals the committed one but for the command and the 'recorded_in' marks."""
    import shlex

    mod = _bench("spoken_digits_recipe")
    path = ROOT / "benchmarks" / "results" / "spoken_digits_recipe.json"
    saved = json.loads(path.read_text())
    argv = shlex.split(saved["protocol"]["command"])[2:]
    monkeypatch.setattr(mod, "run_exists", lambda path: False)  # as on a machine without the runs
    argv = _drop_option(_drop_option(_drop_option(argv, "--extra"), "--recorded"), "--out")
    out = tmp_path / "rebuilt.json"
    assert mod.main([*argv, "--recorded", str(path), "--out", str(out)]) == 0
    rebuilt = json.loads(out.read_text())

    def strip(o):
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if k != "recorded_in"}
        return [strip(v) for v in o] if isinstance(o, list) else o

    assert rebuilt["protocol"]["float"]["recorded_in"] == str(path)
    assert rebuilt["protocol"].pop("command") != saved["protocol"].pop("command")
    assert strip(rebuilt) == strip(saved)


def test_recorded_refuses_a_file_that_is_not_a_results_file(tmp_path):
    mod = _bench("spoken_digits_recipe")
    bad = tmp_path / "bad.json"
    bad.write_text('{"protocol": {}}')
    with pytest.raises(UserError, match="--recorded .*not a results file"):
        mod.recorded_runs(bad)
