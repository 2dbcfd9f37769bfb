"""Reading SHD-layout HDF5 files as event sources: the reader of ``spoken_digits`` (and any split name, e.g. its
``shd_valid.h5``), used by the ``spoken_digits`` event spec of :mod:`.events`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DatasetNotFoundError


class SHDLayoutFile:
    """One SHD-layout HDF5 file as an event source for :class:`~neurosynth.datasets.events.EventFrames`:
    ``src[i] -> (events, label)`` with tonic's SHD dtype (``t`` in µs, ``x`` the unit, ``p`` 0), ``targets``,
    ``classes`` (``extra/keys``). Reads any split name, so spoken_digits' ``shd_valid.h5`` loads like the others."""

    dtype = np.dtype([("t", int), ("x", int), ("p", int)])

    def __init__(self, path: Path):
        import h5py

        self.path = Path(path)
        with h5py.File(self.path, "r") as f:
            self.targets = [int(v) for v in f["labels"][()]]
            self.classes = list(f["extra/keys"][()])
        self._file = None

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        import h5py

        if self._file is None:
            self._file = h5py.File(self.path, "r")
        t = np.asarray(self._file["spikes/times"][index], np.float64) * 1e6
        u = np.asarray(self._file["spikes/units"][index])
        ev = np.zeros(len(t), self.dtype)
        ev["t"], ev["x"] = t, u
        return ev, self.targets[index]

    def __getstate__(self):  # DataLoader workers reopen the file
        return {**self.__dict__, "_file": None}


def open_split(spec, root, split: str, *, download: bool = False, **options):
    """The ``opener`` of the ``spoken_digits`` event spec: ``(SHDLayoutFile, Location)`` of ``split`` under
    ``root`` (= ``<data root>/SpokenDigits``), after the SHD layout checks; records the file's SHA-256 for the
    run manifests (:func:`neurosynth.rundir.record_dataset`)."""
    del download, options
    loc = spec.locate(Path(root), split)
    if not loc.present:
        raise DatasetNotFoundError(f"dataset 'spoken_digits' split '{split}' not found: expected {loc.path}; "
                                   f"generate it with: neurosynth data generate spoken_digits --root "
                                   f"{Path(root).parent}")
    spec.validate(loc)
    return SHDLayoutFile(loc.path), loc
