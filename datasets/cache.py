"""On-disk cache of binned samples.

One folder per (dataset, split, source options, every :class:`Binning` parameter); the folder name ends in
a hash of that key and ``key.json`` holds the key in clear. Each sample is one ``.npz`` (sparse: flat
indices and values of the non-zero entries, the dense shape and the label), written to a temp file and
renamed, so an interrupted run never leaves a partial entry. A file that cannot be read raises
:class:`CorruptFileError` naming it. Loading never unpickles (``allow_pickle=False``).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from neurosynth.io import atomic_write

from .errors import CorruptFileError

CACHE_FORMAT = 1


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
        return self.dir / f"{int(index):08d}.npz"

    def get(self, index: int) -> tuple[np.ndarray, int] | None:
        """The cached ``(frames, label)`` of ``index``, or ``None`` when not cached yet."""
        path = self.path(index)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                shape, idx, val, label = z["shape"], z["idx"], z["val"], z["label"]
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
            raise CorruptFileError(
                f"cache file {path} is corrupt or truncated ({type(e).__name__}: {e}); delete it "
                f"(or the folder {self.dir}) and it will be rebuilt from the source data"
            ) from e
        if (
            shape.dtype.kind not in "iu" or idx.dtype.kind not in "iu" or val.dtype != np.float32
            or label.shape != () or idx.shape != val.shape or (idx.size and (idx.min() < 0 or idx.max() >= np.prod(shape)))
        ):
            raise CorruptFileError(
                f"cache file {path} holds unexpected arrays (shape {shape.dtype}, idx {idx.dtype}, val {val.dtype}); "
                f"delete it (or the folder {self.dir}) and it will be rebuilt"
            )
        dense = np.zeros(int(np.prod(shape)), dtype=np.float32)
        dense[idx] = val
        return dense.reshape(tuple(int(s) for s in shape)), int(label)

    def put(self, index: int, frames: np.ndarray, label: int) -> None:
        if not self._key_written:
            with atomic_write(self.dir / "key.json") as f:
                json.dump(self.key, f, indent=2, sort_keys=True, default=str)
            self._key_written = True
        flat = np.ascontiguousarray(frames, dtype=np.float32).reshape(-1)
        idx = np.flatnonzero(flat)
        idx = idx.astype(np.int32 if flat.size < 2**31 else np.int64)
        with atomic_write(self.path(index), "wb") as f:
            np.savez(f, shape=np.asarray(frames.shape, dtype=np.int64), idx=idx, val=flat[idx],
                     label=np.asarray(int(label), dtype=np.int64))

    def n_cached(self) -> int:
        return len(list(self.dir.glob("*.npz"))) if self.dir.exists() else 0
