"""Data for MSE-NAS: a dataset materialised once as time-first tensors, reproducible batches and loaders.

``load_task("digits", T=8)`` uses :func:`neurosynth.datasets.load` (scikit-learn digits, offline) as 1x8x8
images (``conv=True``) or 64 features (``conv=False``). Any registered dataset loads the same way: static ones
(``entry.kind == "static"``) are spike-encoded over ``T`` steps, event ones (``shd``, ``dvs_gesture``, ...) binned
into ``T`` frames, from ``root``; ``limit`` caps the number of samples kept in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Task:
    name: str
    x_train: torch.Tensor  # [T, N, ...]
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> list[int]:
        return list(self.x_train.shape[2:])

    @property
    def T(self) -> int:
        return int(self.x_train.shape[0])


def _load_options(name: str, *, T: int, encoding: str, seed: int, conv: bool) -> dict:
    """``load()`` options for ``T`` steps: static datasets are spike-encoded (``encoding``, ``seed``; flattened
    unless ``conv``), event datasets binned into ``T`` frames. Unknown names raise the registry's ValueError."""
    from neurosynth.datasets import DATASETS

    if DATASETS.get(name).kind == "static":
        return {"T": T, "encoding": encoding, "seed": seed, "flatten": not conv}
    return {"T": T}


def _materialise(ds, limit: int | None, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    from neurosynth.datasets import collate_time_first

    idx = np.arange(len(ds))
    if limit is not None and limit < len(ds):
        idx = np.sort(rng.choice(len(ds), size=int(limit), replace=False))
    x, y, _ = collate_time_first([ds[int(i)] for i in idx])
    return x.float(), y


def load_task(name: str = "digits", root=None, *, T: int = 8, conv: bool = True, seed: int = 0,
              limit: int | None = None, encoding: str = "rate", test_limit: int | None = -1, **kw) -> Task:
    """Load ``name`` as a :class:`Task` (train/test tensors ``[T, N, ...]``).

    ``limit`` keeps a random subset of at most ``limit`` training samples (and, unless ``test_limit`` is
    given, of test samples); ``test_limit=None`` keeps the whole test split."""
    from neurosynth.datasets import load

    rng = np.random.default_rng(seed)
    kw = {**_load_options(name, T=T, encoding=encoding, seed=seed, conv=conv), **kw}
    tr = load(name, root, "train", **kw)
    te = load(name, root, "test", **kw)
    xtr, ytr = _materialise(tr, limit, rng)
    xte, yte = _materialise(te, limit if test_limit == -1 else test_limit, rng)
    if not conv and xtr.dim() > 3:
        xtr, xte = xtr.flatten(2), xte.flatten(2)
    n_classes = int(getattr(tr, "n_classes", 0) or (int(max(ytr.max(), yte.max())) + 1))
    return Task(name, xtr, ytr, xte, yte, n_classes)


class TensorLoader:
    """Batches ``(x [T, B, ...], y [B])`` of in-memory tensors; shuffling draws from its own generator."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 64, shuffle: bool = True, seed: int = 0):
        if x.shape[1] != len(y):
            raise ValueError(f"x has {x.shape[1]} samples (dim 1) but y has {len(y)}")
        self.x, self.y, self.batch_size, self.shuffle = x, y, int(batch_size), shuffle
        self._gen = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        return (len(self.y) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        n = len(self.y)
        idx = torch.randperm(n, generator=self._gen) if self.shuffle else torch.arange(n)
        for i in range(0, n, self.batch_size):
            j = idx[i:i + self.batch_size]
            yield self.x[:, j], self.y[j]


def fitness_batch(task: Task, n: int = 128, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed class-balanced batch of ``n`` training samples (the same for every candidate of a run)."""
    rng = np.random.default_rng(seed)
    y = task.y_train.numpy()
    classes = np.unique(y)
    per = max(1, n // len(classes))
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), size=min(per, int((y == c).sum())), replace=False)
                          for c in classes])
    if len(idx) < n:
        rest = np.setdiff1d(np.arange(len(y)), idx)
        idx = np.concatenate([idx, rng.choice(rest, size=min(n - len(idx), len(rest)), replace=False)])
    idx = np.sort(idx[:n])
    return task.x_train[:, idx].contiguous(), task.y_train[idx].contiguous()


def test_samples(dataset: str, n: int, *, T: int, encoding: str = "rate", conv: bool = True, seed: int = 0,
                 root=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` samples of ``dataset``'s *test* split, encoded as in :func:`load_task` (the split a
    searched network was tested on), as ``(x [T, n, ...], y [n])``."""
    from neurosynth.datasets import load

    te = load(dataset, root, "test", **_load_options(dataset, T=T, encoding=encoding, seed=seed, conv=conv))
    x, y = _materialise(te, None, np.random.default_rng(seed)) if len(te) <= n else \
        _materialise_first(te, n)
    return x, y


def _materialise_first(ds, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    from neurosynth.datasets import collate_time_first

    x, y, _ = collate_time_first([ds[i] for i in range(int(n))])
    return x.float(), y


def onset_aligned_counts(times, units, *, channels: int = 700, T: int = 40, dt: float = 0.02,
                         groups: int = 140) -> torch.Tensor:
    """Event streams (per sample: spike times in seconds, channel ids) as onset-aligned log counts
    ``[T, N, groups]``: ``T`` bins of ``dt`` seconds from each sample's first spike, ``channels`` pooled into
    ``groups`` groups of neighbouring channels, ``log(1 + count)``. The features of the GRU baseline of
    ``benchmarks/baselines_spoken_digits.py``, time-first, for a spiking network's input current."""
    out = np.zeros((len(times), T, groups), np.float32)
    per = int(np.ceil(channels / groups))
    for i, (t, u) in enumerate(zip(times, units)):
        t, u = np.asarray(t, np.float64), np.asarray(u, np.int64)
        if t.size == 0:
            continue
        b = ((t - float(t.min())) / dt).astype(np.int64)
        m = b < T
        np.add.at(out[i], (b[m], np.minimum(u[m] // per, groups - 1)), 1.0)
    return torch.from_numpy(np.log1p(out)).transpose(0, 1).contiguous()


def spoken_digits_split(root, split: str, *, T: int = 40, dt: float = 0.02, groups: int = 140
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """A split (``train`` / ``valid`` / ``test``) of the generated spoken digits under ``root`` (the folder holding
    ``SpokenDigits/``) as ``(x [T, N, groups], y [N])`` (:func:`onset_aligned_counts`); nothing is generated here:
    a missing file raises the dataset's error naming the command that writes it."""
    from neurosynth.datasets.cochlea import read_shd_h5
    from neurosynth.datasets.spoken_digits import file_path

    d = read_shd_h5(file_path(root, split))
    return onset_aligned_counts(d["times"], d["units"], T=T, dt=dt, groups=groups), torch.as_tensor(d["labels"])
