"""Binning event streams into time-first frame tensors (through tonic's ``ToFrame``).

Events are numpy structured arrays as tonic returns them: fields ``t`` (microseconds), ``x``, optionally
``y``, and ``p``. A :class:`Binning` says how to cut time into steps:

* ``dt`` and ``T``: a fixed grid of ``T`` windows of ``dt`` us starting at the origin; events at or after
  ``origin + T*dt`` are cropped (the standard SHD preprocessing: 100 steps of 14 ms).
* ``dt`` only: as many ``dt`` windows as the sample needs (variable length; the collate pads).
* ``T`` only: ``T`` equal windows spanning each sample from the origin to its last event (every event kept).
* ``event_count``: frames of that many events each (the last one may hold fewer); ``T`` crops/pads.

``origin`` is ``"zero"`` (time 0 of the recording) or ``"first"`` (the sample's first event).
``spatial_factor`` scales pixel coordinates with tonic's ``Downsample`` (0.25 maps 128x128 to 32x32);
``denoise_us`` drops isolated events with tonic's ``Denoise``. ``binary`` clips counts to 1.

Without cropping, ``Denoise`` or ``binary``, the sum of the frames equals the number of events.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

ORIGINS = ("zero", "first")


@dataclass(frozen=True)
class Binning:
    """How an event stream becomes a ``[T, ...]`` frame tensor. All times in microseconds."""

    T: int | None = None
    dt: float | None = None
    event_count: int | None = None
    origin: str = "first"
    spatial_factor: float = 1.0
    denoise_us: float | None = None
    binary: bool = False

    def __post_init__(self):
        if self.T is not None and (not isinstance(self.T, int | np.integer) or self.T < 1):
            raise ValueError(f"Binning.T must be a positive integer number of time steps, got {self.T!r}")
        if self.dt is not None and not (self.dt > 0 and math.isfinite(self.dt)):
            raise ValueError(f"Binning.dt must be a positive bin width in microseconds, got {self.dt!r}")
        if self.event_count is not None and (int(self.event_count) != self.event_count or self.event_count < 1):
            raise ValueError(f"Binning.event_count must be a positive integer, got {self.event_count!r}")
        if self.event_count is not None and self.dt is not None:
            raise ValueError("Binning: give either dt (time windows) or event_count (events per frame), not both")
        if self.T is None and self.dt is None and self.event_count is None:
            raise ValueError("Binning needs T (number of steps), dt (window in us) or event_count; none was given")
        if self.origin not in ORIGINS:
            raise ValueError(f"Binning.origin must be one of {ORIGINS}, got {self.origin!r}")
        if not (0 < self.spatial_factor <= 1):
            raise ValueError(f"Binning.spatial_factor must be in (0, 1], got {self.spatial_factor!r}")
        if self.denoise_us is not None and not self.denoise_us > 0:
            raise ValueError(f"Binning.denoise_us must be a positive filter time in us, got {self.denoise_us!r}")

    @property
    def mode(self) -> str:
        if self.event_count is not None:
            return "count"
        if self.dt is not None:
            return "time"
        return "bins"

    @property
    def fixed_length(self) -> bool:
        """True when every sample has exactly ``T`` steps."""
        return self.T is not None

    def replace(self, **kw) -> Binning:
        return dataclasses.replace(self, **kw)

    def key(self) -> dict:
        """Every parameter, JSON-ready (the cache key is built from this)."""
        return dataclasses.asdict(self)


def downsampled_size(sensor_size: tuple[int, int, int], spatial_factor: float) -> tuple[int, int, int]:
    """Sensor size ``(W, H, P)`` after tonic's ``Downsample(spatial_factor)`` (coordinates are floored)."""
    w, h, p = sensor_size
    if spatial_factor == 1:
        return (int(w), int(h), int(p))

    def scale(n: int) -> int:  # tonic floors x * factor, so the largest index is floor((n - 1) * factor)
        return n if n == 1 else int(math.floor((n - 1) * spatial_factor)) + 1

    return (scale(int(w)), scale(int(h)), int(p))


def frame_shape(sensor_size: tuple[int, int, int], has_y: bool) -> tuple[int, ...]:
    """Per-step shape tonic's ``ToFrame`` produces: ``(P, H, W)`` for cameras, ``(P, W)`` without ``y``."""
    w, h, p = sensor_size
    return (p, h, w) if has_y else (p, w)


def _prepare(events: np.ndarray, sensor_size, binning: Binning):
    import tonic.transforms as tt

    names = events.dtype.names or ()
    for field in ("t", "x", "p"):
        if field not in names:
            raise ValueError(f"events need fields t, x, p (and y for cameras); got fields {names}")
    events = np.array(events, copy=True)
    t = events["t"]
    if t.size > 1 and np.any(np.diff(t) < 0):
        events = events[np.argsort(t, kind="stable")]
    if binning.denoise_us is not None and events.size:
        events = tt.Denoise(filter_time=binning.denoise_us)(events)
    if binning.spatial_factor != 1:
        events = tt.Downsample(spatial_factor=binning.spatial_factor)(events)
        sensor_size = downsampled_size(sensor_size, binning.spatial_factor)
    return events, tuple(int(s) for s in sensor_size)


def bin_events(events: np.ndarray, sensor_size: tuple[int, int, int], binning: Binning) -> np.ndarray:
    """Bin ``events`` into ``float32`` frames ``[T, P, H, W]`` (or ``[T, P, W]`` without ``y``).

    ``sensor_size`` is tonic's ``(W, H, P)`` before downsampling. Pure function (no randomness).
    """
    from tonic.transforms import ToFrame

    events, size = _prepare(events, sensor_size, binning)
    has_y = "y" in events.dtype.names
    step_shape = frame_shape(size, has_y)
    t = events["t"].astype(np.float64)
    origin = 0.0 if binning.origin == "zero" else (float(t[0]) if t.size else 0.0)
    n_steps: int | None = binning.T
    if events.size == 0:
        return np.zeros((n_steps or 1, *step_shape), dtype=np.float32)
    if size[2] == 1:
        events["p"] = 0  # single-polarity sensor (SHD): tonic needs p == 0
    t_last = float(t[-1])
    if binning.mode == "count":
        frames = ToFrame(sensor_size=size, event_count=int(binning.event_count), include_incomplete=True)(events)
    else:
        if binning.mode == "time":
            dt = float(binning.dt)
            if n_steps is None:
                n_steps = int(math.floor((t_last - origin) / dt)) + 1
        else:  # T equal bins from the origin to just past the last event
            dt = (t_last - origin + 1.0) / n_steps
        # Replace each time stamp by its integer bin index so that ToFrame's windows [k, k+1) are exact
        # (no floating-point boundary can count an event twice or drop it).
        step = np.floor((t - origin) / dt)
        events = events[step >= 0]
        events["t"] = step[step >= 0].astype(events["t"].dtype)
        if events.size == 0:
            return np.zeros((n_steps, *step_shape), dtype=np.float32)
        frames = ToFrame(
            sensor_size=size, time_window=1, start_time=0, end_time=n_steps, include_incomplete=True
        )(events)
    frames = np.asarray(frames, dtype=np.float32)
    if n_steps is not None:
        frames = _crop_or_pad(frames, n_steps)
    if binning.binary:
        np.minimum(frames, 1.0, out=frames)
    return frames


def _crop_or_pad(frames: np.ndarray, n: int) -> np.ndarray:
    if frames.shape[0] == n:
        return frames
    if frames.shape[0] > n:
        return frames[:n]
    pad = np.zeros((n - frames.shape[0], *frames.shape[1:]), dtype=frames.dtype)
    return np.concatenate([frames, pad], axis=0)
