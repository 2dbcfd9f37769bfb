"""Host-side input pipeline of the audio recipes (``examples/train_shd.py``): binning, onset alignment and
training-time augmentation for SHD-layout spike files (SHD, the generated spoken digits).

An :class:`AudioInput` says how a sample's spikes become the ``[T, C]`` frames the network (and Lava) sees:

* ``align="none"``: ``steps`` bins of ``dt_ms`` from t = 0 (SHD's standard preprocessing: 100 x 14 ms);
* ``align="onset"``: the word's onset is found on the spike counts (the first ``dt_ms`` bin whose 10 ms moving
  sum of the population count exceeds ``onset_frac`` of the sample's peak), and the window starts ``pre_ms`` before
  it. The first *spike* is no onset: the cochlea's spontaneous activity fires from t = 0 on;
* ``channels``: the 700 cochlea channels summed in groups (140 = groups of 5, as Hammouamri et al. and Bittar &
  Garner do on SHD), through the dataset's ``spatial_factor`` binning;
* ``binary``: counts clipped to 1 after the alignment (the Loihi model's input spikes);
* ``levels`` (with ``binary``): each bin's count coded by ``levels`` binary lines instead, line ``k`` (1-based)
  firing when the count is at least ``k`` (a thermometer code: binary spikes that keep counts up to ``levels``).
  The frames are ``[T, levels * channels]``, level-major: block ``k - 1`` holds line ``k`` of every channel;
* ``log1p`` (counts only): each bin's count ``c`` becomes ``log(1 + c)`` (a grouped 20 ms bin holds up to ~30
  spikes, the median non-empty one 2), the compression the GRU baseline's inputs get.

The same object, stored in a run's manifest (``config["input"]``), rebuilds the test inputs for the Lava check
(``--verify-run``) and ``neurosynth energy``: :func:`load_audio`. :class:`Augment` shifts training samples in time
and along the tonotopic axis (voices differ by pitch and formants), with an explicit generator.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

ALIGNS = ("none", "onset")
#: the span binned before an onset-aligned window is cut out of it (longer than any generated utterance)
SPAN_MS = 2500.0
N_CHANNELS = 700


@dataclass(frozen=True)
class AudioInput:
    """How spikes become frames (module docstring). Times in milliseconds."""

    dt_ms: float = 14.0
    window_ms: float = 1400.0
    channels: int = N_CHANNELS
    align: str = "none"
    onset_frac: float = 0.1
    pre_ms: float = 30.0
    binary: bool = False
    levels: int = 1
    log1p: bool = False

    def __post_init__(self):
        if self.log1p and self.binary:
            raise ValueError("log1p compresses spike counts; binary input has none (the Loihi model's input is "
                             "binary: leave log1p off)")
        if not (isinstance(self.levels, int) and not isinstance(self.levels, bool) and 1 <= self.levels <= 16):
            raise ValueError(f"levels must be an integer in 1..16; got {self.levels!r}")
        if self.levels > 1 and not self.binary:
            raise ValueError(f"levels={self.levels} codes counts as binary lines; it needs binary input "
                             f"(the Loihi model's)")
        if not (self.dt_ms > 0 and math.isfinite(self.dt_ms)):
            raise ValueError(f"dt_ms must be a positive bin width in ms; got {self.dt_ms}")
        if not (self.window_ms >= self.dt_ms and math.isfinite(self.window_ms)):
            raise ValueError(f"window_ms must be at least one bin ({self.dt_ms} ms); got {self.window_ms}")
        if not 1 <= int(self.channels) <= N_CHANNELS:
            raise ValueError(f"channels must be in 1..{N_CHANNELS}; got {self.channels}")
        if self.align not in ALIGNS:
            raise ValueError(f"align must be one of {ALIGNS}; got {self.align!r}")
        if not 0 <= self.onset_frac < 1:
            raise ValueError(f"onset_frac must be in [0, 1); got {self.onset_frac}")
        if not (0 <= self.pre_ms < self.window_ms):
            raise ValueError(f"pre_ms must be in [0, window_ms); got {self.pre_ms}")

    @property
    def steps(self) -> int:
        """Time steps the network sees."""
        return max(1, int(round(self.window_ms / self.dt_ms)))

    @property
    def width(self) -> int:
        """Input lines per time step: ``levels * channels``."""
        return int(self.levels) * int(self.channels)

    @property
    def spatial_factor(self) -> float:
        return int(self.channels) / N_CHANNELS

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> AudioInput:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def replace(self, **kw) -> AudioInput:
        return dataclasses.replace(self, **kw)


# ----------------------------------------------------------------------------- pure functions
def onset_step(pop: np.ndarray, frac: float, smooth: int) -> int:
    """Index of the first step at which the ``smooth``-step moving sum of the population count ``pop [T]`` exceeds
    ``frac`` times its peak (the start of that sum's window); 0 for a silent sample."""
    pop = np.asarray(pop, dtype=np.float64)
    s = np.convolve(pop, np.ones(int(smooth)), mode="full")[: pop.size] if smooth > 1 else pop
    peak = float(s.max()) if s.size else 0.0
    if peak <= 0:
        return 0
    return max(int(np.argmax(s > frac * peak)) - (int(smooth) - 1), 0)


def align_frames(frames: np.ndarray, inp: AudioInput) -> np.ndarray:
    """Cut the window of ``inp`` out of frames ``[T_span, C]`` binned from t = 0 (zero-padded at the end)."""
    frames = np.asarray(frames, dtype=np.float32)
    steps = inp.steps
    start = 0
    if inp.align == "onset":
        smooth = max(1, int(round(10.0 / inp.dt_ms)))
        start = max(onset_step(frames.sum(axis=1), inp.onset_frac, smooth) - int(round(inp.pre_ms / inp.dt_ms)), 0)
    out = np.zeros((steps, *frames.shape[1:]), dtype=np.float32)
    part = frames[start:start + steps]
    out[: part.shape[0]] = part
    if inp.binary and inp.levels > 1:
        return thermometer(out, inp.levels)
    if inp.binary:
        np.minimum(out, 1.0, out=out)
    return out


def thermometer(counts: np.ndarray, levels: int) -> np.ndarray:
    """Counts ``[..., C]`` as ``levels`` binary lines per channel, ``[..., levels * C]`` level-major: line ``k``
    (block ``k - 1``) is 1 where the count is at least ``k``. Summing the blocks gives ``min(count, levels)``."""
    counts = np.asarray(counts)
    return np.concatenate([(counts >= k) for k in range(1, int(levels) + 1)], axis=-1).astype(np.float32)


def stretch_frames(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``x [T, C]`` played ``factor`` times slower (> 1) or faster (< 1) from its first step: output step ``t`` is
    input step ``floor(t / factor)`` (nearest earlier frame; per-bin counts keep their size, so a slower speaker's
    word lasts longer at the same firing rates), zero where that falls past the end."""
    T = x.shape[0]
    src = torch.floor(torch.arange(T, dtype=torch.float64) / float(factor)).long()
    out = torch.zeros_like(x)
    keep = src < T
    out[keep] = x[src[keep]]
    return out


def stretch_speed(stretch: float, u: float) -> float:
    """The playback speed factor for a uniform draw ``u`` in [0, 1): log-uniform in ``[1 / (1 + stretch),
    1 + stretch]``."""
    return (1.0 + float(stretch)) ** (2.0 * float(u) - 1.0)


def shift_frames(x: torch.Tensor, dt: int, dc: int) -> torch.Tensor:
    """``x [T, C]`` moved by ``dt`` steps in time and ``dc`` channels (zero fill, nothing wraps around)."""
    out = torch.zeros_like(x)
    T, C = x.shape
    if abs(dt) >= T or abs(dc) >= C:
        return out
    src_t = slice(max(-dt, 0), T - max(dt, 0))
    dst_t = slice(max(dt, 0), T - max(-dt, 0))
    src_c = slice(max(-dc, 0), C - max(dc, 0))
    dst_c = slice(max(dc, 0), C - max(-dc, 0))
    out[dst_t, dst_c] = x[src_t, src_c]
    return out


# ----------------------------------------------------------------------------- datasets
class Aligned(Dataset):
    """``(x [steps, C], y)`` of a dataset binned from t = 0 over :data:`SPAN_MS`, cut by :func:`align_frames`
    (computed once per sample and kept)."""

    def __init__(self, source, inp: AudioInput):
        self.source, self.inp = source, inp
        self._memo: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int):
        x, y = self.source[i][:2]
        if i not in self._memo:
            self._memo[i] = torch.from_numpy(align_frames(np.asarray(x), self.inp))
        return self._memo[i], int(y)


class Augment(Dataset):
    """Training-time augmentation: every sample shifted by a uniform ``-shift..shift`` steps in time and
    ``-chan_shift..chan_shift`` channels (:func:`shift_frames`) and, with ``stretch`` s > 0, first played at a speed
    drawn log-uniformly in ``[1 / (1 + s), 1 + s]`` (:func:`stretch_frames`; speakers differ in speaking rate), all
    drawn from ``generator``."""

    def __init__(self, source, shift: int, chan_shift: int, generator: torch.Generator, stretch: float = 0.0):
        self.source, self.shift, self.chan_shift, self.generator = source, int(shift), int(chan_shift), generator
        if not (float(stretch) >= 0 and math.isfinite(float(stretch))):
            raise ValueError(f"stretch must be a finite number >= 0; got {stretch}")
        self.stretch = float(stretch)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int):
        x, y = self.source[i][:2]
        if self.stretch:
            u = float(torch.rand((), generator=self.generator, dtype=torch.float64))
            x = stretch_frames(torch.as_tensor(x), stretch_speed(self.stretch, u))
        dt = int(torch.randint(-self.shift, self.shift + 1, (1,), generator=self.generator)) if self.shift else 0
        dc = (int(torch.randint(-self.chan_shift, self.chan_shift + 1, (1,), generator=self.generator))
              if self.chan_shift else 0)
        return (shift_frames(torch.as_tensor(x), dt, dc) if dt or dc else x), y


def load_audio(dataset: str, root, split: str, inp: AudioInput, **load_kw):
    """The ``split`` of an SHD-layout ``dataset`` as ``(x [inp.steps, C], y)`` samples prepared by ``inp``."""
    from neurosynth.datasets import load

    if inp.align == "none":
        ds = load(dataset, root, split, T=inp.steps, dt=inp.dt_ms * 1000.0, origin="zero",
                  spatial_factor=inp.spatial_factor, binary=inp.binary, **load_kw)
    else:
        span = max(inp.steps, int(math.ceil(SPAN_MS / inp.dt_ms)))
        ds = Aligned(load(dataset, root, split, T=span, dt=inp.dt_ms * 1000.0, origin="zero",
                          spatial_factor=inp.spatial_factor, **load_kw), inp)
    return Log1p(ds) if inp.log1p else ds


class Log1p(Dataset):
    """``(log(1 + x), y)`` of a dataset of spike-count frames."""

    def __init__(self, source):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int):
        x, y = self.source[i][:2]
        return torch.log1p(torch.as_tensor(x, dtype=torch.float32)), y


def load_run_split(cfg: dict, split: str, *, data_root=None, steps: int | None = None, binary: bool = False):
    """The ``split`` of the dataset an ``examples/train_shd.py`` run was trained on, prepared as the run's manifest
    ``config`` records: its :class:`AudioInput` (runs since issue 21: window, binning, channels, onset alignment),
    or ``T`` bins from t = 0 for older runs (binary for ``--loihi`` runs). ``steps``: the same window cut into that
    many bins instead; ``binary``: clip to binary spikes even if the run saw counts; ``data_root``: another folder
    holding the same dataset."""
    from neurosynth.datasets import load

    dataset, root = cfg.get("dataset", "shd"), data_root or cfg["data_root"]
    binary = bool(binary) or bool(cfg.get("loihi"))
    if cfg.get("input"):
        inp = AudioInput.from_dict(cfg["input"])
        if steps:
            inp = inp.replace(dt_ms=inp.window_ms / int(steps))
        if binary and not inp.binary:
            inp = inp.replace(binary=True, log1p=False)
        return load_audio(dataset, root, split, inp)
    return load(dataset, root, split, T=int(steps or cfg["T"]), binary=binary)

