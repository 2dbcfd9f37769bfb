"""On-disk cache of binned samples.

One folder per (dataset, split, source options, every :class:`Binning` parameter); the folder name ends in
a hash of that key and ``key.json`` holds the key in clear. Each sample is one ``.npy`` holding a single
``int32`` vector ``[MAGIC, FORMAT, ndim, *shape, label, nnz, flat indices (nnz), counts (nnz)]`` (binned
frames are integer event counts, so this is exact; a plain ``.npy`` loads ~10x faster than an ``.npz``).
It is written to a temp file and renamed, so an interrupted run never leaves a partial entry. A file that
cannot be read or fails the consistency checks raises :class:`CorruptFileError` naming it. Loading never
unpickles (``allow_pickle=False``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from neurosynth.io import atomic_write

from .errors import CorruptFileError

CACHE_FORMAT = 2
MAGIC = 0x4E53  # 'NS'


def cache_key(dataset: str, split: str, options: dict, binning: dict) -> dict:
    return {"format": CACHE_FORMAT, "dataset": dataset, "split": split, "options": options, "binning": binning}


def key_hash(key: dict) -> str:
    blob = json.dumps(key, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class FrameCache:
    """Per-sample sparse cache in ``root/<dataset>-<split>-<hash>/``."""

    def __init__(self, root: str | Path, key: dict):
        self.key = key
        self.dir = Path(root) / f"{key['dataset']}-{key['split']}-{key_hash(key)}"
        self._key_written = (self.dir / "key.json").exists()

    def path(self, index: int) -> Path:
        return self.dir / f"{int(index):08d}.npy"

    def get(self, index: int) -> tuple[np.ndarray, int] | None:
        """The cached ``(frames, label)`` of ``index``, or ``None`` when not cached yet."""
        path = self.path(index)
        if not path.exists():
            return None
        try:
            rec = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise CorruptFileError(
                f"cache file {path} is corrupt or truncated ({type(e).__name__}: {e}); delete it "
                f"(or the folder {self.dir}) and it will be rebuilt from the source data"
            ) from e
        frames_label = _decode(rec)
        if frames_label is None:
            raise CorruptFileError(
                f"cache file {path} does not hold a neurosynth cache entry (dtype {rec.dtype}, shape {rec.shape}); "
                f"delete it (or the folder {self.dir}) and it will be rebuilt"
            )
        return frames_label

    def put(self, index: int, frames: np.ndarray, label: int) -> None:
        if not self._key_written:
            with atomic_write(self.dir / "key.json") as f:
                json.dump(self.key, f, indent=2, sort_keys=True, default=str)
            self._key_written = True
        rec = _encode(frames, label)
        with atomic_write(self.path(index), "wb") as f:
            np.save(f, rec, allow_pickle=False)

    def n_cached(self) -> int:
        return len(list(self.dir.glob("*.npy"))) if self.dir.exists() else 0


def _encode(frames: np.ndarray, label: int) -> np.ndarray:
    flat = np.asarray(frames).reshape(-1)
    if flat.size >= 2**31:
        raise ValueError(f"a binned sample of {flat.size} values is too large to cache; lower T or downsample")
    counts = flat.astype(np.int64)
    if not np.array_equal(counts, flat):
        raise ValueError("the frame cache stores integer event counts; got non-integer frames")
    idx = np.flatnonzero(counts)
    head = [MAGIC, CACHE_FORMAT, frames.ndim, *frames.shape, int(label), idx.size]
    return np.concatenate([np.asarray(head, np.int64), idx, counts[idx]]).astype(np.int32)


def _decode(rec: np.ndarray) -> tuple[np.ndarray, int] | None:
    if rec.dtype != np.int32 or rec.ndim != 1 or rec.size < 3 or rec[0] != MAGIC or rec[1] != CACHE_FORMAT:
        return None
    ndim = int(rec[2])
    if not 0 < ndim <= 8 or rec.size < 5 + ndim:
        return None
    shape = tuple(int(s) for s in rec[3 : 3 + ndim])
    label, nnz = int(rec[3 + ndim]), int(rec[4 + ndim])
    body = rec[5 + ndim :]
    size = int(np.prod(shape))
    if min(shape) < 0 or nnz < 0 or body.size != 2 * nnz:
        return None
    idx, counts = body[:nnz], body[nnz:]
    if nnz and (idx.min() < 0 or idx.max() >= size):
        return None
    dense = np.zeros(size, dtype=np.float32)
    dense[idx] = counts
    return dense.reshape(shape), label
