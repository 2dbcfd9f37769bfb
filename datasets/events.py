"""Event-camera and spiking-audio datasets through tonic: SHD, SSC, DVS128-Gesture, N-MNIST, CIFAR10-DVS.

Reading the files is tonic's job (its dataset classes; we write no event-file parser). This module adds:
a presence check that names the exact path, files and download URL and never downloads unless asked;
a validation of the file layout (an error naming the file instead of a crash deep in h5py or numpy);
binning with :mod:`.binning`; and the per-sample on-disk cache of :mod:`.cache`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .binning import Binning, bin_events, downsampled_size, frame_shape
from .cache import FrameCache, cache_key
from .errors import CorruptFileError, DatasetNotFoundError
from .location import Location

SHD_URL = "https://zenkelab.org/datasets/"


@dataclass(frozen=True)
class EventSpec:
    """A registered event dataset: its tonic class, sensor, classes, default binning, files."""

    name: str
    tonic_class: str
    splits: tuple[str, ...]
    sensor_size: tuple[int, int, int]
    classes: tuple[str, ...]
    default_binning: Binning
    locate: Callable[[Path, str], Location]
    tonic_kwargs: Callable[[str], dict]
    validate: Callable[[Location], int] | None = None
    requires: tuple[str, ...] = ()  # extra python modules tonic needs for this dataset
    options: dict = field(default_factory=dict)  # extra keyword options accepted by load(), with defaults
    has_y: bool = True
    # a dataset that is not read by tonic: opener(spec, root, split, download=..., **options) -> (source, Location)
    opener: Callable | None = None

    def __reduce__(self):  # pickle by registry name (the spec holds functions)
        return (_spec_by_name, (self.name,))

    def missing_error(self, root: Path, split: str, loc: Location) -> DatasetNotFoundError:
        return DatasetNotFoundError(
            f"dataset '{self.name}' split '{split}' not found: expected {loc.path} "
            f"containing {', '.join(loc.needed)}. Get it with "
            f"neurosynth.datasets.load('{self.name}', '{root}', '{split}', download=True) "
            f"or download it yourself from {loc.url} and unpack it so that {loc.path} exists."
        )


# ---------------------------------------------------------------- locating files (tonic's layouts)

def _tonic_folder(root: Path, cls: str) -> Path:
    return Path(os.path.expanduser(str(root))) / cls  # tonic: save_to/<ClassName>


def _locate_hsd(prefix: str, cls: str):
    def locate(root: Path, split: str) -> Location:
        f = _tonic_folder(root, cls) / f"{prefix}_{split}.h5"
        return Location(f, (f"{f.name} (HDF5: spikes/times, spikes/units, labels, extra/keys, extra/speaker)",),
                        f"{SHD_URL}{prefix}_{split}.h5.zip", f.is_file())
    return locate


def _locate_folder(cls: str, folders: dict[str, str], ext: str, what: str, urls: dict[str, str]):
    def locate(root: Path, split: str) -> Location:
        d = _tonic_folder(root, cls) / folders[split]
        present = d.is_dir() and any(d.glob(f"**/*{ext}"))
        return Location(d, (what,), urls[split], present)
    return locate


#: every HDF5 key the SHD/SSC reader (tonic) uses; the file check requires all of them
HSD_KEYS = ("spikes/times", "spikes/units", "labels", "extra/keys", "extra/speaker")
HSD_CHANNELS = 700


def _validate_hsd(loc: Location) -> int:
    """Check the SHD/SSC HDF5 layout and dtypes; return the number of samples."""
    import h5py

    path = loc.path
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise CorruptFileError(
            f"{path} is not a readable HDF5 file ({e}); it is truncated or corrupt: delete it and download "
            f"it again from {loc.url}"
        ) from e
    with f:
        missing = [k for k in HSD_KEYS if k not in f]
        if missing:
            raise CorruptFileError(f"{path} lacks the datasets {missing}; it is not an SHD/SSC file ({loc.url})")
        times, units, labels = f["spikes/times"], f["spikes/units"], f["labels"]
        checks = [
            ("spikes/times", _vlen_base(times), "f", "variable-length float arrays (seconds)"),
            ("spikes/units", _vlen_base(units), "iu", "variable-length integer arrays (channel ids)"),
            ("labels", labels.dtype, "iu", "integers"),
        ]
        for key, dt, kinds, want in checks:
            if dt is None or dt.kind not in kinds:
                raise CorruptFileError(f"{path}: '{key}' has dtype {f[key].dtype}, expected {want}")
        n = len(labels)
        if len(times) != n or len(units) != n:
            raise CorruptFileError(
                f"{path}: {len(times)} spike-time arrays, {len(units)} unit arrays and {n} labels; the file "
                "is truncated or corrupt"
            )
        if len(f["extra/speaker"]) != n:
            raise CorruptFileError(f"{path}: {len(f['extra/speaker'])} speaker ids for {n} samples; the file is "
                                   "truncated or corrupt")
        all_units = units[()]
        low = min((int(u.min()) for u in all_units if len(u)), default=0)
        if low < 0:
            raise CorruptFileError(f"{path}: 'spikes/units' holds the negative channel id {low}; the file is corrupt "
                                   f"or not an SHD/SSC file ({loc.url})")
        for i, t in enumerate(times[()]):
            t = np.asarray(t, np.float64)
            if t.size and not (np.isfinite(t).all() and t.min() >= 0):
                bad = t[~np.isfinite(t)][:1].tolist() or [float(t.min())]
                raise CorruptFileError(f"{path}: sample {i} has the spike time {bad[0]} s (spike times are finite "
                                       f"seconds >= 0); the file is corrupt ({loc.url})")
        n_classes = len(f["extra/keys"])
        lab = np.asarray(labels[()]).astype(np.int64)
        if n and n_classes and (lab.min() < 0 or lab.max() >= n_classes):
            bad = int(lab.min()) if lab.min() < 0 else int(lab.max())
            raise CorruptFileError(f"{path}: label {bad} is outside 0..{n_classes - 1} ('extra/keys' names "
                                   f"{n_classes} classes); the file is corrupt ({loc.url})")
        top = max((int(u.max()) for u in all_units if len(u)), default=-1)
        if top >= HSD_CHANNELS:
            raise CorruptFileError(f"{path}: 'spikes/units' holds channel id {top}, but SHD/SSC have "
                                   f"{HSD_CHANNELS} channels (ids 0..{HSD_CHANNELS - 1}); the file is corrupt or "
                                   f"not an SHD/SSC file ({loc.url})")
        return n


_SHA_CACHE: dict[tuple, str] = {}


def _file_sha256(path: Path) -> str:
    """SHA-256 of a file, computed once per process per (path, size, mtime)."""
    import hashlib

    st = Path(path).stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def _vlen_base(ds):
    import h5py

    base = h5py.check_vlen_dtype(ds.dtype)
    return np.dtype(base) if base is not None else None


# ---------------------------------------------------------------- registry of event datasets

DVS_GESTURE_URLS = {
    "train": "https://figshare.com/ndownloader/files/38022171 (ibmGestureTrain.tar.gz)",
    "test": "https://figshare.com/ndownloader/files/38020584 (ibmGestureTest.tar.gz)",
}
NMNIST_BASE = "https://data.mendeley.com/public-files/datasets/468j46mzdv/files/"
NMNIST_URLS = {
    "train": NMNIST_BASE + "39c25547-014b-4137-a934-9d29fa53c7a0/file_downloaded (train.zip)",
    "test": NMNIST_BASE + "05a4d654-7e03-4c15-bdfa-9bb2bcbea494/file_downloaded (test.zip)",
}
CIFAR10DVS_URL = "https://figshare.com/ndownloader/files/38023437 (CIFAR10DVS.zip)"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

SHD_CLASSES = tuple(f"english {w}" for w in "zero one two three four five six seven eight nine".split()) + tuple(
    f"german {w}" for w in "null eins zwei drei vier fuenf sechs sieben acht neun".split()
)
DVS_GESTURE_CLASSES = ("Hand clapping", "Right hand wave", "Left hand wave", "Right arm cw", "Right arm ccw",
                       "Left arm cw", "Left arm ccw", "Arm roll", "Air drums", "Air guitar", "Other gestures")

# Standard SHD preprocessing (Zenke & Cramer's SpyTorch tutorial): 100 steps of 14 ms from t=0 (1.4 s).
SHD_BINNING = Binning(T=100, dt=14_000.0, origin="zero")

EVENT_SPECS: dict[str, EventSpec] = {}


def _spec_by_name(name: str) -> EventSpec:
    return EVENT_SPECS[name]


def _add(spec: EventSpec) -> EventSpec:
    EVENT_SPECS[spec.name] = spec
    return spec


_add(EventSpec(
    "shd", "SHD", ("train", "test"), (700, 1, 1), SHD_CLASSES, SHD_BINNING,
    _locate_hsd("shd", "SHD"), lambda split: {"train": split == "train"}, _validate_hsd, has_y=False,
))
_add(EventSpec(
    "ssc", "SSC", ("train", "valid", "test"), (700, 1, 1), tuple(f"class {i}" for i in range(35)), SHD_BINNING,
    _locate_hsd("ssc", "SSC"), lambda split: {"split": split}, _validate_hsd, has_y=False,
))
# synthetic spoken digits (datasets/spoken_digits.py) in the SHD layout under <root>/SpokenDigits/SHD/; the
# loader passes root/SpokenDigits as the tonic root after generating the files
def _open_spoken_digits(spec, root, split, **kw):
    from .shd_layout import open_split

    return open_split(spec, root, split, **kw)


_add(EventSpec(
    "spoken_digits", "SHD", ("train", "valid", "test"), (700, 1, 1), SHD_CLASSES, SHD_BINNING,
    _locate_hsd("shd", "SHD"), lambda split: {"train": split == "train"}, _validate_hsd, has_y=False,
    opener=_open_spoken_digits,
))
_add(EventSpec(
    "dvs_gesture", "DVSGesture", ("train", "test"), (128, 128, 2), DVS_GESTURE_CLASSES,
    Binning(T=16, spatial_factor=0.25),
    _locate_folder("DVSGesture", {"train": "ibmGestureTrain", "test": "ibmGestureTest"}, ".npy",
                   "userNN_<lighting>/<label>.npy event files", DVS_GESTURE_URLS),
    lambda split: {"train": split == "train"},
))
_add(EventSpec(
    "nmnist", "NMNIST", ("train", "test"), (34, 34, 2), tuple(str(i) for i in range(10)), Binning(T=30),
    _locate_folder("NMNIST", {"train": "Train", "test": "Test"}, ".bin", "<digit>/<id>.bin event files",
                   NMNIST_URLS),
    lambda split: {"train": split == "train"}, options={"first_saccade_only": False, "stabilize": False},
))
_add(EventSpec(
    "cifar10_dvs", "CIFAR10DVS", ("train", "test"), (128, 128, 2), CIFAR10_CLASSES,
    Binning(T=10, spatial_factor=0.5),
    _locate_folder("CIFAR10DVS", {"train": "", "test": ""}, ".aedat4", "<class>/<id>.aedat4 event files",
                   {"train": CIFAR10DVS_URL, "test": CIFAR10DVS_URL}),
    lambda split: {}, requires=("aedat",),
))



def _open_nfashion(spec, root, split, **kw):
    from .nfashion import open_nfashion

    return open_nfashion(spec, root, split, **kw)


def _no_locate(root, split):  # pragma: no cover - generated datasets are opened by their opener
    raise NotImplementedError


FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
_add(EventSpec(
    "nfashion_mnist", "NFashionMNIST", ("train", "test"), (34, 34, 2), FASHION_CLASSES, Binning(T=10),
    _no_locate, lambda split: {}, options={"n_samples": None, "seed": 0, "camera": None, "fashion_root": None,
                                    "generate_missing": True},
    opener=_open_nfashion,
))


@functools.cache
def _offline_class(name: str):
    """tonic's class with its download-if-missing turned off: we check presence ourselves (so a fixture
    with a handful of files loads, and nothing is ever fetched unless ``download=True``)."""
    import tonic.datasets as td

    base = getattr(td, name)

    def _check_exists(self):
        return True

    def download(self):  # pragma: no cover - guarded by the presence check
        raise RuntimeError(f"{name}: download requested on the offline path")

    # the class name must stay the same: tonic stores files under save_to/<ClassName>; the qualified name
    # points at this module's __getattr__ so that datasets pickle (DataLoader workers with spawn)
    cls = type(name, (base,), {"_check_exists": _check_exists, "download": download, "__module__": __name__})
    cls.__qualname__ = f"_offline_{name}"
    return cls


def __getattr__(attr: str):
    if attr.startswith("_offline_"):
        return _offline_class(attr[len("_offline_"):])
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def _require(spec: EventSpec) -> None:
    import importlib

    from neurosynth.errors import MissingExtraError

    for mod in ("tonic", "h5py", *spec.requires):
        try:
            importlib.import_module(mod)
        except ImportError as e:
            if mod in ("tonic", "h5py"):
                raise MissingExtraError(mod, "data", f"dataset '{spec.name}'") from e
            raise DatasetNotFoundError(
                f"dataset '{spec.name}' needs the package '{mod}' to read its files; install it with "
                f"pip install {mod}"
            ) from e


def _tonic_download(spec: EventSpec, root: Path, kwargs: dict) -> None:
    """Let tonic's own class download, verify (md5) and extract the split."""
    import tonic.datasets as td

    getattr(td, spec.tonic_class)(str(root), **kwargs)


def open_tonic(spec: EventSpec, root: str | Path, split: str, *, download: bool = False, **options):
    """The tonic dataset object for ``split`` (raw events), after the presence and layout checks."""
    if split not in spec.splits:
        raise ValueError(f"dataset '{spec.name}' has splits {list(spec.splits)}, not '{split}'")
    if spec.opener is not None:
        return spec.opener(spec, root, split, download=download, **options)
    _require(spec)
    root = Path(root)
    loc = spec.locate(root, split)
    kwargs = {**spec.tonic_kwargs(split), **{k: options.get(k, v) for k, v in spec.options.items()}}
    if not loc.present:
        if not download:
            raise spec.missing_error(root, split, loc)
        _tonic_download(spec, root, kwargs)
        loc = spec.locate(root, split)
        if not loc.present:
            raise spec.missing_error(root, split, loc)
    if spec.validate is not None:
        spec.validate(loc)
    ds = _offline_class(spec.tonic_class)(str(root), **kwargs)
    if spec.name == "cifar10_dvs":
        ds = _SplitView(ds, _cifar10dvs_split(ds.targets, split))
    return ds, loc


def _cifar10dvs_split(targets, split: str) -> list[int]:
    """CIFAR10-DVS ships one folder per class; the usual 9:1 split takes the last 10% of each class."""
    targets = np.asarray(targets)
    out = []
    for c in np.unique(targets):
        idx = np.flatnonzero(targets == c)
        n_test = max(1, len(idx) // 10) if len(idx) > 1 else 0
        out.extend(idx[len(idx) - n_test:] if split == "test" else idx[: len(idx) - n_test])
    return sorted(int(i) for i in out)


class _SplitView:
    def __init__(self, ds, indices):
        self.ds, self.indices = ds, indices
        self.data = [ds.data[i] for i in indices]
        self.targets = [ds.targets[i] for i in indices]

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.ds[self.indices[i]]


class EventFrames(torch.utils.data.Dataset):
    """A tonic dataset binned into time-first ``float32`` frames.

    ``ds[i] -> (x, label)`` with ``x`` of shape ``[T, C, H, W]`` for cameras (C = polarities) or ``[T, N]``
    for SHD/SSC (N = channels). ``ds.events(i)`` gives the raw tonic events.
    """

    def __init__(self, spec: EventSpec, source, location: Location, split: str, binning: Binning,
                 cache: FrameCache | None):
        self.spec, self.source, self.location, self.split = spec, source, location, split
        self.binning, self.cache = binning, cache
        self.sensor_size = downsampled_size(spec.sensor_size, binning.spatial_factor)
        shape = frame_shape(self.sensor_size, spec.has_y)
        self.step_shape: tuple[int, ...] = (shape[0] * shape[1],) if not spec.has_y else shape
        self.classes = list(spec.classes)
        keys = getattr(source, "classes", None)
        if not spec.has_y and keys is not None and len(keys):  # SHD/SSC: class names from extra/keys
            self.classes = [k.decode() if isinstance(k, bytes) else str(k) for k in np.asarray(keys).tolist()]
        self.name = spec.name
        self._len = len(source)  # tonic's SHD opens the HDF5 file on every len(); ask once

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return self._len

    def _file_of(self, index: int) -> str:
        data = getattr(self.source, "data", None)
        if data:
            return str(data[index])
        return str(self.location.path)

    def events(self, index: int) -> tuple[np.ndarray, int]:
        """Raw events and label of sample ``index`` as tonic reads them (errors name the file)."""
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name} {self.split} has {len(self)} samples; index {index} is out of range")
        try:
            events, target = self.source[index]
        except (OSError, ValueError, EOFError, KeyError, TypeError, IndexError) as e:
            f = self._file_of(index)
            raise CorruptFileError(
                f"{self.name} {self.split} sample {index}: could not read {f} ({type(e).__name__}: {e}); the file "
                f"is truncated, corrupt or of the wrong type: delete it and download again ({self.location.url})"
            ) from e
        if events.dtype.names is None or "t" not in events.dtype.names:
            raise CorruptFileError(f"{self._file_of(index)}: events without a time field ({events.dtype})")
        return events, int(np.asarray(target).item())

    def frames(self, index: int) -> tuple[np.ndarray, int]:
        """Binned frames ``[T, P, (H,) W]`` and label, from the cache when present."""
        if self.cache is not None:
            hit = self.cache.get(index)
            if hit is not None:
                return hit
        events, label = self.events(index)
        frames = bin_events(events, self.spec.sensor_size, self.binning)
        if self.cache is not None:
            self.cache.put(index, frames, label)
        return frames, label

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        frames, label = self.frames(int(index))
        x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
        return x.reshape(x.shape[0], *self.step_shape), label

    def labels(self) -> list[int]:
        targets = getattr(self.source, "targets", None)
        if targets:
            return [int(t) for t in targets]
        import h5py

        with h5py.File(self.location.path, "r") as f:
            return [int(v) for v in f["labels"][()]]


def load_events(name: str, root, split: str = "train", *, binning: Binning | None = None, download: bool = False,
                cache: bool | str | Path = True, **kw) -> EventFrames:
    """Build an :class:`EventFrames` for a registered event dataset.

    ``kw`` holds :class:`Binning` fields (``T``, ``dt``, ``event_count``, ``origin``, ``spatial_factor``,
    ``denoise_us``, ``binary``) that override the dataset's default binning, and dataset options
    (N-MNIST: ``first_saccade_only``, ``stabilize``). ``cache``: True (``<root>/.neurosynth_cache``), a
    folder, or False.
    """
    spec = EVENT_SPECS[name]
    binning_fields = set(Binning.__dataclass_fields__)
    bkw = {k: v for k, v in kw.items() if k in binning_fields}
    okw = {k: v for k, v in kw.items() if k not in binning_fields}
    unknown = set(okw) - set(spec.options)
    if unknown:
        raise ValueError(
            f"dataset '{name}' got unknown options {sorted(unknown)}; binning options are {sorted(binning_fields)}"
            + (f", dataset options are {sorted(spec.options)}" if spec.options else "")
        )
    base = binning if binning is not None else spec.default_binning
    if bkw.get("T") is not None and "dt" not in bkw and base.dt is not None and base.T is not None:
        # a new T alone on a fixed-window default keeps the covered span (SHD: 1.4 s) with dt = span / T
        bkw["dt"] = base.T * base.dt / bkw["T"]
    if bkw:
        base = base.replace(**bkw)
    source, loc = open_tonic(spec, root, split, download=download, **okw)
    if spec.validate is _validate_hsd and spec.opener is None:  # SHD/SSC (or a generated set read as SHD)
        from neurosynth.rundir import record_dataset

        record_dataset(name, split, path=str(loc.path), sha256=_file_sha256(loc.path))
    fc = None
    if cache:
        cache_root = Path(root) / ".neurosynth_cache" if cache is True else Path(cache)
        options = {k: okw.get(k, v) for k, v in spec.options.items()}
        options["n_samples"] = len(source)
        options.pop("generate_missing", None)  # whether it may generate is not part of what the frames are
        fc = FrameCache(cache_root, cache_key(name, split, options, base.key()))
    return EventFrames(spec, source, loc, split, base, fc)
