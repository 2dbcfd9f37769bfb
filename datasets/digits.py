"""sklearn's handwritten digits (8x8, 1,797 images, ships offline): the embedded real dataset.

One split everywhere: a stratified split with 1,347 training and 450 test images, fixed (``random_state=0``)
and independent of the training seed. :func:`load_digits_split`, :func:`digits_loaders` and
``neurosynth.datasets.load("digits")`` all use it.

Images are scaled to [0, 1] and encoded to spikes per batch with an explicit generator, so the same seed
gives the same spike trains. Training loaders draw fresh noise every epoch; evaluation loaders
(``fixed=True``) re-encode with the same generator state on every pass, so evaluating one net twice gives
the same accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neurosynth.encoding import encode

TEST_SIZE = 0.25  # 450 of 1,797 images
SPLIT_SEED = 0


def load_digits_split(test_size: float = TEST_SIZE, seed: int = SPLIT_SEED, image: bool = False):
    """``(x_train, y_train, x_test, y_test)`` as tensors; ``x`` in [0, 1], shape ``[N, 64]`` (or ``[N, 1, 8, 8]``).

    The split is stratified. The defaults give the project's one digits split (1,347 train / 450 test), the
    one every command, recipe and ``datasets.load("digits")`` uses; ``test_size`` and ``seed`` (the *split*
    seed, not a training seed) exist for resampling experiments only.
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
    reproducible across runs. By default each pass continues the generator (fresh noise every epoch, for
    training); with ``fixed=True`` every pass restarts it, so every pass yields the same spikes (evaluation).
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
    fixed: bool = False  # re-seed at every pass: identical batches on every pass (evaluation)

    def __post_init__(self):
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} samples but y has {len(self.y)}")
        self._gen = torch.Generator()
        self._gen.manual_seed(self.seed)

    def __len__(self):
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        if self.fixed:
            self._gen.manual_seed(self.seed)
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
                   test_size: float = TEST_SIZE, pin_memory: bool = False):
    """Train and test :class:`EncodedLoader` for digits, on the one split (:func:`load_digits_split`).

    ``seed`` drives shuffling and spike encoding, not the split. The training loader draws fresh noise every
    epoch; the test loader is ``fixed``: every evaluation pass sees the same spike trains.
    """
    xtr, ytr, xte, yte = load_digits_split(test_size=test_size, image=image)
    train = EncodedLoader(xtr, ytr, T, batch_size, True, seed, encoder, pin_memory=pin_memory)
    test = EncodedLoader(xte, yte, T, 256, False, seed + 1, encoder, pin_memory=pin_memory, fixed=True)
    return train, test


def digits_split_loaders(T: int = 20, batch_size: int = 64, seed: int = 0, encoder: str = "rate",
                         image: bool = False, val_fraction: float = 0.1, split_seed: int = 0,
                         pin_memory: bool = False):
    """Train, validation and test loaders for digits and the validation :class:`~neurosynth.workflow.Split`:
    the validation images are carved from the 1,347 training images (stratified, ``split_seed``), so an epoch
    can be chosen without reading the test images (:func:`neurosynth.workflow.train_and_test`). What
    ``neurosynth train`` and the digits examples train on. ``val_fraction=0``: no validation split (``val`` is
    ``None``, every training image is fitted)."""
    from neurosynth.workflow import Split, split_indices

    xtr, ytr, xte, yte = load_digits_split(image=image)
    if val_fraction == 0:
        fit_idx, val = list(range(len(ytr))), None
        split = Split("none", len(ytr), 0, 0.0, source="no validation split (--val-fraction 0)")
    else:
        fit_idx, val_idx, split = split_indices(ytr.tolist(), val_fraction, split_seed)
        val = EncodedLoader(xtr[val_idx], ytr[val_idx], T, 256, False, seed + 2, encoder, pin_memory=pin_memory,
                            fixed=True)
    train = EncodedLoader(xtr[fit_idx], ytr[fit_idx], T, batch_size, True, seed, encoder, pin_memory=pin_memory)
    test = EncodedLoader(xte, yte, T, 256, False, seed + 1, encoder, pin_memory=pin_memory, fixed=True)
    return train, val, test, split
