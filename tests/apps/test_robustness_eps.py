"""Robustness numbers that do not mislead: one eps per run unless set per attack (in the table and the plot title),
PGD's step derived from eps, unknown --param keys and bad values refused, --surrogate renamed --transfer-source."""

from __future__ import annotations

import json
import math

import pytest

from neurosynth.apps.cli import main
from neurosynth.robustness import PAPER_DEFAULTS, attack_params, check_eps, eps_label, format_table


def test_one_eps_for_every_attack_unless_set_per_attack():
    eps = 8 / 255
    got = {a: attack_params(a, eps) for a in PAPER_DEFAULTS}
    assert {p["eps"] for p in got.values() if "eps" in p} == {eps}  # fgsm/pgd no longer 0.35 beside 8/255
    assert attack_params("fgsm", eps, {"eps": 0.1})["eps"] == 0.1


def test_pgd_step_follows_eps():
    for eps in (8 / 255, 0.35):
        p = attack_params("pgd", eps)
        assert math.isclose(p["alpha"], eps / 4) and p["alpha"] * p["steps"] >= eps  # the steps reach the ball
    assert attack_params("pgd", 0.35, {"alpha": 0.01})["alpha"] == 0.01
    assert math.isclose(attack_params("pgd", None)["alpha"], 0.35 / 4)


@pytest.mark.parametrize("override, match", [
    ({"esp": 0.1}, "fgsm has no parameter esp"),
    ({"eps": -0.1}, "must be > 0"),
    ({"eps": float("nan")}, "takes a finite number"),
    ({"eps": "abc"}, "takes a finite number"),
    ({"eps": 3.0}, r"\(0, 1\]"),
])
def test_bad_attack_parameters_are_refused(override, match):
    with pytest.raises(ValueError, match=match):
        attack_params("fgsm", 8 / 255, override)


@pytest.mark.parametrize("bad", ["-0.1", "nan", "abc", "0", "inf"])
def test_bad_eps_refused(bad):
    with pytest.raises(ValueError):
        check_eps(bad)


def test_table_and_label_show_eps():
    res = {"clean_accuracy": 0.9, "attacks": {
        "fgsm": {"robust_accuracy": 0.5, "params": {"eps": 8 / 255}, "gradient_source": "g"},
        "onepixel": {"robust_accuracy": 0.8, "params": {"pixels": 1}, "gradient_source": "none"}}}
    assert "| fgsm | 50.00 | 0.03137 | g |" in format_table(res) and "eps (L-inf)" in format_table(res)
    assert eps_label(res) == "eps 0.03137 (8/255)"
    res["attacks"]["pgd"] = {"robust_accuracy": 0.4, "params": {"eps": 0.1}, "gradient_source": "g"}
    assert eps_label(res) == "eps per attack"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("rb") / "run"
    assert main(["train", "--epochs", "1", "--T", "4", "--hidden", "16", "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.mark.parametrize("argv, match", [
    (["--param", "fgsm.esp=0.1"], "fgsm has no parameter esp"),
    (["--param", "fgsm.eps=-1"], "must be > 0"),
    (["--param", "fgsm.eps=NaN"], "fgsm.eps=NaN: the value must be a finite number"),
    (["--param", "fgsm.eps=abc"], "fgsm.eps"),
    (["--eps", "-0.1"], "--eps '-0.1'"),
    (["--eps", "nan"], "--eps 'nan'"),
])
def test_cli_refuses_bad_params_before_any_work(run_dir, tmp_path, capsys, argv, match):
    out = tmp_path / "r"
    assert main(["robustness", "--model", str(run_dir), "--attacks", "fgsm", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_run_records_eps_and_the_deprecated_alias_warns(run_dir, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["robustness", "--model", str(run_dir), "--attacks", "fgsm,pgd", "--n-samples", "8", "--out",
                 str(out), "--no-progress", "--surrogate-epochs", "1"]) == 0
    captured = capsys.readouterr()
    assert "--surrogate-epochs is deprecated" in captured.err and "--transfer-source-epochs" in captured.err
    res = json.loads((out / "robustness.json").read_text())
    assert res["attacks"]["fgsm"]["params"]["eps"] == res["attacks"]["pgd"]["params"]["eps"] == 8 / 255
    assert "eps 0.03137 (8/255)" in (out / "robustness.md").read_text()
    assert "0.03137" in captured.out
