"""Audio -> spikes: a gammatone cochlea with spiking hair-cell / bushy-cell units, in the SHD event format.

Stages (all vectorised over channels; the only Python loop runs over the output time steps):

1. **Level.** The waveform is resampled to ``fs`` (16 kHz) and scaled to a fixed RMS over its voiced part
   (the frames above -40 dB of the loudest), so a file's recording level does not change its spikes.
2. **Basilar membrane.** ``n_channels`` (700, like SHD) 4th-order gammatone filters
   (``scipy.signal.gammatone``, Slaney's IIR design) with centre frequencies equally spaced on the ERB-number
   scale of Glasberg & Moore (1990) between ``f_min`` and ``f_max``. Filtering is done in the frequency
   domain: one FFT of the signal times the exact IIR frequency response of every channel, one inverse FFT.
   The signal is zero-padded by ``pad_s`` so the ringing of the lowest channels does not wrap around.
3. **Inner hair cell.** Half-wave rectification, power-law compression (``|x|^0.3``), and a block mean down to
   the unit time step ``dt`` (0.25 ms; a low-pass that removes phase locking above ~2 kHz, roughly as the
   hair-cell membrane does).
4. **Synapse.** A depleting transmitter pool per channel (a one-pool simplification of Meddis 1986): the
   release is ``gain * drive * q``, the pool ``q`` recovers with ``tau_recovery``; this gives strong onset
   responses and adaptation to steady sounds.
5. **Bushy cell.** One leaky integrate-and-fire unit per channel (``tau_m``, threshold 1, reset to 0,
   absolute refractory period), with a small seeded Gaussian membrane noise. Its spikes are the output:
   ``(times in s, units)`` sorted by time, unit 0 = lowest centre frequency.

:func:`encode_waveform` runs it on an array, :func:`encode_wav` on a WAV file, :func:`write_shd_h5` writes
samples in the exact SHD HDF5 layout. See ``docs/datasets.md`` for how this differs from the model Cramer et
al. (2022) used to build SHD.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path

import numpy as np

from .errors import CorruptFileError


@dataclasses.dataclass(frozen=True)
class CochleaConfig:
    """Parameters of the cochlea (defaults: 700 channels like SHD, 50 Hz - 7 kHz, 0.25 ms steps)."""

    n_channels: int = 700
    f_min: float = 50.0
    f_max: float = 7000.0
    fs: int = 16000  # filterbank sample rate (Hz); the input is resampled to it
    dt: float = 0.5e-3  # time step of the hair-cell / bushy-cell stages (s); fs * dt must be an integer
    rms: float = 0.05  # the voiced part of the input is scaled to this RMS
    compression: float = 0.25  # hair-cell power law
    release_gain: float = 20.0  # transmitter release rate per unit of compressed drive (1/s)
    tau_recovery: float = 0.06  # transmitter pool recovery (s)
    release_max: float = 0.3  # at most this fraction of the pool is released per step (s^-1 * dt)
    tau_m: float = 2e-3  # bushy-cell membrane time constant (s)
    weight: float = 4.0  # synaptic weight: a steady drive * pool above 1 / weight makes the unit fire
    refractory: float = 1e-3  # absolute refractory period (s)
    noise: float = 0.0  # std of a seeded Gaussian membrane noise per step (0: deterministic spikes)
    pad_s: float = 0.25  # zero padding against circular wrap-around of the FFT filtering

    def __post_init__(self):
        if self.n_channels < 1 or self.n_channels > 65535:
            raise ValueError(f"n_channels must be in [1, 65535] (uint16 unit ids); got {self.n_channels}")
        if not 0 < self.f_min < self.f_max < self.fs / 2:
            raise ValueError(f"need 0 < f_min < f_max < fs/2; got f_min={self.f_min}, f_max={self.f_max}, "
                             f"fs={self.fs}")
        decim = self.fs * self.dt
        if decim < 1 or abs(decim - round(decim)) > 1e-9:
            raise ValueError(f"fs * dt must be a positive integer; got {self.fs} * {self.dt} = {decim}")

    @property
    def decimation(self) -> int:
        return int(round(self.fs * self.dt))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def erb_space(f_min: float, f_max: float, n: int) -> np.ndarray:
    """``n`` frequencies equally spaced on the ERB-number scale (Glasberg & Moore 1990), ascending."""
    def erbs(f):
        return 21.4 * np.log10(1.0 + 0.00437 * f)

    e = np.linspace(erbs(f_min), erbs(f_max), n)
    return (10 ** (e / 21.4) - 1.0) / 0.00437


class Cochlea:
    """A configured cochlea; ``Cochlea()(wave, fs, seed) -> (times_s, units)``."""

    def __init__(self, config: CochleaConfig | None = None, **overrides):
        self.config = dataclasses.replace(config or CochleaConfig(), **overrides)
        c = self.config
        self.cf = erb_space(c.f_min, c.f_max, c.n_channels)
        from scipy import signal

        coefs = [signal.gammatone(f, "iir", fs=c.fs) for f in self.cf]
        self._b = np.stack([np.asarray(b, np.float64) for b, _ in coefs])  # [C, 5]
        self._a = np.stack([np.asarray(a, np.float64) for _, a in coefs])  # [C, 9]
        self._h_cache: dict[int, np.ndarray] = {}

    # -------------------------------------------------------------- stages
    def prepare(self, wave, fs: float) -> np.ndarray:
        """Mono float64 at ``config.fs``, scaled to ``config.rms`` over its voiced part."""
        c = self.config
        x = np.asarray(wave, dtype=np.float64)
        if x.ndim == 2:
            x = x.mean(axis=1) if x.shape[1] <= 8 else x.mean(axis=0)
        if x.ndim != 1:
            raise ValueError(f"audio must be 1-D (or [samples, channels]); got shape {np.shape(wave)}")
        if x.size == 0:
            raise ValueError("audio has no samples")
        if not np.all(np.isfinite(x)):
            raise ValueError("audio contains NaN or infinite samples")
        if fs <= 0:
            raise ValueError(f"sample rate must be positive; got {fs}")
        if int(fs) != c.fs:
            from fractions import Fraction

            from scipy import signal

            r = Fraction(int(c.fs), int(round(fs))).limit_denominator(1000)
            x = signal.resample_poly(x, r.numerator, r.denominator)
        x = x - x.mean()
        frame = max(1, int(0.02 * c.fs))
        n = x.size // frame
        if n >= 1:
            e = (x[: n * frame].reshape(n, frame) ** 2).mean(1)
            voiced = e >= e.max() * 1e-4
            ref = np.sqrt(e[voiced].mean()) if voiced.any() else 0.0
        else:
            ref = float(np.sqrt((x ** 2).mean()))
        if ref > 0:
            x = x * (c.rms / ref)
        return x

    def _response(self, n_fft: int) -> np.ndarray:
        """Exact frequency response ``[C, n_fft//2+1]`` of every IIR gammatone at the rFFT bins
        (B(z)/A(z) on the unit circle is the DFT of the zero-padded coefficients)."""
        from scipy import fft

        h = self._h_cache.get(n_fft)
        if h is None:
            h = (fft.rfft(self._b, n_fft, axis=1) / fft.rfft(self._a, n_fft, axis=1)).astype(np.complex64)
            if len(self._h_cache) > 8:
                self._h_cache.clear()
            self._h_cache[n_fft] = h
        return h

    def hair_cells(self, x: np.ndarray) -> np.ndarray:
        """Basilar membrane + inner hair cell: the drive ``[C, steps]`` (float32) at the unit time step ``dt``.

        Each channel's gammatone output is a narrow-band signal ``A(t) cos(phase(t))``. Half-wave rectified,
        raised to the power ``p`` and averaged over a cycle it is ``k_p A(t)^p`` with
        ``k_p = Gamma((p+1)/2) / (2 sqrt(pi) Gamma(p/2 + 1))``, so we compute the envelope ``A(t)`` directly at
        the rate ``1/dt``: per channel, the FFT bins within ``+-1/(2 dt)`` of its centre frequency, times the
        exact gammatone response, shifted to baseband, and an inverse FFT of ``n_fft / decimation`` points.
        This is several times cheaper than filtering at the audio rate; it drops the fine structure (no phase
        locking).
        """
        from scipy import fft, special

        c = self.config
        n = x.size
        d = c.decimation
        pad = int(c.pad_s * c.fs)
        n_fft = int(np.ceil((n + pad) / 4096) * 4096)  # a multiple of 4096: few distinct cached responses
        n_small = n_fft // d
        X = fft.rfft(x.astype(np.float32), n_fft)
        idx, Hband = self._band(n_fft)  # [C, n_small] bins (ifft order around each centre) and responses
        Z = X[idx]
        Z *= Hband
        env = np.abs(fft.ifft(Z, axis=1, overwrite_x=True)) * np.float32(2.0 * n_small / n_fft / c.rms)
        steps = n // d
        p = c.compression
        k_p = special.gamma((p + 1) / 2) / (2 * np.sqrt(np.pi) * special.gamma(p / 2 + 1))
        env = np.ascontiguousarray(env[:, :steps])
        if p == 0.25:
            env = np.sqrt(np.sqrt(env, out=env), out=env)  # several times faster than a float power
        elif p != 1.0:
            env = np.power(env, p, out=env)
        return env * np.float32(k_p)

    def _band(self, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
        """Per channel, the ``n_fft // decimation`` rFFT bins around its centre frequency (in ifft order) and
        its gammatone response there (zero for bins outside ``[0, n_fft/2]``); cached per ``n_fft``."""
        key = -n_fft
        hit = self._h_cache.get(key)
        if hit is None:
            n_small = n_fft // self.config.decimation
            F = n_fft // 2 + 1
            centre = np.round(self.cf * n_fft / self.config.fs).astype(np.int64)
            offs = np.fft.ifftshift(np.arange(-(n_small // 2), n_small - n_small // 2))
            idx = centre[:, None] + offs[None, :]
            valid = (idx >= 0) & (idx < F)
            idx = np.clip(idx, 0, F - 1)
            hband = np.take_along_axis(self._response(n_fft), idx, axis=1)
            hband[~valid] = 0
            hit = (idx, hband)
            self._h_cache[key] = hit
        return hit

    def cochleagram(self, wave, fs: float) -> np.ndarray:
        """Hair-cell drive ``[C, steps]`` (for plots)."""
        return self.hair_cells(self.prepare(wave, fs))

    def spike_units(self, drive: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Transmitter pool + LIF bushy cells on ``drive [C, steps]`` -> ``(times_s, units)`` sorted by time."""
        return self.spike_units_batch([drive], [seed])[0]

    def spike_units_batch(self, drives, seeds) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`spike_units` of several drives at once (one time loop over ``[B * C]`` units: the loop
        overhead, not the arithmetic, dominates for 700 units). Each sample's noise comes from its own seed,
        so a sample's spikes do not depend on what it is batched with."""
        c = self.config
        C = self.config.n_channels
        B = len(drives)
        lengths = [int(d.shape[1]) for d in drives]
        steps = max(lengths) if lengths else 0
        # release probability per step, [steps, B * C]; zero past a sample's end
        rates = np.zeros((steps, B * C), np.float32)
        noise = np.zeros((steps, B * C), np.float32) if c.noise > 0 else None
        for i, (d, s) in enumerate(zip(drives, seeds)):
            if d.shape[0] != C:
                raise ValueError(f"drive has {d.shape[0]} channels; this cochlea has {C}")
            np.minimum(np.float32(c.release_gain * c.dt) * d.T, np.float32(c.release_max),
                       out=rates[: d.shape[1], i * C:(i + 1) * C])
            if noise is not None:
                z = np.random.default_rng(s).standard_normal((d.shape[1], C), dtype=np.float32)
                np.multiply(z, np.float32(c.noise), out=noise[: d.shape[1], i * C:(i + 1) * C])
        alpha = np.exp(-c.dt / c.tau_m)
        # input per step (1 - alpha) * weight * drive * q: a constant drive settles v at weight * drive * q,
        # so the unit fires on sustained input iff weight * drive * q > 1 (threshold), whatever dt
        w = (1.0 - alpha) * c.weight / (c.release_gain * c.dt)
        rec = c.dt / c.tau_recovery
        # refractoriness: reset below rest, to -exp(refractory / tau_m), from where the leak alone takes
        # `refractory` to bring v back to -1 (a relative refractory period; no per-unit counter in the loop)
        reset = -1.0 * np.exp(c.refractory / c.tau_m)
        q = np.ones(B * C, np.float32)
        v = np.zeros(B * C, np.float32)
        alpha, w, rec, reset = np.float32(alpha), np.float32(w), np.float32(rec), np.float32(reset)
        out_t, out_u = [], []
        keep = np.float32(1.0) - rec
        rel = np.empty_like(q)
        for t in range(steps):
            np.multiply(rates[t], q, out=rel)
            q *= keep  # q += rec * (1 - q) - rel
            q += rec
            q -= rel
            v *= alpha
            rel *= w
            v += rel
            if noise is not None:
                v += noise[t]
            fired = np.flatnonzero(v >= 1.0)
            if fired.size:
                v[fired] = reset
                out_t.append(np.full(fired.size, t, dtype=np.int64))
                out_u.append(fired)
        ts = np.concatenate(out_t) if out_t else np.zeros(0, np.int64)
        us = np.concatenate(out_u) if out_u else np.zeros(0, np.int64)
        sample = us // C
        out = []
        for i in range(B):
            m = sample == i
            out.append(((ts[m] + 1) * c.dt, us[m] - i * C))
        return out

    def __call__(self, wave, fs: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        return self.spike_units(self.cochleagram(wave, fs), seed)


_DEFAULT: dict[CochleaConfig, Cochlea] = {}


def get_cochlea(config: CochleaConfig | None = None) -> Cochlea:
    config = config or CochleaConfig()
    if config not in _DEFAULT:
        _DEFAULT[config] = Cochlea(config)
    return _DEFAULT[config]


def encode_waveform(wave, fs: float, *, seed: int = 0, config: CochleaConfig | None = None):
    """Spikes of one waveform: ``(times_s float64, units int64)`` sorted by time."""
    return get_cochlea(config)(wave, fs, seed)


# ------------------------------------------------------------------ WAV files

def read_wav(path) -> tuple[np.ndarray, int]:
    """A WAV file as mono float64 in [-1, 1] and its sample rate; errors name the file."""
    from scipy.io import wavfile

    path = Path(path)
    if not path.is_file():
        from .errors import DatasetNotFoundError

        raise DatasetNotFoundError(f"audio file {path} does not exist")
    try:
        fs, data = wavfile.read(path)
    except (ValueError, OSError, EOFError, TypeError) as e:
        raise CorruptFileError(f"{path} is not a readable WAV file ({type(e).__name__}: {e}); encode-audio "
                               "reads PCM or float WAV (convert other formats first, e.g. with ffmpeg or sox)") from e
    data = np.asarray(data)
    if data.dtype.kind == "u":
        data = (data.astype(np.float64) - 2 ** (8 * data.dtype.itemsize - 1)) / 2 ** (8 * data.dtype.itemsize - 1)
    elif data.dtype.kind == "i":
        data = data.astype(np.float64) / 2 ** (8 * data.dtype.itemsize - 1)
    else:
        data = data.astype(np.float64)
    if data.ndim == 2:
        data = data.mean(axis=1)
    if data.size == 0:
        raise CorruptFileError(f"{path} holds no audio samples")
    if not np.all(np.isfinite(data)):
        raise CorruptFileError(f"{path} holds NaN or infinite samples")
    return data, int(fs)


def encode_wav(path, *, seed: int = 0, config: CochleaConfig | None = None):
    wave, fs = read_wav(path)
    return encode_waveform(wave, fs, seed=seed, config=config)


# ------------------------------------------------------------------ SHD layout

def write_shd_h5(path, samples, labels, keys, speakers=None, *, meta: dict | None = None) -> str:
    """Write ``samples`` (a list of ``(times_s, units)``) in the exact SHD HDF5 layout, atomically.

    ``spikes/times`` variable-length float16 seconds, ``spikes/units`` variable-length uint16, ``labels``
    uint16, ``extra/keys`` (class names, bytes), ``extra/speaker`` uint16, plus ``extra/meta_info`` as SHD
    has it (here: the string attributes in ``meta``). Returns the SHA-256 of the file written.
    The file is reproducible byte for byte (fixed HDF5 settings, no timestamps).
    """
    import h5py

    from neurosynth.io import atomic_write

    n = len(samples)
    labels = np.asarray(labels, dtype=np.uint16)
    if labels.shape != (n,):
        raise ValueError(f"{n} samples but {labels.size} labels")
    speakers = np.zeros(n, np.uint16) if speakers is None else np.asarray(speakers, dtype=np.uint16)
    times = np.empty(n, dtype=object)
    units = np.empty(n, dtype=object)
    for i, (t, u) in enumerate(samples):
        times[i] = np.asarray(t, dtype=np.float16)
        units[i] = np.asarray(u, dtype=np.uint16)
    # built in memory, then written with plain file writes: a full disk is an OSError (ENOSPC) there, where
    # h5py writing to disk crashes the interpreter on close
    buf = io.BytesIO()
    with atomic_write(path, "wb") as out:
        with h5py.File(buf, "w", track_order=False, libver="earliest") as f:
            sp = f.create_group("spikes", track_order=False)
            sp.create_dataset("times", data=times, dtype=h5py.vlen_dtype(np.float16), track_times=False)
            sp.create_dataset("units", data=units, dtype=h5py.vlen_dtype(np.uint16), track_times=False)
            f.create_dataset("labels", data=labels, track_times=False)
            extra = f.create_group("extra")
            extra.create_dataset("keys", data=np.array([str(k).encode() for k in keys]), track_times=False)
            extra.create_dataset("speaker", data=speakers, track_times=False)
            mi = extra.create_group("meta_info")
            for k, v in sorted((meta or {}).items()):
                mi.create_dataset(k, data=np.array([str(x).encode() for x in v]), track_times=False)
        data = buf.getvalue()
        out.write(data)
    return hashlib.sha256(data).hexdigest()


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_shd_h5(path) -> dict:
    """Read an SHD-layout file: ``{"times": [...], "units": [...], "labels", "keys", "speaker"}`` (errors name it)."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            out = {"times": [np.asarray(t, np.float64) for t in f["spikes/times"]],
                   "units": [np.asarray(u, np.int64) for u in f["spikes/units"]],
                   "labels": np.asarray(f["labels"], np.int64),
                   "keys": [k.decode() if isinstance(k, bytes) else str(k) for k in f["extra/keys"]],
                   "speaker": np.asarray(f["extra/speaker"], np.int64) if "extra/speaker" in f else None}
    except (OSError, KeyError) as e:
        raise CorruptFileError(f"{path} is not a readable SHD-layout HDF5 file ({type(e).__name__}: {e})") from e
    return out


def encode_wav_files(paths, out, *, labels=None, seed: int = 0, config: CochleaConfig | None = None,
                     progress: bool = True) -> dict:
    """Encode WAV files with the cochlea and write them to ``out`` in the SHD layout.

    ``labels``: ``None`` (every sample gets label 0, class ``"unlabelled"``), integers (class names ``"0"``,
    ``"1"``, ... up to the largest), or class names (numbered in order of first appearance). Sample ``i`` uses
    cochlea noise seed ``seed + i``. Returns ``{"path", "sha256", "samples", "spikes", "keys"}``.
    """
    from tqdm.auto import tqdm

    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no WAV files given")
    if labels is None:
        ids, keys = [0] * len(paths), ["unlabelled"]
    else:
        labels = [str(x) for x in labels]
        if len(labels) != len(paths):
            raise ValueError(f"{len(paths)} WAV files but {len(labels)} labels; give one label per file")
        if all(x.lstrip("-").isdigit() for x in labels):
            ids = [int(x) for x in labels]
            if min(ids) < 0 or max(ids) > 65535:
                raise ValueError(f"integer labels must be in [0, 65535]; got {min(ids)}..{max(ids)}")
            keys = [str(i) for i in range(max(ids) + 1)]
        else:
            keys = list(dict.fromkeys(labels))
            ids = [keys.index(x) for x in labels]
    coch = get_cochlea(config)
    samples = []
    for i, p in enumerate(tqdm(paths, desc="encode-audio", unit="file", disable=not progress)):
        wave, fs = read_wav(p)
        samples.append(coch(wave, fs, seed + i))
    digest = write_shd_h5(out, samples, ids, keys, meta={"file": [p.name for p in paths]})
    return {"path": str(out), "sha256": digest, "samples": len(samples),
            "spikes": [int(len(t)) for t, _ in samples], "keys": keys}


def plot_audio_sample(times, units, *, wave=None, fs=None, cochleagram=None, dt: float = 0.5e-3,
                      title: str = "", n_channels: int | None = None):
    """A figure with the waveform (if given), the cochleagram (if given) and the spike raster, on one time axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p, have in (("wave", wave is not None), ("coch", cochleagram is not None), ("raster", True))
              if have]
    heights = {"wave": 1.0, "coch": 2.0, "raster": 2.0}
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 1.2 + 1.6 * len(panels)), sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [heights[p] for p in panels]})
    axes = axes[:, 0]
    for ax, p in zip(axes, panels):
        if p == "wave":
            ax.plot(np.arange(len(wave)) / fs, wave, lw=0.4, color="k")
            ax.set_ylabel("waveform")
        elif p == "coch":
            ax.imshow(cochleagram, aspect="auto", origin="lower", cmap="magma", interpolation="nearest",
                      extent=(0, cochleagram.shape[1] * dt, 0, cochleagram.shape[0]))
            ax.set_ylabel("channel\n(hair-cell drive)")
        else:
            ax.plot(np.asarray(times, np.float64), np.asarray(units), "k.", ms=1.5, mew=0)
            ax.set_ylabel("unit")
            if n_channels:
                ax.set_ylim(0, n_channels)
    axes[-1].set_xlabel("time (s)")
    axes[0].set_title(f"{title} ({len(times)} spikes)" if title else f"{len(times)} spikes", fontsize=9)
    fig.tight_layout()
    return fig
