"""Neuromorphic Fashion-MNIST (``nfashion_mnist``): Fashion-MNIST seen by the simulated event camera of
:mod:`.event_camera` with the N-MNIST protocol (Orchard et al. 2015): the sensor makes three ~100 ms saccades
along a triangle over each 28x28 image shown on a monitor, giving events on a 34x34 sensor (tonic's N-MNIST
format: ``x, y, t`` in microseconds, ``p`` 1 = ON). The camera is :data:`.event_camera.NMNIST_CAMERA` (v2e's
defaults with contrast thresholds calibrated so that real MNIST digits give real N-MNIST's events per sample);
``camera={...}`` changes single settings of it.

The events are generated once per (split, number of samples, seed, camera settings) and stored in one file
``<root>/NFashionMNIST/nfashion_mnist-<split>-n<N>-s<seed>-<hash>.nsev``; ``root=None`` means
``$NEUROSYNTH_DATA`` (default ``~/.cache/neurosynth``). Generation shows a progress bar, writes a temp
file and renames it (an interrupted run leaves nothing behind) and is reproducible: the same settings give
the same bytes (same SHA-256) on the same platform. On first use in a process the file's payload checksum
is verified; a truncated or corrupt file is reported, deleted and rebuilt, never half-used.

Samples are read through the same :class:`EventFrames` binning, denoising and frame cache as N-MNIST and
DVS-Gesture (``load("nfashion_mnist", T=10, denoise_us=...)``).

File layout (little endian): ``b"NSEVT01\\n"``, a uint64 header length, a JSON header (dataset, split,
settings, sensor size, column offsets, payload SHA-256), zero padding to 64 bytes, then the columns
``labels`` (uint8 [N]), ``offsets`` (int64 [N+1]), ``xyp`` (uint16 [E]: ``(y * 34 + x) * 2 + p``) and
``t`` (uint32 [E], microseconds).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
import warnings
from pathlib import Path

import numpy as np

from .errors import CorruptFileError, DatasetNotFoundError
from .event_camera import EVENT_DTYPE, NMNIST_CAMERA, EventCameraConfig, Sensor, saccade_events
from .location import Location

MAGIC = b"NSEVT01\n"
FORMAT = 3  # 2: v2e shot-noise semantics and defaults (leak 0.01 Hz, shot noise 0.001 Hz); 3: thresholds 0.44
#            calibrated on N-MNIST, v2e's photoreceptor low-pass (300 Hz), shot noise per threshold (v2e)
SENSOR = (34, 34, 2)
DEFAULT_SAMPLES = {"train": 4000, "test": 1000}
GEN_BATCH = 64  # fixed, so the bytes never depend on how the work was split
FASHION_SPLIT = {"train": "train", "test": "test"}


def user_root() -> Path:
    from .fashion import user_data_dir

    return user_data_dir()


def camera_config(camera: dict | None) -> EventCameraConfig:
    """The camera of the N-MNIST protocol (:data:`~.event_camera.NMNIST_CAMERA`: v2e's defaults with thresholds
    calibrated on real N-MNIST recordings), with the given settings changed."""
    return EventCameraConfig(**{**NMNIST_CAMERA, **(camera or {})})


def settings(split: str, n_samples: int | None, seed: int, camera: dict | None, frame_us: float,
             black_level: float) -> dict:
    cfg = camera_config(camera)
    n = DEFAULT_SAMPLES[split] if n_samples is None else n_samples
    return {"format": FORMAT, "dataset": "nfashion_mnist", "split": split, "n_samples": int(n), "seed": int(seed),
            "camera": cfg.key(), "frame_us": float(frame_us), "black_level": float(black_level),
            "protocol": "N-MNIST saccades (0,0)->(3,6)->(6,0)->(0,0) px, 100 ms each, 28x28 -> 34x34"}


def file_path(root: Path, s: dict) -> Path:
    blob = json.dumps(s, sort_keys=True).encode()
    h = hashlib.sha256(blob).hexdigest()[:12]
    return Path(root) / "NFashionMNIST" / f"nfashion_mnist-{s['split']}-n{s['n_samples']}-s{s['seed']}-{h}.nsev"


# ---------------------------------------------------------------- writing

def _columns(events: list[np.ndarray], labels: np.ndarray) -> dict[str, np.ndarray]:
    counts = np.array([len(e) for e in events], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    if events:
        allev = np.concatenate(events)
    else:
        allev = np.zeros(0, EVENT_DTYPE)
    W = SENSOR[0]
    xyp = ((allev["y"].astype(np.int64) * W + allev["x"]) * 2 + allev["p"]).astype(np.uint16)
    if allev.size and allev["t"].max() >= 2**32:
        raise ValueError("event times beyond 2**32 us do not fit the file format")
    return {"labels": labels.astype(np.uint8), "offsets": offsets, "xyp": xyp, "t": allev["t"].astype(np.uint32)}


def write_event_file(path: Path, s: dict, columns: dict[str, np.ndarray]) -> Path:
    """Write the columns with their header to ``path`` atomically (temp file, fsync, rename)."""
    from neurosynth.io import atomic_write

    layout, pos = {}, 0
    for name in ("labels", "offsets", "xyp", "t"):
        arr = np.ascontiguousarray(columns[name])
        layout[name] = {"offset": pos, "count": int(arr.size), "dtype": arr.dtype.str}
        pos += arr.nbytes
        pos += (-pos) % 8
    digest = hashlib.sha256()
    for name in ("labels", "offsets", "xyp", "t"):
        digest.update(np.ascontiguousarray(columns[name]).tobytes())
    header = {**s, "sensor_size": list(SENSOR), "n": int(columns["labels"].size), "columns": layout,
              "payload_bytes": pos, "payload_sha256": digest.hexdigest()}
    hb = json.dumps(header, sort_keys=True).encode()
    start = len(MAGIC) + 8 + len(hb)
    pad = (-start) % 64
    with atomic_write(path, "wb") as f:
        f.write(MAGIC + struct.pack("<Q", len(hb) + pad) + hb + b" " * pad)
        for name in ("labels", "offsets", "xyp", "t"):
            arr = np.ascontiguousarray(columns[name])
            f.write(arr.tobytes())
            f.write(b"\0" * ((-arr.nbytes) % 8))
    return path


# ---------------------------------------------------------------- reading

_VERIFIED: set[tuple] = set()
_VLOCK = threading.Lock()


class EventFile:
    """A generated ``.nsev`` file, memory-mapped: ``ef[i] -> (events, label)`` in tonic's format."""

    def __init__(self, path: Path, verify: bool = True):
        self.path = Path(path)
        try:
            size = self.path.stat().st_size
            with open(self.path, "rb") as f:
                magic = f.read(len(MAGIC))
                if magic != MAGIC:
                    raise CorruptFileError(f"{self.path} is not a neurosynth event file (magic {magic!r})")
                (hlen,) = struct.unpack("<Q", f.read(8))
                if hlen > 1 << 20:
                    raise CorruptFileError(f"{self.path}: header length {hlen} is implausible")
                self.header = json.loads(f.read(hlen).decode())
        except (OSError, struct.error, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CorruptFileError(f"{self.path}: unreadable header ({type(e).__name__}: {e})") from e
        self.data_start = len(MAGIC) + 8 + hlen
        h = self.header
        try:
            want = self.data_start + int(h["payload_bytes"])
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptFileError(f"{self.path}: malformed header ({type(e).__name__}: {e})") from e
        if size != want:
            raise CorruptFileError(f"{self.path} is {size} bytes but its header describes {want}: truncated or corrupt")
        try:
            mm = np.memmap(self.path, dtype=np.uint8, mode="r", offset=self.data_start, shape=(h["payload_bytes"],))
            self.cols = {}
            for name in ("labels", "offsets", "xyp", "t"):
                c = h["columns"][name]
                dt = np.dtype(c["dtype"])
                self.cols[name] = mm[c["offset"]: c["offset"] + c["count"] * dt.itemsize].view(dt)
            n = int(h["n"])
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptFileError(f"{self.path}: malformed header ({type(e).__name__}: {e})") from e
        self.labels = np.asarray(self.cols["labels"]).astype(np.int64)
        offs = self.cols["offsets"]
        if (len(self.labels) != n or len(offs) != n + 1 or offs[0] != 0 or offs[-1] != len(self.cols["t"])
                or (np.diff(offs) < 0).any() or (self.labels.size and self.labels.max() > 9)):
            raise CorruptFileError(f"{self.path}: inconsistent columns (labels/offsets/events); corrupt file")
        if verify:
            self.verify()

    def verify(self) -> None:
        """Check the payload against the SHA-256 in the header (once per process and file version)."""
        st = self.path.stat()
        key = (str(self.path.resolve()), st.st_size, st.st_mtime_ns)
        with _VLOCK:
            if key in _VERIFIED:
                return
        digest = hashlib.sha256()
        for name in ("labels", "offsets", "xyp", "t"):
            digest.update(np.ascontiguousarray(self.cols[name]).tobytes())
        if digest.hexdigest() != self.header["payload_sha256"]:
            raise CorruptFileError(f"{self.path}: payload checksum mismatch; the file is corrupt")
        with _VLOCK:
            _VERIFIED.add(key)

    def __len__(self) -> int:
        return len(self.labels)

    def events(self, index: int) -> np.ndarray:
        a, b = int(self.cols["offsets"][index]), int(self.cols["offsets"][index + 1])
        xyp = self.cols["xyp"][a:b].astype(np.int64)
        ev = np.empty(b - a, dtype=EVENT_DTYPE)
        ev["p"] = xyp % 2
        pix = xyp // 2
        ev["x"], ev["y"] = pix % SENSOR[0], pix // SENSOR[0]
        ev["t"] = self.cols["t"][a:b]
        return ev


class NFashionSource:
    """The tonic-dataset-like source that :class:`EventFrames` bins: ``src[i] -> (events, label)``."""

    def __init__(self, ef: EventFile):
        self.ef = ef
        self.targets = [int(v) for v in ef.labels]
        self.data = None

    def __len__(self) -> int:
        return len(self.ef)

    def __getitem__(self, index: int):
        return self.ef.events(index), self.targets[index]


def generated_files(root, split: str, corrupt: list | None = None) -> list[tuple[Path, dict]]:
    """The generated files of ``split`` under ``root`` (newest first) with their headers; unreadable ones are
    skipped (and appended to ``corrupt`` as ``CorruptFileError``s when a list is given)."""
    root = Path(os.path.expanduser(str(root))) if root is not None else user_root()
    out = []
    folder = root / "NFashionMNIST"
    if not folder.is_dir():
        return out
    for p in sorted(folder.glob(f"nfashion_mnist-{split}-*.nsev"), key=lambda q: q.stat().st_mtime, reverse=True):
        try:
            out.append((p, EventFile(p, verify=False).header))
        except CorruptFileError as e:
            if corrupt is not None:
                corrupt.append(e)
    return out


def generate(root, split: str = "train", n_samples: int | None = None, seed: int = 0, camera: dict | None = None,
             frame_us: float = 2000.0, black_level: float = 0.1, fashion_root=None, progress: bool = True,
             rebuild: bool = False, generate_missing: bool = True) -> Path:
    """Generate (if not already there and valid) the event file for ``split``; returns its path.
    ``generate_missing=False`` (inspecting: ``data info/plot``): a missing or corrupt file is an error instead."""
    if split not in DEFAULT_SAMPLES:
        raise ValueError(f"dataset 'nfashion_mnist' has splits {list(DEFAULT_SAMPLES)}, not '{split}'")
    if n_samples is not None and (isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1):
        raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}")
    s = settings(split, n_samples, seed, camera, frame_us, black_level)
    root = Path(os.path.expanduser(str(root))) if root is not None else user_root()
    path = file_path(root, s)
    if path.exists() and not rebuild:
        try:
            EventFile(path)
            return path
        except CorruptFileError as e:
            if not generate_missing:
                raise CorruptFileError(f"{e}; delete it, and neurosynth.datasets.load('nfashion_mnist', ...) "
                                       "generates it again") from e
            warnings.warn(f"{e}; deleting it and generating the events again", stacklevel=2)
            path.unlink(missing_ok=True)
    if not generate_missing:
        raise DatasetNotFoundError(f"nfashion_mnist {split} ({s['n_samples']} samples, seed {seed}) is not generated "
                                   f"yet under {root / 'NFashionMNIST'}; neurosynth.datasets.load('nfashion_mnist', "
                                   f"'{root}', '{split}') generates it")
    from tqdm.auto import tqdm

    from .fashion import load_fashion_mnist

    fm = load_fashion_mnist(fashion_root, FASHION_SPLIT[split])
    n = s["n_samples"]
    if n > len(fm):
        raise ValueError(f"n_samples={n} but Fashion-MNIST {split} has {len(fm)} images")
    images = fm.images[:n, 0].numpy()
    labels = fm.targets[:n].numpy()
    sensor = Sensor(SENSOR[1], SENSOR[0], camera_config(camera))
    events: list[np.ndarray] = []
    base = np.random.SeedSequence([int(seed), 0 if split == "train" else 1])
    seeds = base.generate_state(n, dtype=np.uint64)
    with tqdm(total=n, desc=f"nfashion_mnist {split}: simulating the event camera", unit="img",
              disable=not progress, leave=False) as bar:
        for i in range(0, n, GEN_BATCH):
            j = slice(i, min(i + GEN_BATCH, n))
            events += saccade_events(images[j], sensor, [int(v) for v in seeds[j]], frame_us=frame_us,
                                     black_level=black_level)
            bar.update(j.stop - j.start)
    return write_event_file(path, s, _columns(events, labels))


def open_nfashion(spec, root, split: str, *, download: bool = False, n_samples: int | None = None, seed: int = 0,
                  camera: dict | None = None, fashion_root=None, progress: bool = True, generate_missing: bool = True,
                  **_):
    """The :class:`EventFrames` source for ``split`` (generating the events first if needed and allowed)."""
    if split not in spec.splits:
        raise ValueError(f"dataset '{spec.name}' has splits {list(spec.splits)}, not '{split}'")
    path = generate(root, split, n_samples, seed, camera, fashion_root=fashion_root, progress=progress,
                    generate_missing=generate_missing)
    loc = Location(path, (path.name,), "generated from Fashion-MNIST by neurosynth.datasets.nfashion", True)
    return NFashionSource(EventFile(path)), loc


def existing_settings(root, split: str) -> dict:
    """``load()`` options matching the newest generated file of ``split`` under ``root`` (so inspecting or plotting
    never starts a generation of the default size when a smaller one exists); ``{}`` when none exists."""
    corrupt: list = []
    files = generated_files(root, split, corrupt)
    if not files and corrupt:  # never "not generated yet" (and never a silent generation) for a damaged file
        raise CorruptFileError(f"{corrupt[0]}; delete it, and neurosynth.datasets.load('nfashion_mnist', ...) "
                               "generates it again")
    if not files:
        return {}
    h = files[0][1]
    return {"n_samples": h["n_samples"], "seed": h["seed"], "camera": h["camera"]}


def info_lines(root) -> list[str]:
    """``neurosynth data info nfashion_mnist``: what was generated under ``root``, read from the files (nothing
    is generated)."""
    root = Path(os.path.expanduser(str(root))) if root is not None else user_root()
    lines = []
    for split in ("train", "test"):
        corrupt: list = []
        files = generated_files(root, split, corrupt)
        for e in corrupt:
            lines.append(f"  {split}: CORRUPT - {e}; delete it to generate it again")
        if not files and not corrupt:
            lines.append(f"  {split}: not generated yet under {root}/NFashionMNIST; neurosynth.datasets.load("
                         f"'nfashion_mnist', '{root}', '{split}') converts the first {DEFAULT_SAMPLES[split]} "
                         f"Fashion-MNIST {split} images (n_samples=... to change; needs Fashion-MNIST: apt-get "
                         "install -y dataset-fashion-mnist)")
            continue
        for path, h in files:
            ef = EventFile(path)
            counts = np.diff(np.asarray(ef.cols["offsets"]))
            hist = np.bincount(ef.labels, minlength=10)
            lines.append(f"  {split}: {len(ef)} samples in {path} ({path.stat().st_size / 1e6:.1f} MB; seed "
                         f"{h['seed']}, sha256 of the payload {h['payload_sha256'][:16]}...)")
            lines.append(f"    sensor size (W, H, P): {tuple(h['sensor_size'])}; events/sample mean "
                         f"{counts.mean():.0f} (min {counts.min()}, max {counts.max()}); duration 0.3 s (three "
                         "100 ms saccades)")
            lines.append(f"    samples per class min {hist.min()}, max {hist.max()}; camera {h['camera']}")
    return lines
