"""Tiny fake datasets in the exact on-disk layouts the real ones use, for tests and example smoke runs.

Each writer takes ``(root, n_train, n_test, seed)``, writes under ``root`` exactly where
``neurosynth.datasets.load(name, root, ...)`` (i.e. tonic / torchvision) looks, and returns a dict
``{split: {"path": ..., "labels": [...], "n_events": [...]}}`` describing what it wrote. Randomness comes from
``numpy.random.default_rng(seed)``; the same seed writes the same bytes.

* SHD / SSC: ``root/SHD/shd_{split}.h5`` (``spikes/times`` variable-length float32 seconds,
  ``spikes/units`` variable-length uint16 channel ids, ``labels`` uint16, ``extra/keys``,
  ``extra/speaker``, ``extra/meta_info/{age,gender,body_height}``).
* DVS128 Gesture (tonic's preprocessed release): ``root/DVSGesture/ibmGesture{Train,Test}/userNN_<lighting>/
  <label>.npy``, each an ``[N, 4]`` array of ``x, y, p, t`` with ``t`` in milliseconds.
* N-MNIST: ``root/NMNIST/{Train,Test}/<digit>/<id>.bin`` in the 40-bit event format (x, y, p|t[22:16],
  t[15:8], t[7:0]; t in microseconds).
* CIFAR-10/100: ``root/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}`` (or
  ``root/cifar-100-python/{train,test,meta}``) as the pickled dicts torchvision reads.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

SHD_KEYS = [f"english {w}" for w in "zero one two three four five six seven eight nine".split()] + [
    f"german {w}" for w in "null eins zwei drei vier fuenf sechs sieben acht neun".split()
]


def write_fake_shd(root, n_train: int = 8, n_test: int = 4, seed: int = 0, *, prefix: str = "shd",
                   n_channels: int = 700, n_classes: int = 20, max_events: int = 300,
                   duration_s: float = 1.0, informative: bool = False) -> dict:
    """SHD-layout HDF5 files (``prefix="ssc"`` with splits train/valid/test writes SSC's).

    ``informative=True`` makes the label learnable: 80% of a sample's spikes fall in the channel band
    ``[label * n_channels // n_classes, (label + 1) * n_channels // n_classes)``.
    """
    import h5py

    rng = np.random.default_rng(seed)
    folder = Path(root) / prefix.upper()
    folder.mkdir(parents=True, exist_ok=True)
    splits = {"train": n_train, "test": n_test}
    if prefix == "ssc":
        splits = {"train": n_train, "valid": n_test, "test": n_test}
    out = {}
    for split, n in splits.items():
        path = folder / f"{prefix}_{split}.h5"
        times, units, n_events = [], [], []
        labels = (np.arange(n) % n_classes).astype(np.uint16)
        rng.shuffle(labels)
        for j in range(n):
            k = int(rng.integers(1, max_events + 1))
            times.append(np.sort(rng.uniform(0.0, duration_s, k)).astype(np.float32))
            u = rng.integers(0, n_channels, k)
            if informative:
                band = n_channels // n_classes
                inside = rng.random(k) < 0.8
                u[inside] = int(labels[j]) * band + rng.integers(0, band, int(inside.sum()))
            units.append(u.astype(np.uint16))
            n_events.append(k)
        with h5py.File(path, "w") as f:
            spikes = f.create_group("spikes")
            spikes.create_dataset("times", data=_vlen(times, np.float32), dtype=h5py.vlen_dtype(np.float32))
            spikes.create_dataset("units", data=_vlen(units, np.uint16), dtype=h5py.vlen_dtype(np.uint16))
            f.create_dataset("labels", data=labels)
            extra = f.create_group("extra")
            keys = SHD_KEYS[:n_classes] if n_classes <= 20 else [f"word{i}" for i in range(n_classes)]
            extra.create_dataset("keys", data=np.array([k.encode() for k in keys]))
            extra.create_dataset("speaker", data=rng.integers(0, 12, n).astype(np.uint16))
            meta = extra.create_group("meta_info")
            meta.create_dataset("age", data=rng.integers(20, 60, 12).astype(np.uint16))
            meta.create_dataset("gender", data=np.array([b"female", b"male"] * 6))
            meta.create_dataset("body_height", data=rng.uniform(150, 200, 12).astype(np.float32))
        out[split] = {"path": path, "labels": labels.tolist(), "n_events": n_events}
    return out


def _vlen(arrays, dtype):
    arr = np.empty(len(arrays), dtype=object)
    for i, a in enumerate(arrays):
        arr[i] = np.asarray(a, dtype=dtype)
    return arr


def write_fake_dvs_gesture(root, n_train: int = 11, n_test: int = 4, seed: int = 0, *, max_events: int = 2000,
                           duration_ms: int = 1500) -> dict:
    """DVS128-Gesture files as tonic's preprocessed release lays them out (one file per label per user)."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n, folder in (("train", n_train, "ibmGestureTrain"), ("test", n_test, "ibmGestureTest")):
        base = Path(root) / "DVSGesture" / folder
        paths, labels, n_events = [], [], []
        for i in range(n):
            user, label = 1 + i // 11, i % 11
            d = base / f"user{user:02d}_fluorescent"
            d.mkdir(parents=True, exist_ok=True)
            k = int(rng.integers(1, max_events + 1))
            ev = np.empty((k, 4), dtype=np.int64)
            ev[:, 0] = rng.integers(0, 128, k)
            ev[:, 1] = rng.integers(0, 128, k)
            ev[:, 2] = rng.integers(0, 2, k)
            ev[:, 3] = np.sort(rng.integers(0, duration_ms, k))
            path = d / f"{label}.npy"
            np.save(path, ev)
            paths.append(path)
            labels.append(label)
            n_events.append(k)
        out[split] = {"path": base, "files": paths, "labels": labels, "n_events": n_events}
    return out


def encode_nmnist_events(x, y, p, t_us) -> bytes:
    """The 40-bit-per-event N-MNIST encoding (used only to write fixtures)."""
    x, y, p, t = (np.asarray(v, dtype=np.int64) for v in (x, y, p, t_us))
    if np.any(t >= 2**23) or np.any(y == 240):
        raise ValueError("N-MNIST fixture: t must be < 2**23 us and y != 240")
    raw = np.empty((len(x), 5), dtype=np.uint8)
    raw[:, 0], raw[:, 1] = x, y
    raw[:, 2] = (p << 7) | ((t >> 16) & 127)
    raw[:, 3], raw[:, 4] = (t >> 8) & 255, t & 255
    return raw.tobytes()


def write_fake_nmnist(root, n_train: int = 10, n_test: int = 5, seed: int = 0, *, max_events: int = 500,
                      duration_us: int = 300_000) -> dict:
    """N-MNIST ``.bin`` files under ``root/NMNIST/{Train,Test}/<digit>/``."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n, folder in (("train", n_train, "Train"), ("test", n_test, "Test")):
        base = Path(root) / "NMNIST" / folder
        files, labels, n_events = [], [], []
        for i in range(n):
            label = i % 10
            d = base / str(label)
            d.mkdir(parents=True, exist_ok=True)
            k = int(rng.integers(1, max_events + 1))
            t = np.sort(rng.integers(0, duration_us, k))
            data = encode_nmnist_events(rng.integers(0, 34, k), rng.integers(0, 34, k), rng.integers(0, 2, k), t)
            path = d / f"{i:05d}.bin"
            path.write_bytes(data)
            files.append(path)
            labels.append(label)
            n_events.append(k)
        out[split] = {"path": base, "files": files, "labels": labels, "n_events": n_events}
    # tonic walks the folders sorted, so the dataset order is (digit, file name)
    for split in out:
        order = sorted(range(len(out[split]["files"])), key=lambda j: (out[split]["labels"][j], out[split]["files"][j].name))
        for key in ("files", "labels", "n_events"):
            out[split][key] = [out[split][key][j] for j in order]
    return out


def write_fake_cifar(root, n_train: int = 10, n_test: int = 5, seed: int = 0, *, name: str = "cifar10") -> dict:
    """CIFAR batch files as torchvision reads them (tiny: ``n_train`` images spread over the batches)."""
    rng = np.random.default_rng(seed)
    n_classes = 10 if name == "cifar10" else 100
    if name == "cifar10":
        folder = Path(root) / "cifar-10-batches-py"
        train_files = [f"data_batch_{i}" for i in range(1, 6)]
        test_files, meta, meta_key, label_key = ["test_batch"], "batches.meta", "label_names", "labels"
    else:
        folder = Path(root) / "cifar-100-python"
        train_files, test_files, meta, meta_key, label_key = ["train"], ["test"], "meta", "fine_label_names", "fine_labels"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n, files in (("train", n_train, train_files), ("test", n_test, test_files)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, n_classes, n)]
        chunks = np.array_split(np.arange(n), len(files))
        for fname, idx in zip(files, chunks):
            with open(folder / fname, "wb") as f:
                pickle.dump({"data": data[idx], label_key: [labels[i] for i in idx]}, f)
        out[split] = {"path": folder, "labels": labels, "data": data}
    with open(folder / meta, "wb") as f:
        pickle.dump({meta_key: [f"class{i}" for i in range(n_classes)]}, f)
    return out


def write_fake_fashion_mnist(root, n_train: int = 12, n_test: int = 6, seed: int = 0, *, layout: str = "flat",
                             gz: bool = True, informative: bool = False) -> dict:
    """Fashion-MNIST IDX files (``train-images-idx3-ubyte[.gz]``, ...) with random uint8 images.

    ``layout="flat"``: the four files directly in ``root`` (as the Debian package installs them);
    ``"torchvision"``: in ``root/FashionMNIST/raw/``. ``informative=True`` draws a bright square whose
    position is set by the label (learnable).
    """
    from .fashion import FILES, write_idx

    rng = np.random.default_rng(seed)
    folder = Path(root) / "FashionMNIST" / "raw" if layout == "torchvision" else Path(root)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        if informative:
            images //= 4
            for i, lab in enumerate(labels):
                r, c = divmod(int(lab), 4)
                images[i, 2 + 7 * r: 7 + 7 * r, 2 + 6 * c: 7 + 6 * c] = 255
        ext = ".gz" if gz else ""
        img_path = write_idx(folder / (FILES[split][0] + ext), images)
        lab_path = write_idx(folder / (FILES[split][1] + ext), labels)
        out[split] = {"path": img_path, "labels_path": lab_path, "labels": labels.tolist(), "images": images}
    return out
