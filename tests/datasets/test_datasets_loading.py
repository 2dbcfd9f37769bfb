"""The real loading path (tonic / torchvision / scikit-learn) on tiny files in the real on-disk layouts."""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from neurosynth.datasets import (
    DATASETS,
    Binning,
    CorruptFileError,
    DatasetNotFoundError,
    collate_time_first,
    load,
)
from neurosynth.datasets.testing import (
    write_fake_cifar,
    write_fake_dvs_gesture,
    write_fake_nmnist,
    write_fake_shd,
)
from neurosynth.errors import UserError


def test_installed_package_is_ours(tmp_path):
    """From outside the repository, neurosynth.datasets is datasets/ and a bare ``datasets`` is not ours."""
    import subprocess
    import sys

    code = (
        "import importlib.util, json; s = importlib.util.find_spec('neurosynth.datasets'); "
        "p = importlib.util.find_spec('datasets'); "
        "print(json.dumps([s.origin, p.origin if p else None]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True)
    import json

    ours, plain = json.loads(out.stdout)
    repo_pkg = Path(__file__).resolve().parents[2] / "datasets" / "__init__.py"
    assert ours.replace(os.sep, "/").endswith("datasets/__init__.py") and Path(ours).resolve() == repo_pkg
    assert plain is None or Path(plain).resolve() != repo_pkg


@pytest.fixture(scope="module")
def shd_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("shd")
    return root, write_fake_shd(root, n_train=10, n_test=4, seed=1)


def test_shd_shapes_dtypes_labels_and_counts(shd_root):
    root, meta = shd_root
    ds = load("shd", root, "train", T=None, dt=10_000.0, cache=False)  # 10 ms bins, no crop
    assert len(ds) == 10 and ds.n_classes == 20 and ds.classes[0] == "english zero"
    with h5py.File(meta["train"]["path"]) as f:
        times, units = f["spikes/times"][3], f["spikes/units"][3]
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.dtype == torch.float32 and x.dim() == 2 and x.shape[1] == 700
        assert y == meta["train"]["labels"][i]
        assert x.sum() == meta["train"]["n_events"][i]  # counts conserved
    x, _ = ds[3]
    # golden: every spike lands at (floor(t / 10 ms), unit) (tonic converts seconds to integer us)
    ref = torch.zeros_like(x)
    steps = np.floor(times.astype(np.float64) * 1e6).astype(np.int64) // 10_000
    np.add.at(ref.numpy(), (steps, units.astype(np.int64)), 1)
    torch.testing.assert_close(x, ref)


def test_shd_default_binning_and_collate(shd_root):
    root, meta = shd_root
    ds = load("shd", root, "test", cache=False)
    assert ds.binning == Binning(T=100, dt=14_000.0, origin="zero")
    loader = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=collate_time_first)
    x, y, lengths = next(iter(loader))
    assert x.shape == (100, 3, 700) and lengths.tolist() == [100] * 3
    assert y.tolist() == meta["test"]["labels"][:3]


def test_shd_downsampled_channels(shd_root):
    root, meta = shd_root
    ds = load("shd", root, "train", T=20, spatial_factor=0.5, cache=False)
    assert ds.binning.dt == 70_000.0  # T alone keeps the default 1.4 s span
    x, _ = ds[0]
    assert x.shape == (20, 350) and x.sum() == meta["train"]["n_events"][0]


def test_cache_written_reused_and_keyed_by_binning(shd_root, tmp_path, monkeypatch):
    root, _ = shd_root
    cache = tmp_path / "cache"
    ds = load("shd", root, "train", T=50, cache=cache)
    first = [ds[i][0] for i in range(len(ds))]
    assert ds.cache.n_cached() == len(ds) and (ds.cache.dir / "key.json").exists()
    assert not list(ds.cache.dir.glob(".*.tmp"))  # no temp files left behind
    # a second dataset with the same binning reads the cache, never the source
    ds2 = load("shd", root, "train", T=50, cache=cache)
    monkeypatch.setattr(type(ds2), "events", lambda self, i: pytest.fail("source read despite cache"))
    for i in range(len(ds2)):
        torch.testing.assert_close(ds2[i][0], first[i])
    monkeypatch.undo()
    # any binning parameter changes the key
    for kw in ({"T": 51}, {"T": 50, "binary": True}, {"T": 50, "spatial_factor": 0.5}, {"T": 50, "dt": 1e4}):
        assert load("shd", root, "train", cache=cache, **kw).cache.dir != ds.cache.dir


def test_corrupt_cache_entry_names_the_file(shd_root, tmp_path):
    root, _ = shd_root
    ds = load("shd", root, "train", T=10, cache=tmp_path)
    ds[0]
    p = ds.cache.path(0)
    good = p.read_bytes()
    p.write_bytes(good[: len(good) - 9])  # truncate
    with pytest.raises(CorruptFileError, match=str(p)):
        ds[0]
    np.save(p, np.arange(10, dtype=np.float64))  # a valid .npy of the wrong dtype
    with pytest.raises(CorruptFileError, match=str(p)):
        ds[0]


def test_missing_dataset_error_names_path_files_and_url(tmp_path):
    with pytest.raises(DatasetNotFoundError) as e:
        load("shd", tmp_path, "train")
    msg = str(e.value)
    assert str(tmp_path / "SHD" / "shd_train.h5") in msg and "shd_train.h5.zip" in msg and "download=True" in msg
    assert isinstance(e.value, UserError) and isinstance(e.value, FileNotFoundError)
    assert not (tmp_path / "SHD").exists()  # nothing downloaded or created
    with pytest.raises(DatasetNotFoundError, match="ibmGestureTrain"):
        load("dvs_gesture", tmp_path, "train")
    with pytest.raises(DatasetNotFoundError, match=r"NMNIST.Test"):
        load("nmnist", tmp_path, "test")
    with pytest.raises(DatasetNotFoundError, match="cifar-10-python.tar.gz"):
        load("cifar10", tmp_path, "train")


def test_truncated_shd_file_names_the_file(shd_root, tmp_path):
    root, meta = shd_root
    (tmp_path / "SHD").mkdir()
    bad = tmp_path / "SHD" / "shd_train.h5"
    data = Path(meta["train"]["path"]).read_bytes()
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(CorruptFileError, match=str(bad)):
        load("shd", tmp_path, "train")


def test_shd_wrong_dtype_names_the_key(tmp_path):
    (tmp_path / "SHD").mkdir()
    path = tmp_path / "SHD" / "shd_test.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("spikes/times", data=np.array(["a", "b"], dtype="S1"))
        f.create_dataset("spikes/units", data=np.zeros(2, np.uint16))
        f.create_dataset("labels", data=np.zeros(2, np.uint16))
        f.create_dataset("extra/keys", data=np.array([b"a"]))
        f.create_dataset("extra/speaker", data=np.zeros(2, np.uint16))
    with pytest.raises(CorruptFileError, match="spikes/times"):
        load("shd", tmp_path, "test")


@pytest.fixture(scope="module")
def dvs_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("dvs")
    return root, write_fake_dvs_gesture(root, n_train=13, n_test=3, seed=2, max_events=800)


def test_dvs_gesture_frames_labels_and_counts(dvs_root):
    root, meta = dvs_root
    ds = load("dvs_gesture", root, "train", cache=False)
    assert len(ds) == 13 and ds.n_classes == 11
    n_by_file = dict(zip(map(str, meta["train"]["files"]), meta["train"]["n_events"]))
    for i in range(len(ds)):
        x, y = ds[i]
        path = ds.source.data[i]
        assert x.shape == (16, 2, 32, 32) and x.dtype == torch.float32
        assert y == int(Path(path).stem)  # label = file name
        assert x.sum() == n_by_file[path]  # T equal bins + downsampling keep every event
    x, y, lengths = collate_time_first([ds[0], ds[1]])
    assert x.shape == (16, 2, 2, 32, 32)


def test_dvs_gesture_variable_length_windows(dvs_root):
    root, meta = dvs_root
    ds = load("dvs_gesture", root, "test", T=None, dt=100_000.0, spatial_factor=1.0, cache=False)
    n_by_file = dict(zip(map(str, meta["test"]["files"]), meta["test"]["n_events"]))
    xs = [ds[i] for i in range(len(ds))]
    for i, (x, _) in enumerate(xs):
        ev, _ = ds.events(i)
        assert x.shape[0] == (ev["t"][-1] - ev["t"][0]) // 100_000 + 1
        assert x.shape[1:] == (2, 128, 128) and x.sum() == n_by_file[ds.source.data[i]]
    x, y, lengths = collate_time_first(xs)
    assert lengths.tolist() == [t.shape[0] for t, _ in xs] and x.shape[0] == max(lengths)


def test_dvs_truncated_npy_names_the_file(dvs_root, tmp_path):
    root, meta = dvs_root
    import shutil

    shutil.copytree(root / "DVSGesture", tmp_path / "DVSGesture")
    victim = tmp_path / "DVSGesture" / "ibmGestureTest" / "user01_fluorescent" / "1.npy"
    victim.write_bytes(victim.read_bytes()[:100])
    ds = load("dvs_gesture", tmp_path, "test", cache=False)
    i = [Path(p).resolve() for p in ds.source.data].index(victim.resolve())
    with pytest.raises(CorruptFileError, match="1.npy"):
        ds[i]


def test_nmnist_through_tonic(tmp_path):
    meta = write_fake_nmnist(tmp_path, n_train=4, n_test=12, seed=3, max_events=200)
    ds = load("nmnist", tmp_path, "test", T=None, dt=10_000.0, cache=False)
    assert len(ds) == 12
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape[1:] == (2, 34, 34)
        assert y == meta["test"]["labels"][i] and x.sum() == meta["test"]["n_events"][i]
    # golden: decode matches what was written (tonic's reader on our bytes)
    ev, _ = ds.events(0)
    assert ev["t"].max() < 300_000 and set(np.unique(ev["p"])) <= {0, 1}
    with pytest.raises(ValueError, match="unknown options"):
        load("nmnist", tmp_path, "test", first_sacade_only=True)
    assert len(load("nmnist", tmp_path, "test", first_saccade_only=True, cache=False)) == 12


def test_cifar_batches_load_as_written(tmp_path):
    meta = write_fake_cifar(tmp_path, n_train=7, n_test=3, seed=4)
    ds = load("cifar10", tmp_path, "train")
    assert len(ds) == 7 and ds.n_classes == 10
    x, y = ds[5]
    expected = torch.as_tensor(meta["train"]["data"][5].reshape(3, 32, 32), dtype=torch.float32) / 255
    torch.testing.assert_close(x, expected)
    assert y == meta["train"]["labels"][5]
    xt, _ = load("cifar10", tmp_path, "train", T=4)[5]  # direct encoding repeats the image
    assert xt.shape == (4, 3, 32, 32) and torch.equal(xt[3], expected)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"\x80\x04garbage")
    with pytest.raises(CorruptFileError, match="cifar-10-batches-py"):
        load("cifar10", tmp_path, "test")


class _RunsCode:
    """Unpickling this calls os.system: what a doctored batch file could do to a reader that trusts pickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("victim", ["data_batch_2", "batches.meta"])
def test_cifar_files_are_read_without_running_code(tmp_path, victim):
    """A batch or meta file that asks the unpickler to call a function is refused as corrupt, naming the file, and
    the function never runs; the data arrays themselves (numpy's reconstruction) still load."""
    import pickle

    write_fake_cifar(tmp_path, n_train=7, n_test=3, seed=4)
    marker = tmp_path / "ran"
    path = tmp_path / "cifar-10-batches-py" / victim
    with open(path, "wb") as f:
        pickle.dump({"data": _RunsCode(marker), "labels": [0], "label_names": _RunsCode(marker)}, f)
    with pytest.raises(CorruptFileError, match=f"{victim}.*asks to run posix.system"):
        load("cifar10", tmp_path, "train")
    assert not marker.exists()
    if victim == "batches.meta":  # every split reads the class names
        with pytest.raises(CorruptFileError, match="batches.meta"):
            load("cifar10", tmp_path, "test")
    else:  # the other split's files are untouched
        assert len(load("cifar10", tmp_path, "test")) == 3
    assert not marker.exists()


def test_cifar100_layout(tmp_path):
    meta = write_fake_cifar(tmp_path, n_train=5, n_test=2, seed=5, name="cifar100")
    ds = load("cifar100", tmp_path, "test")
    assert len(ds) == 2 and ds.n_classes == 100 and ds[1][1] == meta["test"]["labels"][1]


def test_digits_offline_encoded_deterministic():
    from neurosynth.datasets.digits import load_digits_split

    train, test = load("digits", split="train", T=8), load("digits", split="test", T=8)
    assert len(train) == 1347 and len(test) == 450
    x, y = train[0]
    assert x.shape == (8, 64) and x.dtype == torch.float32 and set(x.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(train[0][0], x)  # same sample on every access
    assert not torch.equal(load("digits", split="train", T=8, seed=1)[0][0], x)
    xtr, ytr, xte, yte = load_digits_split()
    assert y == int(ytr[0]) and test[0][1] == int(yte[0])
    static, _ = load("digits", split="test", T=None)[0]
    torch.testing.assert_close(static, xte[0])
    with pytest.raises(ValueError, match="unknown encoder"):
        load("digits", T=4, encoding="nope")


def test_digits_one_split_everywhere():
    """datasets.load("digits"), load_digits_split and digits_loaders (any training seed) share one split."""
    from neurosynth.datasets.digits import digits_loaders, load_digits_split

    xtr, ytr, xte, yte = load_digits_split()
    assert len(xte) == 450 and len(xtr) == 1347
    assert torch.bincount(yte).min() >= 43 and torch.bincount(yte).max() <= 46  # stratified: 25% of each class
    # no image in both parts
    tr_rows = {tuple(r.tolist()) for r in xtr}
    assert sum(tuple(r.tolist()) in tr_rows for r in xte) < 10  # sklearn digits has a few exact duplicates
    for name_split, (x, y) in (("train", (xtr, ytr)), ("test", (xte, yte))):
        ds = load("digits", split=name_split, T=None)
        assert torch.equal(ds.images, x) and torch.equal(ds.targets, y)
        img = load("digits", split=name_split, T=None, flatten=False)
        assert torch.equal(img.images.reshape(len(x), 64), x)
    for seed in (0, 3):
        train, test = digits_loaders(T=4, seed=seed)
        assert torch.equal(test.x, xte) and torch.equal(train.x, xtr) and torch.equal(test.y, yte)


def test_digits_evaluation_is_deterministic():
    """The test loader encodes the same spikes on every pass; the training loader draws fresh noise."""
    from neurosynth import LIF, SNN, evaluate
    from neurosynth.datasets.digits import digits_loaders

    train, test = digits_loaders(T=4, seed=0)
    first = [s for s, _ in test]
    second = [s for s, _ in test]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    a, b = next(iter(train))[0], next(iter(train))[0]
    assert not torch.equal(a, b)
    torch.manual_seed(0)
    net = SNN(torch.nn.Linear(64, 16), LIF(), torch.nn.Linear(16, 10), LIF())
    accs = {evaluate(net, test)["accuracy"] for _ in range(3)}
    assert len(accs) == 1


def test_unknown_dataset_and_split():
    with pytest.raises(ValueError, match="registered datasets: .*dvs_gesture"):
        load("mnist-dvs", "/tmp")
    assert set(DATASETS.names()) >= {"shd", "ssc", "dvs_gesture", "nmnist", "cifar10_dvs", "cifar10", "cifar100",
                                     "digits"}
    with pytest.raises(ValueError, match="splits"):
        load("shd", "/tmp", "valid")


def test_ssc_layout(tmp_path):
    meta = write_fake_shd(tmp_path, n_train=3, n_test=2, seed=6, prefix="ssc", n_classes=35)
    ds = load("ssc", tmp_path, "valid", T=10, cache=False)
    assert len(ds) == 2 and ds[1][1] == meta["valid"]["labels"][1] and ds[0][0].shape == (10, 700)


def test_cifar10_dvs_needs_aedat_or_files(tmp_path):
    with pytest.raises(DatasetNotFoundError) as e:
        load("cifar10_dvs", tmp_path, "train")
    if importlib.util.find_spec("aedat") is None:
        assert "pip install aedat" in str(e.value)
    else:  # pragma: no cover
        assert "CIFAR10DVS" in str(e.value)


def test_interrupted_cache_write_leaves_nothing(shd_root, tmp_path, monkeypatch):
    root, _ = shd_root
    ds = load("shd", root, "train", T=10, cache=tmp_path)

    def boom(f, arr, **kw):
        f.write(b"\x93NUMPY partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        ds[2]
    assert not ds.cache.path(2).exists()
    assert [p.name for p in ds.cache.dir.iterdir()] == ["key.json"]  # no temp file left
    monkeypatch.undo()
    x, _ = ds[2]  # the next access rebuilds the entry
    assert ds.cache.path(2).exists() and torch.equal(ds[2][0], x)


def test_download_only_when_asked(tmp_path, monkeypatch):
    """download=True hands the split to tonic's own class (here a stand-in writing the fixture files)."""
    from neurosynth.datasets import events

    calls = []

    def fake_download(spec, root, kwargs):
        calls.append((spec.tonic_class, Path(root), kwargs))
        write_fake_shd(root, n_train=3, n_test=2, seed=0)

    monkeypatch.setattr(events, "_tonic_download", fake_download)
    with pytest.raises(DatasetNotFoundError):
        load("shd", tmp_path, "train")
    assert calls == []
    ds = load("shd", tmp_path, "train", download=True, T=5)
    assert calls == [("SHD", tmp_path, {"train": True})] and len(ds) == 3
    load("shd", tmp_path, "test", download=True)  # already present: no second download
    assert len(calls) == 1


def test_nmnist_truncated_and_dvs_wrong_dtype_name_the_file(tmp_path):
    meta = write_fake_nmnist(tmp_path, n_train=2, n_test=2, seed=7, max_events=50)
    victim = meta["test"]["files"][1]
    victim.write_bytes(victim.read_bytes()[:-2])  # cut inside the last 5-byte event
    ds = load("nmnist", tmp_path, "test", cache=False)
    with pytest.raises(CorruptFileError, match=victim.name):
        ds[1]
    write_fake_dvs_gesture(tmp_path, n_train=1, n_test=1, seed=7, max_events=50)
    bad = tmp_path / "DVSGesture" / "ibmGestureTest" / "user01_fluorescent" / "0.npy"
    np.save(bad, np.array(["x", "y", "p", "t"]))  # a valid .npy of the wrong dtype and shape
    with pytest.raises(CorruptFileError, match="0.npy"):
        load("dvs_gesture", tmp_path, "test", cache=False)[0]


def test_ssc_class_names_come_from_the_file(tmp_path):
    write_fake_shd(tmp_path, n_train=2, n_test=1, seed=8, prefix="ssc", n_classes=35)
    ds = load("ssc", tmp_path, "train", cache=False)
    assert ds.n_classes == 35 and ds.classes[:2] == ["word0", "word1"]


def test_datasets_pickle_for_worker_processes(shd_root, dvs_root):
    import pickle

    for ds in (load("shd", shd_root[0], "train", T=10, cache=False),
               load("dvs_gesture", dvs_root[0], "test", cache=False)):
        clone = pickle.loads(pickle.dumps(ds))
        assert len(clone) == len(ds) and torch.equal(clone[1][0], ds[1][0])
