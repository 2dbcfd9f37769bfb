"""`neurosynth search bio --method evo --fidelity sh`: EvoSearch through the multi-fidelity engine (rungs in epochs)."""

from __future__ import annotations

import json

from neurosynth.apps.cli import main


def test_evo_with_successive_halving_trains_rungs_in_epochs(tmp_path, capsys):
    from snn_nas.engine import Archive

    out = tmp_path / "evo_sh"
    rc = main(["search", "bio", "--method", "evo", "--fidelity", "sh", "--min-budget", "1", "--max-budget", "3",
               "--eta", "3", "--space", "nb201", "--seed", "1", "--out", str(out), "--generations", "2",
               "--population", "3", "--C", "4", "--limit-train", "40", "--batch-size", "20", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    with Archive(out / "archive.sqlite") as a:
        recs = a.budget_records()
    # two brackets of 3 genotypes at 1 epoch, the best one of each retrained for 3 epochs
    rungs = sorted((r["bracket"], r["rung"], r["budget"]["epochs"]) for r in recs)
    assert [x for x in rungs if x[1] == 1] == [(0, 1, 3), (1, 1, 3)]
    assert len([x for x in rungs if x[1] == 0]) >= 5  # (a repeated genotype is read back, not retrained)
    res = json.loads((out / "search.json").read_text())
    assert res["fidelity"] == "sh" and res["budget"] == {"epochs": 3, "images": 0} and res["front"]
    assert (out / "genotype.json").exists()


def test_fidelity_is_refused_for_the_supernet_methods(tmp_path, capsys):
    assert main(["search", "bio", "--method", "eg", "--fidelity", "sh", "--out", str(tmp_path / "x"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "weight-sharing supernet" in err[0] and not (tmp_path / "x").exists()
    assert main(["search", "bio", "--method", "evo", "--fidelity", "sh", "--min-budget", "1", "--max-budget", "4",
                 "--out", str(tmp_path / "y"), "--no-progress"]) == 2
    assert "whole number of epochs" in capsys.readouterr().err
