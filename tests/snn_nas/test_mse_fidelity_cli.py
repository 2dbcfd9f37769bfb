"""`neurosynth search mse --fidelity sh|hyperband|asha`: the multi-fidelity search from the command line (digits)."""

from __future__ import annotations

import json

import pytest

from neurosynth.apps.cli import main


@pytest.fixture(scope="module")
def space_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("space") / "space.json"
    p.write_text(json.dumps({"widths": [4], "stem_widths": [4], "depth": [1, 1], "kernels": [1, 3]}))
    return p


def test_sh_search_trains_at_rung_budgets_and_selects_on_validation(tmp_path, space_file, capsys):
    from snn_nas.engine import Archive
    from snn_nas.engine.fidelity import DEFAULT_FIDELITY

    out = tmp_path / "s"
    args = ["search", "mse", "--fidelity", "sh", "--min-budget", "1", "--max-budget", "3", "--eta", "3",
            "--unit-images", "60", "--val-images", "100", "--dataset", "digits", "--T", "2", "--space",
            str(space_file), "--seed", "1", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    assert "best validation accuracy" in capsys.readouterr().out
    for f in ("archive.sqlite", "best.json", "hall_of_fame.json", "summary.json", "manifest.json",
              "plots/fitness.png", "plots/pareto.png"):
        assert (out / f).exists(), f
    with Archive(out / "archive.sqlite") as a:
        recs = a.budget_records()
    assert sorted((r["rung"], r["budget"]["epochs"], r["budget"]["images"]) for r in recs) == \
        [(0, 1, 60)] * 3 + [(1, 1, 180)]
    man = json.loads((out / "manifest.json").read_text())
    assert man["config"]["strategy"] == "dehb" and man["config"]["cost"] == "synops"
    assert man["results"]["val_images"] == 100 and man["results"]["search_train_images"] == 1347 - 100
    assert "test_accuracy" not in json.dumps(man["results"])  # selection never read the test split
    # the default is one constant, and --help names it
    assert DEFAULT_FIDELITY == "sh"  # chosen by the paired evidence (benchmarks/search_vs_random.py)
    with pytest.raises(SystemExit):
        main(["search", "mse", "--help"])
    assert "DEFAULT_FIDELITY" in capsys.readouterr().out
    # a finished search is not overwritten; --resume with one more bracket reuses every archived result
    assert main(args) == 2 and "--resume" in capsys.readouterr().err
    assert main([*args, "--brackets", "2", "--resume"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["replayed"] == 4 and s["evaluations"] == 8 and s["brackets"] == 2


@pytest.mark.parametrize("extra, message", [
    (["--fidelity", "sh", "--eta", "1"], "eta must be an integer >= 2"),
    (["--fidelity", "sh", "--min-budget", "9", "--max-budget", "3"], "max_budget must be >= min_budget"),
    (["--fidelity", "sh", "--brackets", "0"], "--brackets must be >= 1"),
    (["--fidelity", "sh", "--prefilter", "0"], "--prefilter must be >= 1"),
    (["--fidelity", "none", "--prefilter", "20"], "use them with --fidelity sh|hyperband|asha"),
    (["--fidelity", "none", "--predictor"], "use them with --fidelity sh|hyperband|asha"),
    (["--generations", "3"], "size the training-free search (--fidelity none)"),
    (["--fidelity", "asha", "--strategy", "ga"], "--fidelity asha drives the strategies ['dehb', 'random']"),
    (["--fidelity", "sh", "--strategy", "nsga2"], "--fidelity sh drives the strategies"),
    (["--fidelity", "sh", "--val-images", "5000"], "--val-images 5000 must be below the 1347 training samples"),
])
def test_bad_fidelity_options_are_one_error_line_and_write_nothing(tmp_path, capsys, extra, message):
    out = tmp_path / "x"
    assert main(["search", "mse", "--dataset", "digits", "--out", str(out), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_unknown_fidelity_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["search", "mse", "--out", str(tmp_path / "x"), "--fidelity", "bogus"])
    assert e.value.code == 2 and "invalid choice: 'bogus'" in capsys.readouterr().err


def test_chain_family_space_from_the_command_line(tmp_path, capsys):
    """`--space` with {"family": "chain"} searches the family that holds the hand-designed networks; the chosen
    network is a spec of that family (digits as 1x8x8 images: one conv-BN-spiking-pool block, an optional dense layer)."""
    space = tmp_path / "chain.json"
    space.write_text(json.dumps({"family": "chain", "blocks": [1, 1], "widths": [4, 8], "kernels": [3],
                                 "pools": ["max"], "hidden": [0, 1], "hidden_widths": [32], "recurrent": [False],
                                 "neurons": ["lif"], "betas": [0.9], "readouts": ["li"], "readout_betas": [0.9]}))
    out = tmp_path / "s"
    assert main(["search", "mse", "--fidelity", "sh", "--min-budget", "1", "--max-budget", "3", "--eta", "3",
                 "--unit-images", "60", "--val-images", "100", "--dataset", "digits", "--T", "2", "--space",
                 str(space), "--seed", "0", "--out", str(out), "--no-progress"]) == 0
    best = json.loads((out / "best.json").read_text())
    spec = best.get("spec", best)
    assert spec["kind"] == "chain" and spec["blocks"][0]["width"] in (4, 8)
    # the chain family is float-only: a deployable target is refused with one error line, nothing written
    assert main(["search", "mse", "--target", "loihi", "--dataset", "digits", "--space", str(space),
                 "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert capsys.readouterr().err.count("error:") == 1 and not (tmp_path / "x").exists()
