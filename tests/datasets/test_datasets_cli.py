"""``neurosynth data info|plot`` on fixture files."""

from __future__ import annotations

import pytest

from neurosynth.apps.cli import main
from neurosynth.datasets.testing import write_fake_dvs_gesture, write_fake_shd


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("cli")
    write_fake_shd(r, n_train=6, n_test=3, seed=0)
    write_fake_dvs_gesture(r, n_train=4, n_test=2, seed=0, max_events=300)
    return r


def test_info_shd(root, capsys):
    assert main(["data", "info", "shd", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "train: 6 samples" in out and "test: 3 samples" in out
    assert "(700, 1, 1)" in out and "english zero" in out and "events/sample mean" in out


def test_info_missing_dataset_says_where(tmp_path, capsys):
    assert main(["data", "info", "nmnist", "--root", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "MISSING" in captured.out and str(tmp_path / "NMNIST" / "Train") in captured.out
    assert captured.err.startswith("error: no split of 'nmnist'")


def test_unknown_dataset_is_a_user_error(tmp_path, capsys):
    assert main(["data", "info", "mnist-dvs", "--root", str(tmp_path)]) == 2
    assert "registered datasets" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["shd", "dvs_gesture"])
def test_plot_writes_png(root, tmp_path, name):
    out = tmp_path / f"{name}.png"
    assert main(["data", "plot", name, "--root", str(root), "--index", "1", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_index_out_of_range(root, tmp_path, capsys):
    out = tmp_path / "x.png"
    assert main(["data", "plot", "shd", "--root", str(root), "--index", "99", "--out", str(out)]) == 2
    assert "out of range" in capsys.readouterr().err and not out.exists()


def test_bare_data_command_prints_usage(capsys):
    assert main(["data"]) == 2
    assert "info" in capsys.readouterr().err
