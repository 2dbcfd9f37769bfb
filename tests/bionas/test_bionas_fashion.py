"""BioNAS on Fashion-MNIST: the image loader, `search bio --dataset fashion_mnist`, the alpha-entropy report and
the mixed-vs-single example's atomic results. Fake IDX files (datasets.testing) keep these fast and offline; one
test reads the real files when `make sysdeps` installed them and skips otherwise."""

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from neurosynth.datasets.testing import write_fake_fashion_mnist
from snn_nas.bionas.data import load_image_data
from snn_nas.bionas.space import CellSpace

ROOT = Path(__file__).resolve().parents[2]
REAL = Path("/usr/share/datasets/fashion-mnist")


def _example(name):
    spec = importlib.util.spec_from_file_location(f"_example_{name}", ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fashion_mnist_image_data_from_idx_files(tmp_path):
    fake = write_fake_fashion_mnist(tmp_path, n_train=30, n_test=12, seed=3)
    d = load_image_data("fashion_mnist", str(tmp_path), limit_train=20)
    assert d.name == "fashion_mnist" and d.num_classes == 10 and d.input_shape == [1, 28, 28]
    assert d.x_train.shape == (20, 1, 28, 28) and d.x_train.dtype == torch.float32
    assert len(d.y_test) == 12  # --limit-train never shrinks the test set
    expect = torch.from_numpy(fake["train"]["images"][:20].astype(np.float32) / 255.0).unsqueeze(1)
    assert torch.equal(d.x_train, expect)  # exactly the first N images, scaled to [0, 1]
    assert d.y_train.tolist() == fake["train"]["labels"][:20] and d.y_test.tolist() == fake["test"]["labels"]
    full = load_image_data("fashion_mnist", str(tmp_path))
    assert len(full.y_train) == 30


def test_fashion_mnist_missing_files_is_a_user_error(tmp_path):
    from neurosynth.errors import UserError

    with pytest.raises(UserError, match="fashion_mnist"):
        load_image_data("fashion_mnist", str(tmp_path / "empty"))


@pytest.mark.skipif(not (REAL / "t10k-labels-idx1-ubyte.gz").exists() and not (REAL / "t10k-labels-idx1-ubyte").exists(),
                    reason="Fashion-MNIST IDX files not installed (make sysdeps)")
def test_real_fashion_mnist_subset_and_full_test_set():
    d = load_image_data("fashion_mnist", limit_train=100)
    assert d.x_train.shape == (100, 1, 28, 28) and d.x_test.shape == (10_000, 1, 28, 28)
    assert 0.0 <= float(d.x_train.min()) and float(d.x_train.max()) == 1.0
    assert torch.bincount(d.y_test, minlength=10).tolist() == [1000] * 10  # the official balanced test set
    assert len(torch.unique(d.y_train)) == 10  # the training file is shuffled: a prefix holds every class


def _history(entropies):
    return [{"epoch": i + 1, "alpha_updates": i > 0, "alpha_entropy_per_edge": {"cell": e}}
            for i, e in enumerate(entropies)]


def test_alpha_entropy_report_verdicts(tmp_path):
    from snn_nas.bionas.plot import plot_alpha_entropy
    from snn_nas.bionas.search import alpha_entropy_report

    sp = CellSpace("nb201", ("fa", "usf"))
    k = sp.mask("cell").sum(axis=1)
    u = [math.log(int(v)) for v in k]
    uniform = alpha_entropy_report(_history([u, u]), sp)
    assert uniform["verdict"] == "uniform" and not uniform["alpha_moved"]
    assert uniform["cells"]["cell"]["final_normalised_entropy"] == pytest.approx([1.0] * sp.n_edges)
    barely = alpha_entropy_report(_history([u, [v - 0.005 for v in u]]), sp)
    assert barely["verdict"] == "barely moved" and barely["alpha_moved"]
    moved = alpha_entropy_report(_history([u, [v * 0.5 for v in u]]), sp)
    assert moved["verdict"] == "moved" and moved["min_normalised_entropy"] == pytest.approx(0.5)
    assert moved["cells"]["cell"]["entropy_per_epoch"][0] == pytest.approx(u)
    probs = {"cell": np.where(sp.mask("cell"), 1.0, 0.0) / k[:, None]}
    rep = alpha_entropy_report(_history([u]), sp, probs)
    assert rep["cells"]["cell"]["top_probability"] == pytest.approx(rep["cells"]["cell"]["uniform_probability"])
    plot_alpha_entropy(moved, tmp_path / "a.png", "test")
    assert (tmp_path / "a.png").stat().st_size > 1000


@pytest.mark.slow
def test_search_bio_on_fashion_mnist_writes_alpha_entropy_and_robustness_infers_dataset(tmp_path):
    from neurosynth.apps.cli import main

    write_fake_fashion_mnist(tmp_path / "fm", n_train=24, n_test=8, informative=True)
    out = tmp_path / "s"
    rc = main(["search", "bio", "--method", "darts", "--dataset", "fashion_mnist", "--data-root", str(tmp_path / "fm"),
               "--out", str(out), "--epochs", "2", "--warmup", "1", "--C", "4", "--limit-train", "16",
               "--batch-size", "8", "--rules", "fa,usf", "--train-best", "1", "--no-progress"])
    assert rc == 0
    rep = json.loads((out / "alpha_entropy.json").read_text())
    assert rep["alpha_updates"] == [False, True] and rep["verdict"] in ("uniform", "barely moved", "moved")
    man = json.loads((out / "manifest.json").read_text())
    assert man["results"]["alpha_verdict"] == rep["verdict"] and man["config"]["dataset"] == "fashion_mnist"
    assert (out / "plots" / "alpha_entropy.png").stat().st_size > 1000
    best = json.loads((out / "best_model" / "arch.json").read_text())
    assert best["input_shape"] == [1, 28, 28]
    rc = main(["robustness", "--model", str(out / "best_model"), "--attacks", "fgsm", "--n-samples", "4",
               "--data-root", str(tmp_path / "fm"), "--no-progress"])
    assert rc == 0
    res = json.loads((out / "best_model" / "robustness" / "robustness.json").read_text())
    assert res["dataset"] == "fashion_mnist" and res["n_samples"] == 4


def test_train_model_scores_the_test_set_only_when_asked():
    from snn_nas.bionas.train import train_model

    torch.manual_seed(0)
    x, y = torch.rand(16, 1, 4, 4), torch.arange(16) % 2
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    h = train_model(model, x, y, x, y, epochs=3, batch_size=8, test_every=2)
    assert math.isnan(h["test_accuracy"][0]) and not math.isnan(h["test_accuracy"][1])
    assert not math.isnan(h["test_accuracy"][2])  # always after the last epoch
    with pytest.raises(ValueError, match="test_every"):
        train_model(model, x, y, x, y, epochs=1, test_every=0)


def test_mixed_vs_single_writes_results_once_and_resumes(tmp_path, monkeypatch):
    from neurosynth.errors import UserError
    from neurosynth.rundir import load_run

    mod = _example("bionas_mixed_vs_single")
    write_fake_fashion_mnist(tmp_path / "fm", n_train=16, n_test=8, informative=True)
    g = {"space": "nb201", "edges": [{"node": 1, "from": 0, "op": "nor_conv_1x1", "rule": "fa"},
                                     {"node": 2, "from": 0, "op": "skip_connect", "rule": None},
                                     {"node": 2, "from": 1, "op": "none", "rule": None},
                                     {"node": 3, "from": 0, "op": "none", "rule": None},
                                     {"node": 3, "from": 1, "op": "avg_pool_3x3", "rule": None},
                                     {"node": 3, "from": 2, "op": "nor_conv_1x1", "rule": "usf"}]}
    (tmp_path / "g.json").write_text(json.dumps(g))
    out = tmp_path / "mvs"
    argv = ["--genotype", str(tmp_path / "g.json"), "--dataset", "fashion_mnist", "--data-root", str(tmp_path / "fm"),
            "--out", str(out), "--epochs", "1", "--seeds", "0", "--C", "4", "--batch-size", "8",
            "--configs", "mixed,e2e", "--rules", "bp,fa", "--save-models"]
    real, calls = mod.train_model, []

    def crash_on_second_config(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("killed")
        return real(*a, **kw)

    monkeypatch.setattr(mod, "train_model", crash_on_second_config)
    with pytest.raises(RuntimeError, match="killed"):
        mod.main(argv)
    assert not (out / "results.json").exists()  # never a partial table under the final name
    partial = json.loads((out / mod.PARTIAL).read_text())
    assert list(partial["configs"]) == ["mixed (searched)"]
    with pytest.raises(UserError, match="unfinished"):
        mod.main(["--merge", str(out), "--out", str(tmp_path / "merged")])
    monkeypatch.setattr(mod, "train_model", real)
    with pytest.raises(UserError, match="different settings"):
        mod.main([*argv, "--epochs", "2", "--resume"])
    assert mod.main([*argv, "--resume"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert list(res["configs"]) == ["mixed (searched)", "bp e2e", "fa e2e"]
    assert res["configs"]["mixed (searched)"] == partial["configs"]["mixed (searched)"]  # not retrained
    assert res["dataset"] == "fashion_mnist" and res["n_test"] == 8 and not (out / mod.PARTIAL).exists()
    assert "fashion_mnist" in (out / "table.md").read_text()
    model, spec, metrics = load_run(out / "models" / "fa_e2e-s0")
    assert spec["frame_rule"] == "fa" and 0.0 <= metrics["test_accuracy"] <= 1.0
