"""Image data for BioNAS: digits (offline, sklearn, 1x8x8), Fashion-MNIST (IDX files, 1x28x28) and CIFAR-10
(only when on disk).

Splits: ``train`` is halved into ``search_train`` / ``search_val`` for the bilevel search (DARTS'
``train_portion = 0.5``); derived models train on ``train`` and report ``test``. Images stay in [0, 1]
(no normalisation layer), which is what the attacks expect.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neurosynth.errors import UserError

DATASET_NAMES = ("digits", "fashion_mnist", "cifar10")


@dataclass
class ImageData:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> list[int]:
        return list(self.x_train.shape[1:])

    def search_split(self, generator: torch.Generator | None = None):
        """``(x_a, y_a, x_b, y_b)``: the training set halved at random (weights on a, architecture on b)."""
        n = len(self.y_train)
        perm = torch.randperm(n, generator=generator)
        a, b = perm[: n // 2], perm[n // 2:]
        return self.x_train[a], self.y_train[a], self.x_train[b], self.y_train[b]


class TensorLoader:
    """Mini-batches of ``(x, y)`` from tensors; shuffling uses an explicit ``torch.Generator``."""

    def __init__(self, x, y, batch_size: int = 64, shuffle: bool = False, generator: torch.Generator | None = None,
                 limit: int | None = None):
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.x, self.y, self.batch_size, self.shuffle, self.generator = x, y, int(batch_size), shuffle, generator
        self.limit = limit

    def __len__(self):
        n = len(self.y) if self.limit is None else min(self.limit, len(self.y))
        return (n + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        n = len(self.y)
        idx = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        if self.limit is not None:
            idx = idx[: self.limit]
        for s in range(0, len(idx), self.batch_size):
            j = idx[s: s + self.batch_size]
            yield self.x[j], self.y[j]


def load_image_data(name: str, root: str | None = None, *, limit_train: int | None = None,
                    limit_test: int | None = None) -> ImageData:
    if name == "digits":
        from neurosynth.datasets.digits import load_digits_split

        xtr, ytr, xte, yte = load_digits_split(test_size=0.25, seed=0, image=True)
        data = ImageData("digits", xtr.float(), ytr.long(), xte.float(), yte.long(), 10)
    elif name == "fashion_mnist":
        data = _load_fashion_mnist(root, limit_train)
    elif name == "cifar10":
        data = _load_cifar10(root)
    else:
        raise UserError(f"unknown dataset '{name}'; choose one of {DATASET_NAMES}")
    if limit_train:
        data.x_train, data.y_train = data.x_train[:limit_train], data.y_train[:limit_train]
    if limit_test:
        data.x_test, data.y_test = data.x_test[:limit_test], data.y_test[:limit_test]
    return data


def _load_fashion_mnist(root, limit_train: int | None = None) -> ImageData:
    """Fashion-MNIST as ``[N, 1, 28, 28]`` floats in [0, 1]: the first ``limit_train`` of the official 60,000
    training images (the file is shuffled, so the classes stay balanced) and the full 10,000-image test set.
    ``root=None`` reads the Debian package folder (``/usr/share/datasets/fashion-mnist``)."""
    from neurosynth.datasets import load  # a missing/corrupt file raises a UserError naming the fix

    tr = load("fashion_mnist", root, "train", limit=limit_train or None)
    te = load("fashion_mnist", root, "test")

    def unit(ds) -> torch.Tensor:
        x = ds.images
        return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()

    return ImageData("fashion_mnist", unit(tr), tr.targets.long(), unit(te), te.targets.long(), 10)


def _load_cifar10(root) -> ImageData:
    if root is None:
        raise UserError("cifar10 needs --data-root DIR (the folder holding cifar-10-batches-py); it is never "
                        "downloaded implicitly")
    try:
        from neurosynth.datasets import load
    except ImportError:
        load = None
    try:
        if load is not None:
            tr, te = load("cifar10", root, "train"), load("cifar10", root, "test")
            return ImageData("cifar10", tr.images, tr.targets, te.images, te.targets, 10)
        import torchvision.datasets as tvd  # pragma: no cover - fallback when neurosynth.datasets is absent

        tr = tvd.CIFAR10(root, train=True, download=False)
        te = tvd.CIFAR10(root, train=False, download=False)

        def conv(ds):
            x = torch.as_tensor(ds.data).permute(0, 3, 1, 2).float() / 255.0
            return x, torch.as_tensor(ds.targets)

        (xtr, ytr), (xte, yte) = conv(tr), conv(te)
        return ImageData("cifar10", xtr, ytr, xte, yte, 10)
    except (FileNotFoundError, RuntimeError, ValueError, OSError) as e:
        raise UserError(f"CIFAR-10 is not available under {root}: {e}. Download it first (e.g. "
                        f"neurosynth.datasets.load('cifar10', '{root}', download=True)) or use --dataset digits") from e
