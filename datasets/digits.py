"""sklearn's handwritten digits (8x8, 1,797 images, ships offline): the embedded real dataset.

Images are scaled to [0, 1] and encoded to spikes per batch with an explicit generator, so the same seed
gives the same spike trains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neurosynth.encoding import encode


def load_digits_split(test_size: float = 0.25, seed: int = 0, image: bool = False):
    """``(x_train, y_train, x_test, y_test)`` as tensors; ``x`` in [0, 1], shape ``[N, 64]`` (or ``[N, 1, 8, 8]``).

    The split is stratified and fixed by ``seed``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)
    conv = (lambda a: torch.from_numpy(a).reshape(-1, 1, 8, 8)) if image else torch.from_numpy
    return conv(xtr), torch.from_numpy(ytr), conv(xte), torch.from_numpy(yte)


@dataclass
class EncodedLoader:
    """Iterate ``(spikes [T, B, ...], labels)`` batches, encoding static inputs on the fly.

    Shuffling and encoding draw from one ``torch.Generator`` seeded with ``seed``: the sequence of batches is
    reproducible across runs.
    """

    x: torch.Tensor
    y: torch.Tensor
    T: int = 20
    batch_size: int = 64
    shuffle: bool = True
    seed: int = 0
    encoder: str = "rate"
    encoder_kw: dict | None = None
    pin_memory: bool = False

    def __post_init__(self):
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} samples but y has {len(self.y)}")
        self._gen = torch.Generator()
        self._gen.manual_seed(self.seed)

    def __len__(self):
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        n = len(self.x)
        idx = torch.randperm(n, generator=self._gen) if self.shuffle else torch.arange(n)
        for i in range(0, n, self.batch_size):
            j = idx[i:i + self.batch_size]
            xb = self.x[j]
            if self.encoder == "current":  # analog input repeated every step
                s = xb.unsqueeze(0).expand(self.T, *xb.shape).contiguous()
            else:
                s = encode(self.encoder, xb, self.T, generator=self._gen, **(self.encoder_kw or {}))
            yb = self.y[j]
            if self.pin_memory:  # page-locked host memory: faster, asynchronous copies to a CUDA device
                s, yb = s.pin_memory(), yb.pin_memory()
            yield s, yb


def digits_loaders(T: int = 20, batch_size: int = 64, seed: int = 0, encoder: str = "rate", image: bool = False,
                   test_size: float = 0.25, pin_memory: bool = False):
    """Train and test :class:`EncodedLoader` for digits."""
    xtr, ytr, xte, yte = load_digits_split(test_size=test_size, seed=seed, image=image)
    train = EncodedLoader(xtr, ytr, T, batch_size, True, seed, encoder, pin_memory=pin_memory)
    test = EncodedLoader(xte, yte, T, 256, False, seed + 1, encoder, pin_memory=pin_memory)
    return train, test
