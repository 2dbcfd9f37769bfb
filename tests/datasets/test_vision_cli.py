"""``neurosynth train --dataset fashion_mnist`` (conv SNN), ``data info|plot`` for the vision datasets and
``data simulate-events``, on tiny files written by the tests."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurosynth.apps.cli import main
from neurosynth.datasets import fashion as fm
from neurosynth.datasets.testing import write_fake_fashion_mnist


@pytest.fixture(scope="module")
def froot(tmp_path_factory):
    r = tmp_path_factory.mktemp("fashion")
    write_fake_fashion_mnist(r, 400, 100, seed=0, informative=True)
    return r


@pytest.mark.slow
def test_train_csnn_learns_and_writes_a_run_dir(froot, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "fashion_mnist", "--root", str(froot), "--epochs", "3", "--batch-size", "16",
                 "--out", str(out), "--no-progress", "--seed", "1"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    assert m["recipe"] == "cpu" and m["epochs"] == 3 and len(m["history"]["val_accuracy"]) == 3
    assert m["test_accuracy"] > 0.5  # chance is 0.1: the label sets where a bright square is
    arch = json.loads((out / "arch.json").read_text())
    kinds = [la["type"] for la in arch["layers"]]
    assert kinds[:4] == ["conv2d", "batchnorm2d", "neuron", "maxpool2d"] and arch["input_shape"] == [1, 28, 28]
    import torch

    from neurosynth.rundir import load_run

    model, spec, metrics = load_run(out)
    x = torch.rand(2, 3, 1, 28, 28)
    assert model(x).shape == (2, 3, 10) and metrics["test_accuracy"] == m["test_accuracy"]
    assert (out / "plots" / "curves.png").exists() and (out / "manifest.json").exists()


def test_train_csnn_options_and_neuron(froot, tmp_path):
    out = tmp_path / "if"
    assert main(["train", "--dataset", "fashion_mnist", "--root", str(froot), "--epochs", "1", "--limit", "64",
                 "--channels", "4", "--hidden", "16", "--neuron", "if", "--T", "3", "--out", str(out),
                 "--no-progress"]) == 0
    arch = json.loads((out / "arch.json").read_text())
    neurons = [la["neuron"] for la in arch["layers"] if la["type"] == "neuron"]
    assert neurons == ["if", "if", "li"]
    assert json.loads((out / "manifest.json").read_text())


@pytest.mark.parametrize("argv,needle", [
    (["--channels", "a,b"], "--channels must be comma-separated"),
    (["--method", "stdp"], "surrogate gradients"),
    (["--neuron", "nope"], "nope"),
    (["--recipe", "cpu", "--epochs", "0"], "--epochs must be >= 1"),
    (["--dataset", "shd", "--arch", "csnn"], "static image datasets"),
])
def test_train_csnn_bad_options_exit_2(froot, tmp_path, capsys, argv, needle):
    base = ["train", "--dataset", "fashion_mnist", "--root", str(froot), "--out", str(tmp_path / "x"), "--no-progress"]
    args = base + argv
    if "--dataset" in argv:
        args = ["train", *argv, "--root", str(froot), "--out", str(tmp_path / "x"), "--no-progress"]
    assert main(args) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "x" / "model.pt").exists()


def test_train_missing_fashion_names_the_ways(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "none")
    monkeypatch.setenv("NEUROSYNTH_DATA", str(tmp_path / "none2"))
    assert main(["train", "--dataset", "fashion_mnist", "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "apt-get install -y dataset-fashion-mnist" in err and "download=True" in err


def test_data_info_and_plot_fashion(froot, tmp_path, capsys):
    assert main(["data", "info", "fashion_mnist", "--root", str(froot)]) == 0
    assert "train: 400 samples" in capsys.readouterr().out
    for extra in ([], ["--T", "4"]):
        png = tmp_path / f"f{len(extra)}.png"
        assert main(["data", "plot", "fashion_mnist", "--root", str(froot), "--out", str(png), *extra]) == 0
        assert png.stat().st_size > 1000


def test_data_info_and_plot_nfashion(froot, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fm, "SYSTEM_DIR", froot)  # nfashion reads Fashion-MNIST from the default place
    root = tmp_path / "ev"
    assert main(["data", "info", "nfashion_mnist", "--root", str(root)]) == 0
    assert "not generated yet" in capsys.readouterr().out
    from neurosynth.datasets import load

    load("nfashion_mnist", root, "test", n_samples=3)
    assert main(["data", "info", "nfashion_mnist", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "test: 3 samples" in out and "events/sample mean" in out
    png = tmp_path / "nf.png"
    assert main(["data", "plot", "nfashion_mnist", "--root", str(root), "--split", "test", "--index", "2",
                 "--out", str(png)]) == 0
    assert png.stat().st_size > 1000
    assert len(list((root / "NFashionMNIST").glob("*.nsev"))) == 1  # plotting did not generate another file


def test_simulate_events_cli(tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    stack = []
    for i in range(12):
        a = np.full((16, 20), 40, np.uint8)
        a[4:10, 1 + i:6 + i] = 230
        Image.fromarray(a).save(folder / f"{i:03d}.png")
        stack.append(a)
    np.save(tmp_path / "frames.npy", np.stack(stack))
    out_a, out_b = tmp_path / "a.npy", tmp_path / "b.npy"
    assert main(["data", "simulate-events", str(folder), "--fps", "500", "--out", str(out_a)]) == 0
    assert main(["data", "simulate-events", str(tmp_path / "frames.npy"), "--fps", "500", "--out", str(out_b)]) == 0
    a = np.load(out_a)
    assert a.dtype.names == ("x", "y", "t", "p") and len(a) > 50 and out_a.read_bytes() == out_b.read_bytes()
    assert a["x"].max() < 20 and a["y"].max() < 16 and set(np.unique(a["p"]).tolist()) == {0, 1}
    capsys.readouterr()
    # bad input: clear errors, nothing written
    (folder / "notes.txt").write_text("not an image")
    bad = tmp_path / "bad.npy"
    assert main(["data", "simulate-events", str(folder), "--fps", "500", "--out", str(bad)]) == 2
    assert "notes.txt" in capsys.readouterr().err
    assert main(["data", "simulate-events", str(tmp_path / "frames.npy"), "--out", str(bad)]) == 2
    assert "--fps" in capsys.readouterr().err
    np.save(tmp_path / "nan.npy", np.full((3, 4, 4), np.nan))
    assert main(["data", "simulate-events", str(tmp_path / "nan.npy"), "--fps", "10", "--out", str(bad)]) == 2
    assert "NaN" in capsys.readouterr().err
    assert main(["data", "simulate-events", str(tmp_path / "frames.npy"), "--fps", "10", "--threshold", "0",
                 "--out", str(bad)]) == 2
    assert not bad.exists() and not list(tmp_path.glob(".bad*"))


def test_nfashion_truncated_or_missing_is_named_and_never_generated_by_inspection(froot, tmp_path, capsys,
                                                                                   monkeypatch):
    monkeypatch.setattr(fm, "SYSTEM_DIR", froot)
    root = tmp_path / "ev"
    png = tmp_path / "nf.png"
    # nothing generated: data plot refuses (it used to generate the default 315 MB set)
    assert main(["data", "plot", "nfashion_mnist", "--root", str(root), "--split", "test", "--out", str(png)]) == 2
    assert "not generated yet" in capsys.readouterr().err
    assert not (root / "NFashionMNIST").exists() or not list((root / "NFashionMNIST").glob("*.nsev"))
    from neurosynth.datasets import load

    load("nfashion_mnist", root, "test", n_samples=3)
    (f,) = (root / "NFashionMNIST").glob("*.nsev")
    f.write_bytes(f.read_bytes()[:-100])  # truncated
    assert main(["data", "info", "nfashion_mnist", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "CORRUPT" in out and "truncated" in out and "test: not generated yet" not in out
    assert main(["data", "plot", "nfashion_mnist", "--root", str(root), "--split", "test", "--out", str(png)]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err
    assert list((root / "NFashionMNIST").glob("*.nsev")) == [f] and not png.exists()
