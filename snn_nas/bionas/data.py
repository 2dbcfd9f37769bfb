"""Image data for BioNAS: any registered static image dataset (``neurosynth.datasets`` entries with
``is_image``): digits (offline, sklearn, 1x8x8), Fashion-MNIST (IDX files, 1x28x28), CIFAR-10/100 (only when on
disk).

Splits: ``train`` is halved into ``search_train`` / ``search_val`` for the bilevel search (DARTS'
``train_portion = 0.5``); derived models train on ``train`` and report ``test``. Images stay in [0, 1]
(no normalisation layer), which is what the attacks expect.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neurosynth.errors import UserError


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


def image_datasets() -> tuple[str, ...]:
    """The registered static image datasets (``entry.is_image``: ``[C, H, W]`` samples), by name."""
    from neurosynth.datasets import entries

    return tuple(e.name for e in entries(is_image=True))


def load_image_data(name: str, root: str | None = None, *, limit_train: int | None = None,
                    limit_test: int | None = None) -> ImageData:
    """Any registered static image dataset as ``[N, C, H, W]`` floats in [0, 1]: the first ``limit_train`` training
    images (the full training split by default) and the first ``limit_test`` test images (default: all).
    ``root=None`` works for the datasets whose entry does not need a folder (digits; Fashion-MNIST reads the Debian
    package folder ``/usr/share/datasets/fashion-mnist``); nothing is ever downloaded."""
    from neurosynth.datasets import DATASETS, load

    entry = DATASETS.get(name) if name in DATASETS else None
    if entry is None or not entry.is_image:
        raise UserError(f"unknown dataset '{name}'; choose one of {image_datasets()}")
    if entry.needs_root and root is None:
        raise UserError(f"{name} needs --data-root DIR ({entry.root_help}); it is never downloaded implicitly")
    try:  # a missing or corrupt file raises a UserError (DatasetNotFoundError, CorruptFileError) naming the fix
        tr = load(name, root, "train", T=None, flatten=False, limit=limit_train or None)
        te = load(name, root, "test", T=None, flatten=False, limit=limit_test or None)
    except UserError:
        raise
    except (FileNotFoundError, RuntimeError, ValueError, OSError) as e:
        raise UserError(f"{name} is not available under {root}: {e}. Download it first (e.g. "
                        f"neurosynth.datasets.load('{name}', '{root}', download=True)) or use --dataset digits") from e

    def unit(x: torch.Tensor) -> torch.Tensor:
        return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()

    return ImageData(name, unit(tr.images), tr.targets.long(), unit(te.images), te.targets.long(), entry.n_classes)
