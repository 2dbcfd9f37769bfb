"""CLI (`neurosynth search bio`, `neurosynth robustness`) and the robustness library."""

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from neurosynth import rules
from neurosynth.robustness import PAPER_DEFAULTS, LogitsModel, evaluate_robustness


def _net(rule):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))
    return rules.convert(net, rule)


def test_true_gradients_restore_exact_input_gradient():
    net = _net("fa")
    x = torch.rand(4, 1, 4, 4, requires_grad=True)
    net(x).sum().backward()
    g_fb = x.grad.clone()
    x.grad = None
    with rules.true_gradients(net):
        net(x).sum().backward()
    g_true = x.grad.clone()
    ref = _net("bp")
    ref.load_state_dict({k: v for k, v in net.state_dict().items() if "backward" not in k})
    xr = x.detach().clone().requires_grad_(True)
    ref(xr).sum().backward()
    assert torch.allclose(g_true, xr.grad, atol=1e-6) and not torch.allclose(g_fb, g_true)
    assert not net[1].true_gradient  # restored after the block


def test_paper_defaults():
    assert PAPER_DEFAULTS["fgsm"]["eps"] == 0.35
    assert PAPER_DEFAULTS["pgd"] == {"eps": 0.35, "alpha": 2 / 255, "steps": 10, "random_start": True}
    assert PAPER_DEFAULTS["tpgd"]["steps"] == 7 and PAPER_DEFAULTS["apgd"]["steps"] == 50


def test_evaluate_robustness_reports_gradient_source():
    net = _net("usf").eval()
    x = torch.rand(8, 1, 4, 4)
    y = net(x).argmax(1)  # all clean predictions correct
    model = LogitsModel(net)
    res = evaluate_robustness(model, x, y, ["fgsm"], gradient="true", overrides={"fgsm": {"eps": 0.5}})
    assert res["clean_accuracy"] == 1.0
    assert res["white_box_gradient_source"].startswith("true backprop")
    assert res["attacks"]["fgsm"]["max_linf"] <= 0.5 + 1e-6
    fb = evaluate_robustness(model, x, y, ["fgsm"], gradient="feedback")
    assert "feedback path" in fb["white_box_gradient_source"]
    with pytest.raises(ValueError, match="unknown attacks"):
        evaluate_robustness(model, x, y, ["nope"])
    with pytest.raises(ValueError, match="surrogate"):
        evaluate_robustness(model, x, y, ["transfer"])


def test_fgsm_true_gradient_matches_manual_sign_step():
    net = _net("fa").eval()
    x = torch.rand(6, 1, 4, 4)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    res = evaluate_robustness(LogitsModel(net), x, y, ["fgsm"], overrides={"fgsm": {"eps": 0.1}})
    with rules.true_gradients(net):
        xr = x.clone().requires_grad_(True)
        nn.functional.cross_entropy(net(xr), y).backward()
    adv = (x + 0.1 * xr.grad.sign()).clamp(0, 1)
    expected = float((net(adv).argmax(1) == y).float().mean())
    assert res["attacks"]["fgsm"]["robust_accuracy"] == pytest.approx(expected)


def test_cli_search_and_robustness_end_to_end(tmp_path, capsys):
    from neurosynth.apps.cli import main
    from neurosynth.rundir import load_run

    out = tmp_path / "s"
    rc = main(["search", "bio", "--method", "darts", "--space", "nb201", "--dataset", "digits", "--seed", "0",
               "--out", str(out), "--epochs", "1", "--warmup", "0", "--C", "4", "--limit-train", "48",
               "--batch-size", "24", "--rules", "fa,usf", "--train-best", "1", "--no-progress"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "alpha gets only 1 Adam steps" in err  # 24 search-val images / batch 24, one epoch: warned up front
    verdict = json.loads((out / "alpha_entropy.json").read_text())["verdict"]
    assert verdict != "moved" and ("barely moved" in err or "uniform distribution" in err)
    g = json.loads((out / "genotype.json").read_text())
    assert g["space"] == "nb201" and len(g["edges"]) == 6
    assert (out / "plots" / "cell.png").stat().st_size > 1000
    assert (out / "archive.sqlite").exists() and (out / "manifest.json").exists()
    model, spec, metrics = load_run(out / "best_model")
    assert spec["genotype"] == g and 0.0 <= metrics["test_accuracy"] <= 1.0
    rc = main(["robustness", "--model", str(out / "best_model"), "--attacks", "fgsm,onepixel", "--n-samples", "8",
               "--no-progress", "--param", "onepixel.steps=2"])
    assert rc == 0
    res = json.loads((out / "best_model" / "robustness" / "robustness.json").read_text())
    assert set(res["attacks"]) == {"fgsm", "onepixel"} and res["n_samples"] == 8
    assert res["attacks"]["onepixel"]["params"]["steps"] == 2


def test_cli_errors_are_user_errors(tmp_path, capsys):
    from neurosynth.apps.cli import main

    assert main(["search", "bio", "--out", str(tmp_path / "x"), "--rules", "fa,bogus", "--no-progress"]) == 2
    assert "unknown learning rule 'bogus'" in capsys.readouterr().err
    assert main(["search", "bio", "--out", str(tmp_path / "y"), "--dataset", "cifar10", "--no-progress"]) == 2
    assert "cifar10 needs --data-root" in capsys.readouterr().err
    assert main(["robustness", "--model", str(tmp_path / "missing")]) == 2
    assert main(["robustness", "--model", str(tmp_path), "--attacks", "zap"]) == 2


def test_evo_method_through_engine(tmp_path):
    from neurosynth.apps.cli import main

    out = tmp_path / "evo"
    rc = main(["search", "bio", "--method", "evo", "--space", "nb201", "--seed", "1", "--out", str(out),
               "--generations", "2", "--population", "3", "--eval-epochs", "1", "--C", "4", "--limit-train", "40",
               "--batch-size", "20", "--no-progress"])
    assert rc == 0
    res = json.loads((out / "search.json").read_text())
    assert res["evaluations"] >= 3 and len(res["hall_of_fame"]) >= 1
    assert np.isfinite(res["fitness"])


def test_cli_eg_method(tmp_path):
    from neurosynth.apps.cli import main

    out = tmp_path / "eg"
    rc = main(["search", "bio", "--method", "eg", "--space", "nb201", "--seed", "0", "--out", str(out), "--epochs", "2",
               "--warmup", "1", "--cma-generations", "1", "--C", "4", "--limit-train", "48", "--batch-size", "24",
               "--rules", "fa,brsf", "--no-progress"])
    assert rc == 0
    res = json.loads((out / "search.json").read_text())
    assert res["method"] == "eg" and res["cma"]["iterations"] == 1
    assert "sigma" in res["history"][1] and "sigma" not in res["history"][0]


def test_cli_robustness_on_a_time_first_spiking_run(tmp_path, capsys):
    from neurosynth.apps.cli import main

    run = tmp_path / "snn"
    assert main(["train", "--out", str(run), "--epochs", "1", "--hidden", "16", "--T", "4", "--no-progress"]) == 0
    assert main(["robustness", "--model", str(run), "--attacks", "fgsm", "--n-samples", "16", "--no-progress"]) == 0
    assert "input current over T=4 steps" in capsys.readouterr().out
    res = json.loads((run / "robustness" / "robustness.json").read_text())
    assert res["n_samples"] == 16
    assert res["attacks"]["fgsm"]["robust_accuracy"] <= res["clean_accuracy"]
