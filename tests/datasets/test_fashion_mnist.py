"""Fashion-MNIST: the IDX reader on tiny files in the exact format, the search order, errors, encoders."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest
import torch

from neurosynth.datasets import CorruptFileError, DatasetNotFoundError, load
from neurosynth.datasets import fashion as fm
from neurosynth.datasets.testing import write_fake_fashion_mnist


@pytest.fixture
def no_system(tmp_path, monkeypatch):
    """No Debian folder and an empty user data folder."""
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "no-system")
    monkeypatch.setenv("NEUROSYNTH_DATA", str(tmp_path / "no-user"))
    return tmp_path


def test_idx_roundtrip_bytes_and_values(tmp_path):
    meta = write_fake_fashion_mnist(tmp_path, 7, 3, seed=1)
    raw = gzip.decompress(meta["train"]["path"].read_bytes())
    assert raw[:4] == bytes([0, 0, 8, 3]) and int.from_bytes(raw[4:8], "big") == 7  # the IDX header
    assert len(raw) == 16 + 7 * 784
    ds = load("fashion_mnist", tmp_path, "train")
    assert len(ds) == 7 and ds.n_classes == 10 and ds.classes[9] == "Ankle boot"
    x, y = ds[2]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert torch.equal(x[0], torch.from_numpy(meta["train"]["images"][2]).float() / 255)
    assert y == meta["train"]["labels"][2] and ds.labels() == meta["train"]["labels"]
    assert load("fashion_mnist", tmp_path, "test", flatten=True)[0][0].shape == (784,)
    # same seed, same bytes
    again = write_fake_fashion_mnist(tmp_path / "b", 7, 3, seed=1)
    assert again["train"]["path"].read_bytes() == meta["train"]["path"].read_bytes()


@pytest.mark.parametrize("layout,gz", [("flat", False), ("torchvision", True)])
def test_layouts_and_uncompressed(tmp_path, layout, gz):
    meta = write_fake_fashion_mnist(tmp_path, 5, 4, seed=2, layout=layout, gz=gz)
    ds = load("fashion_mnist", tmp_path, "test")
    assert ds.labels() == meta["test"]["labels"]


def test_root_none_uses_the_debian_folder_then_user_folder(tmp_path, monkeypatch, no_system):
    sysdir = tmp_path / "sys"
    meta = write_fake_fashion_mnist(sysdir, 4, 3, seed=3)
    monkeypatch.setattr(fm, "SYSTEM_DIR", sysdir)
    assert load("fashion_mnist", split="train").labels() == meta["train"]["labels"]
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "gone")
    user = write_fake_fashion_mnist(tmp_path / "no-user", 6, 2, seed=4, layout="torchvision")
    assert load("fashion_mnist", split="train").labels() == user["train"]["labels"]


def test_missing_names_all_three_ways(tmp_path, no_system):
    with pytest.raises(DatasetNotFoundError) as e:
        load("fashion_mnist", tmp_path / "empty", "test")
    msg = str(e.value)
    assert "apt-get install -y dataset-fashion-mnist" in msg
    assert "t10k-images-idx3-ubyte" in msg and str(tmp_path / "empty") in msg
    assert "download=True" in msg and "root" in msg
    with pytest.raises(DatasetNotFoundError, match="apt-get install"):
        load("fashion_mnist", split="train")
    with pytest.raises(ValueError, match="splits"):
        load("fashion_mnist", tmp_path, "valid")


def test_download_goes_through_torchvision(tmp_path, monkeypatch, no_system):
    import torchvision.datasets as tvd

    calls = []

    def fake(root, train=True, download=False):
        calls.append((root, train, download))
        write_fake_fashion_mnist(root, 3, 2, seed=5, layout="torchvision")

    monkeypatch.setattr(tvd, "FashionMNIST", fake)
    ds = load("fashion_mnist", tmp_path / "dl", "test", download=True)
    assert len(ds) == 2 and calls == [(str(tmp_path / "dl"), False, True)]
    load("fashion_mnist", tmp_path / "dl", "test", download=True)
    assert len(calls) == 1  # present now: no second download


def _corrupt(path, blob):
    path.write_bytes(gzip.compress(blob) if path.suffix == ".gz" else blob)


@pytest.mark.parametrize("case", ["truncated_gzip", "wrong_magic", "short_body", "label_count", "bad_label"])
def test_corrupt_files_name_the_file(tmp_path, case):
    meta = write_fake_fashion_mnist(tmp_path, 4, 3, seed=6)
    img, lab = meta["train"]["path"], meta["train"]["labels_path"]
    if case == "truncated_gzip":
        img.write_bytes(img.read_bytes()[:40])
        bad = img
    elif case == "wrong_magic":
        _corrupt(img, b"PK\x03\x04" + bytes(100))
        bad = img
    elif case == "short_body":
        _corrupt(img, gzip.decompress(img.read_bytes())[:-5])
        bad = img
    elif case == "label_count":
        fm.write_idx(lab, np.zeros(5, np.uint8))
        bad = lab
    else:
        fm.write_idx(lab, np.full(4, 11, np.uint8))
        bad = lab
    with pytest.raises(CorruptFileError, match=str(bad.name)):
        load("fashion_mnist", tmp_path, "train")


def test_encoders_and_batches(tmp_path):
    write_fake_fashion_mnist(tmp_path, 10, 4, seed=7)
    direct = load("fashion_mnist", tmp_path, "train", T=3)
    x, _ = direct[0]
    assert x.shape == (3, 1, 28, 28) and torch.equal(x[0], x[2])
    rate = load("fashion_mnist", tmp_path, "train", T=5, encoding="rate", seed=1)
    xr, _ = rate[1]
    assert set(xr.unique().tolist()) <= {0.0, 1.0} and torch.equal(xr, rate[1][0])
    lat = load("fashion_mnist", tmp_path, "train", T=6, encoding="latency")
    assert (lat[0][0].sum(0) <= 1).all()
    cur = load("fashion_mnist", tmp_path, "train", T=2, encoding="current")
    assert torch.equal(cur[0][0], direct[0][0][:2])
    with pytest.raises(ValueError, match="encoder"):
        load("fashion_mnist", tmp_path, "train", T=2, encoding="nope")
    # vectorised [T, B, ...] batches: every sample once per epoch, reproducible from the seed
    b = direct.batches(4, shuffle=True, seed=3)
    assert len(b) == 3
    xs, ys = zip(*list(b))
    assert [x.shape[:2] for x in xs] == [(3, 4), (3, 4), (3, 2)]
    assert sorted(torch.cat(ys).tolist()) == sorted(direct.labels())
    first = [y.tolist() for _, y in direct.batches(4, seed=3)]
    assert first == [y.tolist() for y in ys]
    xb, yb = next(iter(rate.batches(10, shuffle=False, seed=0)))
    assert xb.shape == (5, 10, 1, 28, 28) and set(xb.unique().tolist()) <= {0.0, 1.0}
    dense = torch.stack([direct[i][0] for i in range(4)], 1)
    assert torch.equal(next(iter(direct.batches(4, shuffle=False)))[0], dense)
    assert len(direct.batches(4, drop_last=True)) == 2
    with pytest.raises(ValueError, match="batch_size"):
        direct.batches(0)


def test_fit_val_split_and_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(fm, "N_VAL", 3)
    meta = write_fake_fashion_mnist(tmp_path, 10, 2, seed=8)
    fit, val = load("fashion_mnist", tmp_path, "fit"), load("fashion_mnist", tmp_path, "val")
    assert fit.labels() + val.labels() == meta["train"]["labels"] and len(val) == 3
    assert len(load("fashion_mnist", tmp_path, "train", limit=4)) == 4
    with pytest.raises(ValueError, match="limit"):
        load("fashion_mnist", tmp_path, "train", limit=0)


def test_decoded_once_per_process(tmp_path, monkeypatch):
    write_fake_fashion_mnist(tmp_path, 4, 2, seed=9)
    load("fashion_mnist", tmp_path, "train")
    calls = []
    orig = fm.read_idx
    monkeypatch.setattr(fm, "read_idx", lambda p: calls.append(p) or orig(p))
    load("fashion_mnist", tmp_path, "train", T=2)
    assert calls == []
    write_fake_fashion_mnist(tmp_path, 5, 2, seed=10)  # replaced files are decoded again
    assert len(load("fashion_mnist", tmp_path, "train")) == 5 and len(calls) == 2


def test_real_files_from_the_debian_package():
    """Fails in CI (CI=true) when the package is missing; skips with the install command elsewhere."""
    if fm.locate(None, "train") is None or fm.locate(None, "test") is None:
        msg = f"Fashion-MNIST is not installed: {fm.INSTALL_COMMAND}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg + " (CI must install it: .ci/run does when apt-get is available)")
        pytest.skip(msg)
    train, test = load("fashion_mnist", split="train"), load("fashion_mnist", split="test")
    assert len(train) == 60_000 and len(test) == 10_000
    assert np.bincount(train.targets.numpy()).tolist() == [6000] * 10
    assert np.bincount(test.targets.numpy()).tolist() == [1000] * 10
    assert train.targets[0] == 9 and test.targets[0] == 9  # both files open with an ankle boot
    assert train.images.dtype == torch.uint8 and 0.2 < train.images[:1000].float().mean() / 255 < 0.4


def test_real_files_test_fails_in_ci_and_skips_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "none")
    monkeypatch.setenv("NEUROSYNTH_DATA", str(tmp_path / "none2"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y dataset-fashion-mnist"):
        test_real_files_from_the_debian_package()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y dataset-fashion-mnist"):
        test_real_files_from_the_debian_package()
