"""End-to-end: `neurosynth search mse` and the demo stage on digits (tiny budgets)."""

from __future__ import annotations

import json

import pytest

from neurosynth.apps.cli import main


@pytest.fixture(scope="module")
def space_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("space") / "space.json"
    p.write_text(json.dumps({"widths": [4], "stem_widths": [4], "depth": [1, 2], "kernels": [1, 3]}))
    return p


def test_search_mse_cli_writes_a_complete_run(tmp_path, space_file, capsys):
    from neurosynth.arch import build
    from neurosynth.rundir import load_run
    from snn_nas.engine import Archive

    out = tmp_path / "s"
    args = ["search", "mse", "--fidelity", "none", "--dataset", "digits", "--population", "3", "--generations", "2", "--fitness", "rdm",
            "--seed", "3", "--out", str(out), "--space", str(space_file), "--batch", "20", "--T", "2",
            "--train-best", "1", "--limit", "200", "--no-progress"]
    assert main(args) == 0
    assert "best rdm fitness" in capsys.readouterr().out
    for f in ("archive.sqlite", "best.json", "hall_of_fame.json", "summary.json", "manifest.json",
              "plots/fitness.png", "plots/pareto.png", "best_model/model.pt", "best_model/arch.json",
              "best_model/metrics.json", "best_model/manifest.json"):
        assert (out / f).exists(), f
    best = json.loads((out / "best.json").read_text())
    assert best["kind"] == "mse" and build(best) is not None
    man = json.loads((out / "manifest.json").read_text())
    assert man["seed"] == 3 and man["config"]["strategy"] == "ga" and "versions" in man and man["results"]
    with Archive(out / "archive.sqlite") as a:
        assert a.best(1)[0]["spec"] == best and len(a.summaries()) == 2
    model, spec, metrics = load_run(out / "best_model")
    assert spec == best and 0.0 <= metrics["test_accuracy"] <= 1.0
    # a second run into the same directory must not silently overwrite it
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    # --resume with a larger budget continues and keeps the earlier evaluations
    n_before = len(Archive(out / "archive.sqlite"))
    resumed = list(args)
    resumed[args.index("--generations") + 1] = "3"
    resumed.remove("--train-best")
    resumed.remove("1")
    assert main([*resumed, "--resume"]) == 0
    with Archive(out / "archive.sqlite") as a:
        assert len(a.summaries()) == 3 and len(a) >= n_before


def test_search_mse_cli_rejects_bad_input(tmp_path, capsys):
    assert main(["search", "mse", "--fidelity", "none", "--out", str(tmp_path / "x"), "--fitness", "nope"]) == 2
    assert "unknown --fitness 'nope'" in capsys.readouterr().err
    assert main(["search", "mse", "--fidelity", "none", "--out", str(tmp_path / "x"), "--strategy", "sa"]) == 2
    assert "unknown --strategy 'sa'" in capsys.readouterr().err


def test_demo_stage_quick(tmp_path):
    from neurosynth.apps.demo.search import stage

    ctx = {"out": tmp_path, "seed": 0, "quick": True, "report": []}
    stage(ctx)
    assert ctx["search_spec"]["kind"] == "mse"
    assert (ctx["search_dir"] / "best.json").exists()
    assert any("MSE-NAS search" in line for line in ctx["report"])


def test_search_mse_target_loihi_works_with_its_default_T(tmp_path, capsys):
    # the README's `search mse --target loihi --dataset digits`: --T left unset picks the window the target needs
    from snn_nas.mse.run import SearchConfig, default_T

    assert default_T(SearchConfig(out="x", target="loihi")) == 8
    assert default_T(SearchConfig(out="x", target="float")) == 4
    out = tmp_path / "s"
    assert main(["search", "mse", "--fidelity", "none", "--target", "loihi", "--dataset", "digits", "--population", "2",
                 "--generations", "1", "--batch", "20", "--limit", "100", "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "manifest.json").read_text())["config"]["T"] == 8


def test_search_mse_target_loihi_with_too_short_T_names_the_fix(tmp_path, capsys):
    assert main(["search", "mse", "--fidelity", "none", "--target", "loihi", "--dataset", "digits", "--T", "4", "--population", "2",
                 "--generations", "1", "--batch", "20", "--limit", "100", "--out", str(tmp_path / "s"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--T 4 is too short for --target loihi" in err and "use --T >= 6" in err
    assert not (tmp_path / "s").exists()
