"""Fashion-MNIST (Xiao et al. 2017): 70,000 28x28 grey images of 10 clothing classes, read from the
original IDX files.

Where the files are looked for, in order:

1. ``root`` (the four files directly in it, or in torchvision's ``root/FashionMNIST/raw/``, or in
   ``root/fashion-mnist/``);
2. with ``root=None``: the Debian/Ubuntu package folder ``/usr/share/datasets/fashion-mnist/``
   (``apt-get install -y dataset-fashion-mnist``), then torchvision's layout under the user data folder
   ``$NEUROSYNTH_DATA`` (default ``~/.cache/neurosynth``);
3. ``download=True``: torchvision's ``FashionMNIST`` downloader (md5-checked) into ``root`` (or the user
   data folder).

Each IDX file may be gzip-compressed (``.gz``) or not. The files are decoded once per process into
``uint8`` tensors (kept in a small in-memory cache keyed on the file path, size and mtime), so loading
both splits a second time costs nothing and a training epoch is bounded by compute. Samples are
``[1, 28, 28]`` float images in [0, 1] (``flatten=True``: ``[784]``); with ``T`` they are encoded over
``T`` steps (``encoding="direct"`` repeats the image as an input current, ``rate``, ``latency``).
:meth:`EncodedImages.batches` yields whole ``[T, B, ...]`` batches encoded in one vectorised call,
which is much faster than a ``DataLoader`` over single samples.

A truncated or foreign IDX file raises :class:`CorruptFileError` naming it.
"""

from __future__ import annotations

import gzip
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import torch

from .errors import CorruptFileError, DatasetNotFoundError
from .static import EncodedImages

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
INSTALL_COMMAND = f"sudo apt-get update && sudo apt-get install -y {DEBIAN_PACKAGE}"
URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# "fit" / "val": the official training set split 50,000 / 10,000 (the last 10,000 are the validation set),
# for model selection (architecture search) without touching the test set.
SPLITS = ("train", "test", "fit", "val")
N_VAL = 10_000

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def user_data_dir() -> Path:
    return Path(os.environ.get("NEUROSYNTH_DATA") or Path.home() / ".cache" / "neurosynth").expanduser()


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (``.gz`` or plain) into a numpy array; :class:`CorruptFileError` if it is not a
    complete IDX file."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise CorruptFileError(
            f"{path} could not be read ({type(e).__name__}: {e}); it is truncated or corrupt: delete it and "
            f"reinstall ({INSTALL_COMMAND}) or download it again ({URL})"
        ) from e
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _IDX_TYPES or not 1 <= data[3] <= 4:
        raise CorruptFileError(f"{path} is not an IDX file (header {data[:4].hex() or 'empty'}); expected the "
                               f"Fashion-MNIST files from {URL}")
    dtype, ndim = np.dtype(_IDX_TYPES[data[2]]), data[3]
    head = 4 + 4 * ndim
    if len(data) < head:
        raise CorruptFileError(f"{path}: IDX header truncated ({len(data)} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:head])
    n = int(np.prod(dims)) * dtype.itemsize
    if len(data) != head + n:
        raise CorruptFileError(
            f"{path}: IDX header says shape {dims} ({head + n} bytes) but the file holds {len(data)} bytes; it is "
            f"truncated or corrupt: delete it and reinstall ({INSTALL_COMMAND}) or download again ({URL})"
        )
    return np.frombuffer(data, dtype=dtype, offset=head).reshape(dims)


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` (uint8) as an IDX file (gzip-compressed when ``path`` ends in ``.gz``), atomically."""
    from neurosynth.io import atomic_path

    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"write_idx writes uint8 arrays; got {array.dtype}")
    blob = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".gz":
            # no file name and mtime=0 in the gzip header: the same array gives the same bytes on every run
            with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
                f.write(blob)
        else:
            tmp.write_bytes(blob)
    return path


def _find_in(folder: Path, split: str) -> tuple[Path, Path] | None:
    out = []
    for stem in FILES[split]:
        for cand in (folder / f"{stem}.gz", folder / stem):
            if cand.is_file():
                out.append(cand)
                break
        else:
            return None
    return out[0], out[1]


def candidate_folders(root) -> list[Path]:
    """The folders searched, in order, for ``root`` (``None``: the Debian folder and the user data folder)."""
    if root is not None:
        base = Path(os.path.expanduser(str(root)))
        return [base, base / "FashionMNIST" / "raw", base / "fashion-mnist"]
    udir = user_data_dir()
    return [SYSTEM_DIR, udir / "FashionMNIST" / "raw"]


def locate(root, split: str) -> tuple[Path, Path] | None:
    file_split = "train" if split in ("fit", "val") else split
    for folder in candidate_folders(root):
        found = _find_in(folder, file_split)
        if found:
            return found
    return None


def missing_error(root, split: str) -> DatasetNotFoundError:
    file_split = "train" if split in ("fit", "val") else split
    names = " and ".join(f"{s}[.gz]" for s in FILES[file_split])
    looked = ", ".join(str(p) for p in candidate_folders(root))
    dl_root = repr(str(root)) if root is not None else "None"
    return DatasetNotFoundError(
        f"dataset 'fashion_mnist' split '{split}' not found: looked for {names} in {looked}. Get it in one of "
        f"three ways: (1) install the Debian/Ubuntu package: {INSTALL_COMMAND} (puts the files in "
        f"{SYSTEM_DIR}, used when root=None); (2) download the four IDX files from {URL} into a folder and "
        f"pass it as root; (3) neurosynth.datasets.load('fashion_mnist', {dl_root}, '{split}', download=True) "
        f"(torchvision's downloader{'' if root is not None else f', into {user_data_dir()}'})."
    )


_CACHE: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
_LOCK = threading.Lock()


def _stat_key(p: Path) -> tuple:
    st = p.stat()
    return (str(p.resolve()), st.st_size, st.st_mtime_ns)


def read_split_files(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode (once per process) an image/label IDX pair into ``uint8 [N, 28, 28]`` and ``int64 [N]``."""
    key = (_stat_key(images_path), _stat_key(labels_path))
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise CorruptFileError(f"{images_path}: images of dtype {images.dtype} and shape {images.shape}; "
                               "expected uint8 [N, 28, 28]")
    if labels.dtype != np.uint8 or labels.ndim != 1 or len(labels) != len(images):
        raise CorruptFileError(f"{labels_path}: labels of dtype {labels.dtype} and shape {labels.shape}; expected "
                               f"uint8 [{len(images)}] to match {images_path}")
    if labels.size and int(labels.max()) >= len(CLASSES):
        raise CorruptFileError(f"{labels_path}: label {int(labels.max())} is out of range 0..{len(CLASSES) - 1}")
    out = (torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)))
    with _LOCK:
        if len(_CACHE) > 8:
            _CACHE.clear()
        _CACHE[key] = out
    return out


def _download(root, split: str) -> None:
    try:
        import torchvision.datasets as tvd
    except ImportError as e:  # pragma: no cover
        from neurosynth.errors import MissingExtraError

        raise MissingExtraError("torchvision", "data", "downloading 'fashion_mnist'") from e
    target = Path(os.path.expanduser(str(root))) if root is not None else user_data_dir()
    target.mkdir(parents=True, exist_ok=True)
    tvd.FashionMNIST(str(target), train=split != "test", download=True)


def load_fashion_mnist(root=None, split: str = "train", *, T: int | None = None, encoding: str = "direct",
                       seed: int = 0, flatten: bool = False, limit: int | None = None, download: bool = False,
                       cache=None, **encoder_kwargs) -> EncodedImages:
    """Fashion-MNIST ``split`` (``train`` 60,000, ``test`` 10,000, ``fit`` = first 50,000 of train, ``val`` =
    last 10,000 of train) as :class:`EncodedImages`. ``limit``: keep only the first ``limit`` images."""
    if split not in SPLITS:
        raise ValueError(f"dataset 'fashion_mnist' has splits {list(SPLITS)}, not '{split}'")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit must be a positive number of images, got {limit!r}")
    found = locate(root, split)
    if found is None and download:
        _download(root, split)
        found = locate(root, split)
    if found is None:
        raise missing_error(root, split)
    images, labels = read_split_files(*found)
    if split in ("fit", "val"):
        if len(images) <= N_VAL:
            raise CorruptFileError(f"{found[0]} holds {len(images)} training images; the fit/val split needs more "
                                   f"than {N_VAL} (the full file has 60,000)")
        cut = len(images) - N_VAL
        sl = slice(0, cut) if split == "fit" else slice(cut, None)
        images, labels = images[sl], labels[sl]
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    images = images.reshape(len(images), 784) if flatten else images.unsqueeze(1)
    ds = EncodedImages("fashion_mnist", split, images, labels, list(CLASSES), T, encoding, seed, encoder_kwargs)
    ds.files = found
    return ds
