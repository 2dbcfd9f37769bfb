"""Static-image datasets, optionally spike-encoded over ``T`` steps: CIFAR-10/100 (torchvision) and the
scikit-learn ``digits`` set (8x8, 1,797 images, bundled with scikit-learn: no download).

Without ``T`` a sample is the image in ``[0, 1]`` (``[C, H, W]``, or ``[64]`` for flattened digits). With
``T`` it is ``[T, ...]``: ``encoding="direct"`` repeats the image every step, and any encoder registered
in ``neurosynth.encoding.ENCODERS`` (``rate``, ``latency``) spike-encodes it. The random encoders draw
from a ``torch.Generator`` seeded with ``(seed, index)``, so ``ds[i]`` is the same on every call and in
every worker process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import CorruptFileError, DatasetNotFoundError

CIFAR_URLS = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
}


def encode_static(x: torch.Tensor, T: int | None, encoding: str, generator: torch.Generator | None,
                  **kw) -> torch.Tensor:
    """``x`` in [0, 1] -> ``[T, *x.shape]`` (or ``x`` itself when ``T`` is None)."""
    if T is None:
        return x
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive number of time steps, got {T!r}")
    if encoding in ("direct", "current"):
        return x.unsqueeze(0).expand(T, *x.shape).clone()
    from neurosynth.encoding import encode

    return encode(encoding, x, T, generator=generator, **kw).to(torch.float32)


class EncodedImages(torch.utils.data.Dataset):
    """Images ``[N, ...]`` in [0, 1] with labels, spike-encoded on access."""

    def __init__(self, name: str, split: str, images: torch.Tensor, labels: torch.Tensor, classes: list[str],
                 T: int | None = None, encoding: str = "rate", seed: int = 0, encoder_kwargs: dict | None = None):
        if encoding == "current":  # the digits loaders' name for the direct (analog current) input
            encoding = "direct"
        if encoding != "direct":
            from neurosynth.encoding import ENCODERS

            ENCODERS.get(encoding)  # unknown -> ValueError listing the encoders
        self.name, self.split, self.images, self.targets = name, split, images, labels
        self.classes, self.T, self.encoding, self.seed = list(classes), T, encoding, int(seed)
        self.encoder_kwargs = dict(encoder_kwargs or {})
        self.step_shape = tuple(images.shape[1:])

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        index = int(index)
        x = _as_unit(self.images[index])
        g = None
        if self.T is not None and self.encoding != "direct":
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        return encode_static(x, self.T, self.encoding, g, **self.encoder_kwargs), int(self.targets[index])

    def labels(self) -> list[int]:
        return [int(v) for v in self.targets]

    def batches(self, batch_size: int = 128, shuffle: bool = True, seed: int | None = None, T: int | None = None,
                drop_last: bool = False, device=None) -> ImageBatches:
        """A re-iterable loader of ``(x [T, B, ...], y [B])`` batches, encoded in one vectorised call per batch
        (much faster than a ``DataLoader`` over single samples). ``T`` defaults to the dataset's ``T`` (``None``:
        ``x`` is ``[B, ...]``). Shuffling and the random encoders draw from one generator seeded with ``seed``
        (default: the dataset's), so the sequence of batches is reproducible."""
        return ImageBatches(self, batch_size, shuffle, self.seed if seed is None else int(seed),
                            self.T if T is None else T, drop_last, device)


def _as_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 images (stored compactly) -> float32 in [0, 1]; float images pass through."""
    return x.to(torch.float32).div_(255.0) if x.dtype == torch.uint8 else x


class ImageBatches:
    """Iterate an :class:`EncodedImages` in ``[T, B, ...]`` batches (see :meth:`EncodedImages.batches`)."""

    def __init__(self, ds: EncodedImages, batch_size: int, shuffle: bool, seed: int, T: int | None,
                 drop_last: bool = False, device=None):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if T is not None and (not isinstance(T, int) or T < 1):
            raise ValueError(f"T must be a positive number of time steps, got {T!r}")
        self.ds, self.batch_size, self.shuffle, self.T, self.drop_last = ds, batch_size, shuffle, T, drop_last
        self.device = device
        self._gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.ds)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.ds)
        idx = torch.randperm(n, generator=self._gen) if self.shuffle else torch.arange(n)
        stop = n - n % self.batch_size if self.drop_last else n
        for i in range(0, stop, self.batch_size):
            j = idx[i:i + self.batch_size]
            xb = self.ds.images[j]
            if self.device is not None:
                xb = xb.to(self.device, non_blocking=True)
            xb = _as_unit(xb)
            if self.T is not None:
                if self.ds.encoding == "direct":
                    xb = xb.unsqueeze(0).expand(self.T, *xb.shape)
                else:
                    from neurosynth.encoding import encode

                    gen = self._gen if xb.device.type == "cpu" else None
                    xb = encode(self.ds.encoding, xb, self.T, generator=gen, **self.ds.encoder_kwargs)
                    xb = xb.to(torch.float32)
            yb = self.ds.targets[j]
            yield xb, (yb.to(self.device) if self.device is not None else yb)


def _check_limit(limit) -> None:
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit must be a positive number of images, got {limit!r}")


def load_digits(root=None, split: str = "train", *, T: int | None = 20, encoding: str = "rate", seed: int = 0,
                flatten: bool = True, limit: int | None = None, download: bool = False, cache=None,
                **encoder_kwargs) -> EncodedImages:
    """scikit-learn ``load_digits`` (offline) on the project's one split (see
    :func:`neurosynth.datasets.digits.load_digits_split`): stratified, 1,347 train / 450 test images, fixed
    and independent of ``seed`` (which seeds the spike encoding only). Pixels are scaled from 0..16 to [0, 1].
    ``limit``: keep only the first ``limit`` images."""
    from .digits import load_digits_split

    if split not in ("train", "test"):
        raise ValueError(f"dataset 'digits' has splits ['train', 'test'], not '{split}'")
    _check_limit(limit)
    xtr, ytr, xte, yte = load_digits_split(image=not flatten)
    images, labels = (xte, yte) if split == "test" else (xtr, ytr)
    images, labels = images[:limit], labels[:limit]
    return EncodedImages("digits", split, images, labels, [str(i) for i in range(10)], T, encoding, seed,
                         encoder_kwargs)


#: the only globals a CIFAR batch file may name: numpy's array reconstruction (the ``data`` array) and the codec
#: Python 3 uses to pickle bytes at protocol 2. Anything else would run code from a data file.
_CIFAR_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                  ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


def read_cifar_batch(path) -> dict:
    """One CIFAR "python version" batch or meta file (a pickled dict of an uint8 array, lists and strings), read
    without running code: an unpickler that refuses every global but numpy's array reconstruction. torchvision's
    CIFAR classes call ``pickle.load`` on the files, which would run whatever a doctored file asks for."""
    import pickle

    class _DataOnly(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) in _CIFAR_GLOBALS:
                return super().find_class(module, name)
            raise pickle.UnpicklingError(f"the file asks to run {module}.{name}; a CIFAR batch holds only an array, "
                                         "lists and strings, and loading never executes code")

    with open(path, "rb") as f:
        data = _DataOnly(f, encoding="latin1").load()
    if not isinstance(data, dict):
        raise pickle.UnpicklingError(f"expected a dict of arrays and lists, found {type(data).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in data.items()}


def _read_cifar(name: str, folder: Path, files: list[str], meta_file: str, meta_key: str):
    """(images uint8 [N, 32, 32, 3], labels, class names) from the batch files; a damaged file is a
    :class:`CorruptFileError` naming it."""
    label_key = "labels" if name == "cifar10" else "fine_labels"

    def read(fname: str, parse):
        path = folder / fname
        try:
            return parse(read_cifar_batch(path))
        except Exception as e:
            raise CorruptFileError(
                f"dataset '{name}': could not read {path} ({type(e).__name__}: {e}); it is truncated, corrupt or "
                f"not a CIFAR batch: delete {folder} and download again ({CIFAR_URLS[name]})"
            ) from e

    def batch(d: dict):
        data = d["data"]
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise ValueError(f"'data' is {type(data).__name__} {getattr(data, 'dtype', '')} "
                             f"{getattr(data, 'shape', '')}; expected uint8 [N, 3072]")
        ys = [int(v) for v in d[label_key]]
        if len(ys) != len(data):
            raise ValueError(f"{len(data)} images but {len(ys)} labels")
        return data, ys

    batches = [read(f, batch) for f in files]
    classes = read(meta_file, lambda d: [str(c) for c in d[meta_key]])
    images = np.concatenate([data for data, _ in batches]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, [y for _, ys in batches for y in ys], classes


def load_cifar(name: str, root, split: str = "train", *, T: int | None = None, encoding: str = "direct",
               seed: int = 0, flatten: bool = False, limit: int | None = None, download: bool = False, cache=None,
               **encoder_kwargs) -> EncodedImages:
    """CIFAR-10/100 (torchvision downloads them; :func:`read_cifar_batch` reads them without running code);
    ``[3, 32, 32]`` images in [0, 1] (or ``[T, 3, 32, 32]``; ``flatten``: ``[3072]``). ``limit``: keep only the
    first ``limit`` images."""
    try:
        import torchvision.datasets as tvd
    except ImportError as e:  # pragma: no cover
        from neurosynth.errors import MissingExtraError

        raise MissingExtraError("torchvision", "data", f"dataset '{name}'") from e
    if split not in ("train", "test"):
        raise ValueError(f"dataset '{name}' has splits ['train', 'test'], not '{split}'")
    _check_limit(limit)
    base = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
    folder = Path(root) / base.base_folder
    files = [f for f, _ in (base.train_list if split == "train" else base.test_list)] + [base.meta["filename"]]
    missing = [f for f in files if not (folder / f).is_file()]
    if missing and download:  # the archive only (checked against its MD5): torchvision's class would unpickle it
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(base.url, str(root), filename=base.filename, md5=base.tgz_md5)
        missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"dataset '{name}' split '{split}' not found: expected {folder} containing {', '.join(files)} "
            f"(missing: {', '.join(missing)}). Get it with neurosynth.datasets.load('{name}', '{root}', "
            f"'{split}', download=True) or download {CIFAR_URLS[name]} and extract it into {root}."
        )
    data, targets, classes = _read_cifar(name, folder, files[:-1], base.meta["filename"], base.meta["key"])
    images = torch.from_numpy(data[:limit]).permute(0, 3, 1, 2).to(torch.float32) / 255.0
    labels = torch.as_tensor(targets, dtype=torch.int64)[:limit]
    if flatten:
        images = images.reshape(len(images), -1)
    return EncodedImages(name, split, images, labels, classes, T, encoding, seed, encoder_kwargs)
