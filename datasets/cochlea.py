"""Audio -> spikes in the SHD event format: a fast cochlea that follows SHD's own (Lauscher), and Lauscher itself.

Two cochleas, chosen by name (:data:`COCHLEAS`, ``--cochlea fast|lauscher``):

- ``lauscher``: the model that made SHD (Cramer et al. 2022), the optional ``lauscher`` package
  (``pip install 'neurosynth[lauscher]'``): hydrodynamic basilar membrane, Meddis hair cell, 40 stochastic fibres
  per bushy cell. Slow (minutes per second of audio at 700 channels); the reference.
- ``fast`` (:class:`Cochlea`, the default): vectorised over channels, and built to follow Lauscher:

1. **Level.** The waveform is resampled to ``fs`` (48 kHz, SHD's rate), scaled to RMS ``rms`` (0.3, as
   Lauscher) and, with ``window=True`` (as Lauscher), multiplied by a Hann window over the whole file.
2. **Basilar membrane.** Channel ``i`` sits at place ``x_i = length * i / (n - 1)`` (0 = base) with the local
   resonance of the hydrodynamic model Lauscher uses (Sieroka et al. 2006: stiffness ``c0 exp(-alpha x) - a``,
   mass ``m``): ``f(x) = sqrt((c0 exp(-alpha x) - a) / m) / 2 pi`` (22.5 kHz at the base, 110 Hz at the apex);
   a unit's best frequency is ``bf_ratio`` (0.87) times that, where Lauscher's travelling wave peaks. SHD's order:
   unit 0 is the base. Each place is an asymmetric 4th-order gammatone, as Lauscher's membrane response (a long
   tail below the best frequency, -10 dB near 0.47x; a steep edge above it, -10 dB near 1.15x): bandwidth
   ``bandwidth`` (2) x 1.019 ERB (Glasberg & Moore 1990) below the best frequency, ``bandwidth_above`` (0.25)
   times that above it. It is applied in the frequency domain: for every channel the FFT bins within
   ``1 / (2 dt)`` of its centre (so the tail is cut 1 kHz below it), times the filter's response, shifted to
   baseband: the complex envelope ``z(t)`` at the step ``dt`` (0.5 ms). ``|z|`` is the envelope, ``arg z`` the
   fine-structure phase; a gain tilt ``(f / 1 kHz) ** -gain_tilt`` (0.8) raises the apex, as Lauscher's does.
3. **Inner hair cell.** The half-wave rectified, compressed (``|x|^compression``, 0.7: Lauscher's hair cell is
   nearly linear at speech levels, so quiet sounds drive it little) output averaged over a cycle, computed from
   the envelope directly (``k_p |z|^p``; exact for a narrow-band signal).
4. **Synapse.** A depleting transmitter pool ``q`` per channel (release ``release_gain * drive * q`` per second,
   recovery ``tau_recovery``): at an onset the full pool is released, then ``q`` falls within ~10 ms to
   ``1 / (1 + release_gain * drive * tau_recovery)``: Lauscher's onset and adaptation (its Meddis hair cell's
   pool; onset / steady rate ~6-10 on tone bursts, docs/datasets.md).
5. **Bushy cell.** A leaky integrate-and-fire unit per channel (``tau_m``, threshold 1) driven by the release;
   after a spike the membrane is reset below rest to ``-exp(refractory / tau_m)``, from where the leak alone
   takes ``refractory`` to climb back to -1 (a relative refractory period). A seeded Gaussian membrane noise per
   step with std ``noise * sqrt(input)`` (``shot_noise``: the fluctuation of Lauscher's 40 stochastic fibres,
   which grows with their rate and vanishes in silence: a graded rate-level function) and Poisson spontaneous
   spikes (``spont_rate`` 1.2 per second and unit, Lauscher's floor). ``weight`` (8.5) sets the level: the
   spikes per utterance match Lauscher's (docs/datasets.md).
6. **Phase locking and spike times.** A spike fired in step ``k`` is placed on the carrier cycle it fell in:
   at the time where the channel's fine-structure phase ``2 pi f t + arg z`` is at its peak, plus a phase jitter
   drawn from a von Mises distribution whose concentration gives the vector strength
   ``vs(f) = vs_low / (1 + (f / phase_cutoff)^phase_order)`` (fitted to Lauscher's; hair cells lose phase
   locking above a few kHz). The times are continuous (sub-millisecond); spikes of one unit closer than
   ``refractory`` after this shift are dropped. Jitter draws come from a generator seeded per utterance.

Output: ``(times in s, units)`` sorted by time, unit 0 = the base (highest frequency), as SHD.
:func:`encode_waveform` runs it on an array, :func:`encode_wav` on a WAV file, :func:`write_shd_h5` writes
samples in the exact SHD HDF5 layout. ``docs/datasets.md`` compares the two cochleas.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path

import numpy as np

from neurosynth.registry import Registry

from .errors import CorruptFileError


@dataclasses.dataclass(frozen=True)
class CochleaConfig:
    """Parameters of the fast cochlea (defaults: 700 channels in SHD's order and range, 48 kHz, 0.5 ms steps)."""

    n_channels: int = 700
    fs: int = 48000  # filterbank sample rate (Hz); the input is resampled to it (SHD: 48 kHz)
    dt: float = 0.5e-3  # step of the hair-cell / synapse / bushy-cell stages (s); fs * dt must be an integer
    rms: float = 0.3  # the input is scaled to this RMS (Lauscher: 0.3)
    window: bool = True  # a Hann window over the whole input (Lauscher does this)
    # place -> frequency map of the hydrodynamic basilar membrane Lauscher uses (Sieroka et al. 2006)
    bm_length: float = 3.5  # places 0 (base) .. bm_length (apex)
    bm_c0: float = 1e9
    bm_alpha: float = 3.0
    bm_a: float = 3500.0
    bm_m: float = 0.05
    bf_ratio: float = 0.87  # a place's best frequency over its local resonance (Lauscher's travelling-wave peak)
    bandwidth: float = 2.0  # gammatone bandwidth below the best frequency, in units of 1.019 ERB
    bandwidth_above: float = 0.25  # the bandwidth above the best frequency over the one below (a travelling wave)
    compression: float = 0.7  # hair-cell power law
    gain_tilt: float = 0.8  # the envelope of a unit is scaled by (best frequency / 1 kHz) ** -gain_tilt
    release_gain: float = 150.0  # transmitter release rate per unit of compressed drive (1/s)
    tau_recovery: float = 0.06  # transmitter pool recovery (s)
    release_max: float = 0.3  # at most this fraction of the pool is released per step
    tau_m: float = 2e-3  # bushy-cell membrane time constant (s)
    weight: float = 8.5  # synaptic weight: a steady drive * pool above 1 / weight makes the unit fire
    refractory: float = 1e-3  # refractory period (s)
    noise: float = 0.3  # seeded Gaussian membrane noise per step, std noise * sqrt(input) (0: deterministic)
    shot_noise: bool = True  # the noise's std scales with sqrt(input), as the fibres' shot noise (none in silence);
    # False: a constant std noise (the model before 2026-12-07)
    spont_rate: float = 1.2  # spontaneous spikes per second and unit (Poisson; Lauscher's: ~1.2/s)
    vs_low: float = 0.93  # vector strength of the phase locking at low frequencies
    phase_cutoff: float = 3500.0  # frequency (Hz) where the vector strength has halved
    phase_order: float = 1.5  # steepness of that roll-off
    pad_s: float = 0.25  # zero padding against circular wrap-around of the FFT filtering

    def __post_init__(self):
        if self.n_channels < 2 or self.n_channels > 65535:
            raise ValueError(f"n_channels must be in [2, 65535] (uint16 unit ids); got {self.n_channels}")
        decim = self.fs * self.dt
        if decim < 1 or abs(decim - round(decim)) > 1e-9:
            raise ValueError(f"fs * dt must be a positive integer; got {self.fs} * {self.dt} = {decim}")
        if self.bm_c0 * np.exp(-self.bm_alpha * self.bm_length) <= self.bm_a:
            raise ValueError("the basilar-membrane map gives no resonance at the apex (need "
                             "bm_c0 * exp(-bm_alpha * bm_length) > bm_a)")
        top = place_frequency(0.0, self)
        if top >= self.fs / 2:
            raise ValueError(f"the base of the cochlea resonates at {top:.0f} Hz, above fs/2 = {self.fs / 2:.0f} Hz; "
                             "raise fs")
        if not 0 <= self.vs_low < 1:
            raise ValueError(f"vs_low is a vector strength in [0, 1); got {self.vs_low}")

    @property
    def decimation(self) -> int:
        return int(round(self.fs * self.dt))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def place_frequency(x, config: CochleaConfig | None = None):
    """Local resonance frequency (Hz) of the basilar membrane at place ``x`` (0 = base): the hydrodynamic model's
    stiffness ``c0 exp(-alpha x) - a`` over its mass ``m`` (Sieroka et al. 2006, Lauscher's parameters)."""
    c = config or CochleaConfig.__new__(CochleaConfig)
    c0, alpha, a, m = (getattr(c, k, d) for k, d in (("bm_c0", 1e9), ("bm_alpha", 3.0), ("bm_a", 3500.0),
                                                      ("bm_m", 0.05)))
    return np.sqrt(np.maximum(c0 * np.exp(-alpha * np.asarray(x, np.float64)) - a, 0.0) / m) / (2 * np.pi)


def channel_frequencies(config: CochleaConfig) -> np.ndarray:
    """Best frequency of every unit, descending: unit 0 is the base (SHD's order). Lauscher's travelling wave
    peaks a little basal of the resonant place, so a unit's best frequency is ``bf_ratio`` (0.87) times the local
    resonance: 19.6 kHz at unit 0, ~4.4 kHz / 970 Hz / 213 Hz at units 200 / 400 / 600, 96 Hz at unit 699."""
    return config.bf_ratio * place_frequency(np.linspace(0.0, config.bm_length, config.n_channels), config)


def erb(f):
    """Equivalent rectangular bandwidth (Hz) at ``f`` (Glasberg & Moore 1990)."""
    return 24.7 * (4.37e-3 * np.asarray(f, np.float64) + 1.0)


def erb_space(f_min: float, f_max: float, n: int) -> np.ndarray:
    """``n`` frequencies equally spaced on the ERB-number scale (Glasberg & Moore 1990), ascending."""
    def erbs(f):
        return 21.4 * np.log10(1.0 + 0.00437 * f)

    e = np.linspace(erbs(f_min), erbs(f_max), n)
    return (10 ** (e / 21.4) - 1.0) / 0.00437


#: the tone burst the cochleas are compared on (:func:`tone_burst`)
TONE_BURST = {"silence_s": 0.05, "tone_s": 0.25, "after_s": 0.1, "ramp_s": 0.0025, "rms": 0.3}


def tone_burst(f: float, fs: int = 48000) -> np.ndarray:
    """A tone burst at ``f`` Hz: 50 ms silence, 250 ms tone (2.5 ms raised-cosine ramps), 100 ms silence, scaled
    to RMS 0.3 (Lauscher's level). Encoded without the whole-file Hann window (``window=False``; Lauscher's
    stages after it), so onset and adaptation are not blurred by it."""
    b = TONE_BURST
    t = np.arange(int(b["tone_s"] * fs)) / fs
    tone = np.sin(2 * np.pi * f * t)
    r = int(b["ramp_s"] * fs)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(r) / r)
    tone[:r] *= ramp
    tone[-r:] *= ramp[::-1]
    x = np.concatenate([np.zeros(int(b["silence_s"] * fs)), tone, np.zeros(int(b["after_s"] * fs))])
    return x * (b["rms"] / np.sqrt(np.mean(x ** 2)))


def rate_profile(units, n_channels: int) -> np.ndarray:
    """Spikes per unit (the rate profile over the channels) of one sample's ``units``, as float64."""
    return np.bincount(np.asarray(units, np.int64), minlength=n_channels).astype(np.float64)


def rate_profile_correlation(a, b, n_channels: int) -> dict:
    """How well the rate profiles of two cochleas' spikes on the same utterances agree.

    ``a`` and ``b`` are lists of ``units`` arrays, utterance ``i`` in both. Returns ``per_utterance`` (the Pearson
    r of the spikes per unit, utterance by utterance, unsmoothed), ``mean_per_utterance`` and ``pooled`` (r of the
    spikes per unit summed over all the utterances: the corpus's rate profile, the place map a classifier sees on
    average). Per utterance the counts are small (a few spikes per unit at 100 units), so even Lauscher against
    itself with other seeds stays near r = 0.8 there: report that ceiling beside it (docs/datasets.md)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"need the same utterances on both sides; got {len(a)} and {len(b)}")
    pa = [rate_profile(u, n_channels) for u in a]
    pb = [rate_profile(u, n_channels) for u in b]
    per = [float(np.corrcoef(x, y)[0, 1]) for x, y in zip(pa, pb)]
    pooled = float(np.corrcoef(np.sum(pa, axis=0), np.sum(pb, axis=0))[0, 1])
    return {"per_utterance": per, "mean_per_utterance": float(np.mean(per)), "pooled": pooled}


def onset_steady_rates(times, units, onset_s: float, *, unit=None, half_width: int = 5, onset_window: float = 0.01,
                       steady=(0.15, 0.25)) -> dict:
    """Onset and steady firing rate (spikes per second and unit) of the ``2 half_width + 1`` units around
    ``unit`` (default: the one with the most spikes) for a sound starting at ``onset_s``: the onset rate is the
    most spikes in any ``onset_window`` (10 ms) starting between 15 ms before and 40 ms after ``onset_s`` (each
    cochlea has its own latency: Lauscher's frequency-domain membrane answers ~8 ms early), the steady rate the
    spikes over ``steady`` seconds after ``onset_s``. Returns ``{"unit", "onset", "steady", "ratio"}``."""
    t = np.asarray(times, np.float64)
    u = np.asarray(units, np.int64)
    if unit is None:
        unit = int(np.bincount(u).argmax()) if u.size else 0
    k = 2 * half_width + 1
    ts = t[np.abs(u - unit) <= half_width]
    starts = onset_s + np.arange(-0.015, 0.04 + 1e-9, 0.0005)
    counts = np.searchsorted(np.sort(ts), starts + onset_window) - np.searchsorted(np.sort(ts), starts)
    on = float(counts.max()) / onset_window / k if ts.size else 0.0
    st = float(np.sum((ts >= onset_s + steady[0]) & (ts < onset_s + steady[1]))) / (steady[1] - steady[0]) / k
    return {"unit": int(unit), "onset": on, "steady": st, "ratio": on / st if st > 0 else float("inf")}


def vector_strength(times, f: float) -> float:
    """Vector strength of spike ``times`` (s) at frequency ``f`` (Goldberg & Brown 1969): 1 = all at one phase."""
    t = np.asarray(times, np.float64)
    if t.size == 0:
        return float("nan")
    return float(np.abs(np.mean(np.exp(2j * np.pi * f * t))))


def _kappa_for(vs: np.ndarray) -> np.ndarray:
    """Von Mises concentration whose mean resultant length I1(k)/I0(k) is ``vs`` (per element; 0 -> 0)."""
    from scipy import special

    k = np.linspace(0.0, 400.0, 40001)
    r = special.i1e(k) / special.i0e(k)
    return np.interp(np.clip(vs, 0.0, r[-1]), r, k)


class Cochlea:
    """The fast cochlea; ``Cochlea()(wave, fs, seed) -> (times_s, units)``."""

    name = "fast"

    def __init__(self, config: CochleaConfig | None = None, **overrides):
        self.config = dataclasses.replace(config or CochleaConfig(), **overrides)
        c = self.config
        self.cf = channel_frequencies(c)
        vs = c.vs_low / (1.0 + (self.cf / c.phase_cutoff) ** c.phase_order)
        self.kappa = _kappa_for(vs)
        self._h_cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    # -------------------------------------------------------------- stages
    def prepare(self, wave, fs: float) -> np.ndarray:
        """Mono float64 at ``config.fs``, scaled to ``config.rms`` (and Hann-windowed when ``config.window``)."""
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
        if not (np.isfinite(fs) and WAV_RATE_RANGE[0] <= fs <= WAV_RATE_RANGE[1]):
            raise ValueError(f"sample rate must be {WAV_RATE_RANGE[0]}-{WAV_RATE_RANGE[1]} Hz; got {fs}")
        if x.size > WAV_MAX_SECONDS * fs:
            raise ValueError(f"audio of {x.size / fs:.0f} s is longer than the {WAV_MAX_SECONDS:.0f} s limit")
        x = resample(x, fs, c.fs)
        x = x - x.mean()
        ref = float(np.sqrt(np.mean(x ** 2)))
        if ref > 0:
            x = x * (c.rms / ref)
        if c.window and x.size > 1:
            x = x * np.hanning(x.size)
        return x

    def _band(self, n_fft: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per channel, the ``n_fft // decimation`` rFFT bins around its centre frequency (in ifft order), the
        gammatone response there (zero outside ``[0, n_fft/2]``) and the bin-rounded centre frequency; cached."""
        hit = self._h_cache.get(n_fft)
        if hit is None:
            c = self.config
            n_small = n_fft // c.decimation
            F = n_fft // 2 + 1
            centre = np.round(self.cf * n_fft / c.fs).astype(np.int64)
            offs = np.fft.ifftshift(np.arange(-(n_small // 2), n_small - n_small // 2))
            idx = centre[:, None] + offs[None, :]
            valid = (idx >= 0) & (idx < F)
            idx = np.clip(idx, 0, F - 1)
            f = idx * (c.fs / n_fft)
            b = 1.019 * c.bandwidth * erb(self.cf)[:, None]
            if c.bandwidth_above != 1.0:  # a travelling wave: a long tail below the best frequency, a steep edge above
                b = np.where(f > self.cf[:, None], b * c.bandwidth_above, b)
            h = (1.0 + 1j * (f - self.cf[:, None]) / b) ** -4  # 4th-order gammatone, 1 at the centre
            h[~valid] = 0
            hit = (idx, h.astype(np.complex64), centre * (c.fs / n_fft))
            if len(self._h_cache) > 8:
                self._h_cache.clear()
            self._h_cache[n_fft] = hit
        return hit

    def analyse(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Basilar membrane + inner hair cell on a prepared signal: the drive ``[C, steps]`` (float32) and the
        fine-structure phase ``[C, steps]`` (radians, float32) at the step ``dt``."""
        from scipy import fft, special

        c = self.config
        n = x.size
        d = c.decimation
        pad = int(c.pad_s * c.fs)
        n_fft = int(np.ceil((n + pad) / 8192) * 8192)  # a multiple of 8192: few distinct cached responses
        n_small = n_fft // d
        X = fft.rfft(x.astype(np.float32), n_fft)
        idx, hband, fc = self._band(n_fft)
        Z = X[idx]
        Z *= hband
        z = fft.ifft(Z, axis=1, overwrite_x=True)
        steps = n // d
        z = z[:, :steps]
        env = np.abs(z).astype(np.float32) * np.float32(2.0 * n_small / n_fft / c.rms)
        if c.gain_tilt:
            env *= ((self.cf / 1000.0) ** -c.gain_tilt).astype(np.float32)[:, None]
        # fine-structure phase at the start of each step: carrier 2 pi fc t plus the envelope's own phase
        t0 = np.arange(steps) * c.dt
        phase = (np.angle(z) + (2 * np.pi * fc[:, None] * t0[None, :]) % (2 * np.pi)).astype(np.float32)
        p = c.compression
        k_p = special.gamma((p + 1) / 2) / (2 * np.sqrt(np.pi) * special.gamma(p / 2 + 1))
        np.power(env, np.float32(p), out=env)
        env *= np.float32(k_p)
        return env, phase

    def hair_cells(self, x: np.ndarray) -> np.ndarray:
        """The hair-cell drive ``[C, steps]`` of a prepared signal (see :meth:`analyse`)."""
        return self.analyse(x)[0]

    def cochleagram(self, wave, fs: float) -> np.ndarray:
        """Hair-cell drive ``[C, steps]`` (for plots; row 0 is the base, the highest frequency)."""
        return self.hair_cells(self.prepare(wave, fs))

    def spike_steps_batch(self, drives, seeds) -> list[tuple[np.ndarray, np.ndarray]]:
        """Transmitter pool + LIF bushy cells on several drives ``[C, steps]`` at once: per sample the
        ``(step, unit)`` of every spike (one time loop over ``[B * C]`` units: the loop overhead, not the
        arithmetic, dominates for 700 units). Each sample's noise comes from its own seed."""
        c = self.config
        C = self.config.n_channels
        B = len(drives)
        steps = max((int(d.shape[1]) for d in drives), default=0)
        rates = np.zeros((steps, B * C), np.float32)  # release probability per step; zero past a sample's end
        noise = np.zeros((steps, B * C), np.float32) if c.noise > 0 else None
        for i, (d, s) in enumerate(zip(drives, seeds)):
            if d.shape[0] != C:
                raise ValueError(f"drive has {d.shape[0]} channels; this cochlea has {C}")
            np.minimum(np.float32(c.release_gain * c.dt) * d.T, np.float32(c.release_max),
                       out=rates[: d.shape[1], i * C:(i + 1) * C])
            if noise is not None:
                z = np.random.default_rng([s, 1]).standard_normal((d.shape[1], C), dtype=np.float32)
                np.multiply(z, np.float32(c.noise), out=noise[: d.shape[1], i * C:(i + 1) * C])
        alpha = np.exp(-c.dt / c.tau_m)
        # input per step (1 - alpha) * weight * drive * q: a constant drive settles v at weight * drive * q,
        # so the unit fires on sustained input iff weight * drive * q > 1 (threshold), whatever dt
        w = (1.0 - alpha) * c.weight / (c.release_gain * c.dt)
        rec = c.dt / c.tau_recovery
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
                if c.shot_noise:
                    np.sqrt(rel, out=rel)
                    rel *= noise[t]
                    v += rel
                else:
                    v += noise[t]
            fired = np.flatnonzero(v >= 1.0)
            if fired.size:
                v[fired] = reset
                out_t.append(np.full(fired.size, t, dtype=np.int64))
                out_u.append(fired)
        ts = np.concatenate(out_t) if out_t else np.zeros(0, np.int64)
        us = np.concatenate(out_u) if out_u else np.zeros(0, np.int64)
        sample = us // C
        return [(ts[sample == i], us[sample == i] - i * C) for i in range(B)]

    def spike_times(self, steps: np.ndarray, units: np.ndarray, phase: np.ndarray, seed: int
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Stage 6: continuous, phase-locked times of the spikes fired at ``steps`` by ``units``."""
        c = self.config
        if steps.size == 0:
            return np.zeros(0, np.float64), np.zeros(0, np.int64)
        rng = np.random.default_rng([seed, 2])
        f = self.cf[units]
        s = (steps + rng.random(steps.size)) * c.dt  # a time inside the step
        theta = phase[units, steps].astype(np.float64) + 2 * np.pi * f * (s - steps * c.dt)
        offset = np.angle(np.exp(1j * theta))  # phase since the nearest peak, in (-pi, pi]
        jitter = rng.vonmises(0.0, np.maximum(self.kappa[units], 1e-9))
        t = np.maximum(s + (jitter - offset) / (2 * np.pi * f), 0.0)
        order = np.lexsort((t, units))
        t, u = t[order], units[order]
        keep = np.ones(t.size, bool)
        keep[1:] = (u[1:] != u[:-1]) | (np.diff(t) >= c.refractory)
        t, u = t[keep], u[keep]
        order = np.argsort(t, kind="stable")
        return t[order], u[order]

    def encode_batch(self, waves, seeds) -> list[tuple[np.ndarray, np.ndarray]]:
        """Spikes of several ``(wave, fs)`` pairs; sample ``i`` uses ``seeds[i]`` (same result as alone)."""
        analysed = [self.analyse(self.prepare(w, fs)) for w, fs in waves]
        fired = self.spike_steps_batch([a[0] for a in analysed], seeds)
        out = [self.spike_times(st, un, a[1], s) for (st, un), a, s in zip(fired, analysed, seeds)]
        if self.config.spont_rate > 0:
            out = [self._add_spontaneous(t, u, a[0].shape[1] * self.config.dt, s)
                   for (t, u), a, s in zip(out, analysed, seeds)]
        return out

    def _add_spontaneous(self, t, u, duration: float, seed: int):
        """Poisson spikes at ``spont_rate`` per unit, uniform over ``duration`` (Lauscher's fibres fire
        spontaneously; its bushy cells pass ~1 spike/s of it), merged in time order."""
        rng = np.random.default_rng([seed, 3])
        C = self.config.n_channels
        k = rng.poisson(self.config.spont_rate * duration * C)
        ts = np.concatenate([t, rng.uniform(0.0, duration, k)])
        us = np.concatenate([u, rng.integers(0, C, k)])
        order = np.argsort(ts, kind="stable")
        return ts[order], us[order]

    def __call__(self, wave, fs: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        return self.encode_batch([(wave, fs)], [seed])[0]


def resample(x: np.ndarray, fs_in: float, fs_out: int) -> np.ndarray:
    """``x`` at ``fs_out`` (polyphase; rates in a ratio of small integers)."""
    if int(round(fs_in)) == int(fs_out):
        return x
    from fractions import Fraction

    from scipy import signal

    r = Fraction(int(fs_out), int(round(fs_in))).limit_denominator(1000)
    return signal.resample_poly(x, r.numerator, r.denominator)


# ------------------------------------------------------------------ Lauscher, the reference

LAUSCHER_HINT = ("the 'lauscher' cochlea needs the optional package 'lauscher' (the SHD authors' model, LGPL-2.1, "
                 "with numba and soundfile); install it with: pip install 'neurosynth[lauscher]'")


@dataclasses.dataclass(frozen=True)
class LauscherConfig:
    """Settings of the reference cochlea: Lauscher 1.0.1's ``Wave2Spike`` with its own defaults at 48 kHz."""

    n_channels: int = 700
    fs: int = 48000  # the input is resampled to SHD's rate first
    jobs: int = 1  # worker processes of Lauscher's multiprocessing pool

    def __post_init__(self):
        if self.n_channels < 2 or self.n_channels > 65535:
            raise ValueError(f"n_channels must be in [2, 65535] (uint16 unit ids); got {self.n_channels}")
        if self.jobs < 1:
            raise ValueError(f"jobs must be >= 1; got {self.jobs}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def seeded_lauscher(run, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``run()`` (a Lauscher pipeline returning its spike train) with NumPy's global generator seeded by ``seed`` and
    restored afterwards (Lauscher draws from it); ``(times, units)`` sorted by time (stable)."""
    state = np.random.get_state()
    np.random.seed(int(seed) % 2**32)
    try:
        spikes = run()
    finally:
        np.random.set_state(state)
    t = np.asarray(spikes.spike_times, np.float64)
    u = np.asarray(spikes.spike_labels, np.float64).astype(np.int64)
    order = np.argsort(t, kind="stable")
    return t[order], u[order]


def require_lauscher():
    try:
        import lauscher  # noqa: F401
        from lauscher.transformations.wave2spike import Wave2Spike  # noqa: F401
    except ImportError as e:
        from neurosynth.errors import MissingExtraError

        raise MissingExtraError("lauscher", "lauscher", "the 'lauscher' cochlea") from e


class LauscherCochlea:
    """Lauscher (Cramer et al. 2022, the model that made SHD) behind the same call as :class:`Cochlea`.

    Lauscher draws its fibres' spikes from NumPy's global generator; we seed it with the utterance's seed for
    the call and restore its previous state afterwards, so results are reproducible and nothing else sees it.
    Its spike times are on its basilar-membrane grid (``fs / 2``); unit 0 is the base, as in SHD."""

    name = "lauscher"

    def __init__(self, config: LauscherConfig | None = None, **overrides):
        self.config = dataclasses.replace(config or LauscherConfig(), **overrides)
        require_lauscher()
        c = self.config
        self.cf = place_frequency(np.linspace(0.0, 3.5, c.n_channels))

    def __call__(self, wave, fs: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        from lauscher.audiowaves import MonoAudioWave
        from lauscher.helpers import CommandLineArguments
        from lauscher.transformations.wave2spike import Wave2Spike

        c = self.config
        x = Cochlea(CochleaConfig(n_channels=c.n_channels, fs=c.fs, window=False)).prepare(wave, fs)
        CommandLineArguments().num_concurrent_jobs = c.jobs
        return seeded_lauscher(lambda: MonoAudioWave(x, c.fs).transform(Wave2Spike(num_channels=c.n_channels)), seed)

    def encode_batch(self, waves, seeds) -> list[tuple[np.ndarray, np.ndarray]]:
        return [self(w, fs, s) for (w, fs), s in zip(waves, seeds)]


#: the cochleas by name: ``COCHLEAS.get(name)`` is ``(config class, cochlea class)``
COCHLEAS: Registry = Registry("cochlea")
COCHLEAS.add("fast", (CochleaConfig, Cochlea))
COCHLEAS.add("lauscher", (LauscherConfig, LauscherCochlea))


def cochlea_config(name: str = "fast", **kw):
    """The config of cochlea ``name`` (``fast`` or ``lauscher``) with ``kw`` set."""
    return COCHLEAS.get(name)[0](**kw)


_DEFAULT: dict = {}


def get_cochlea(config=None):
    """The (cached) cochlea for a :class:`CochleaConfig` (fast) or :class:`LauscherConfig`."""
    config = config or CochleaConfig()
    if config not in _DEFAULT:
        cls = next(impl for cfg, impl in (COCHLEAS.get(n) for n in COCHLEAS.names()) if isinstance(config, cfg))
        _DEFAULT[config] = cls(config)
    return _DEFAULT[config]


def encode_waveform(wave, fs: float, *, seed: int = 0, config=None):
    """Spikes of one waveform: ``(times_s float64, units int64)`` sorted by time."""
    return get_cochlea(config)(wave, fs, seed)


# ------------------------------------------------------------------ WAV files

# Limits on a WAV file, checked from its header before the samples are read (so an absurd header never
# makes us allocate): 1 kHz - 768 kHz, at most 16 channels and 10 minutes.
WAV_RATE_RANGE = (1000, 768_000)
WAV_MAX_SECONDS = 600.0
WAV_MAX_CHANNELS = 16
SILENCE_PEAK = 1e-6  # a file whose samples never exceed this (full scale 1) is silent


@dataclasses.dataclass(frozen=True)
class WavHeader:
    """What a WAV file's ``fmt`` and ``data`` chunks declare (read without touching the samples)."""

    rate: int
    channels: int
    bits: int
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.rate if self.rate else float("inf")


def wav_header(path) -> WavHeader:
    """Parse the RIFF/WAVE header of ``path`` (a few hundred bytes) and check it: a sample rate in
    ``WAV_RATE_RANGE``, 1..``WAV_MAX_CHANNELS`` channels, at least one and at most ``WAV_MAX_SECONDS`` of audio.
    Raises :class:`CorruptFileError` naming the file; this runs before any sample is read."""
    import struct

    path = Path(path)
    if not path.is_file():
        from .errors import DatasetNotFoundError

        raise DatasetNotFoundError(f"audio file {path} does not exist")
    hint = "encode-audio reads PCM or float WAV (convert other formats first, e.g. with ffmpeg or sox)"
    size = path.stat().st_size
    fmt = None
    data_bytes = None
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            raise CorruptFileError(f"{path} is not a WAV file (no RIFF/WAVE header); {hint}")
        pos = 12
        while pos + 8 <= size and (fmt is None or data_bytes is None):
            f.seek(pos)
            cid, clen = struct.unpack("<4sI", f.read(8))
            if cid == b"fmt ":
                body = f.read(min(clen, 40))
                if len(body) < 16:
                    raise CorruptFileError(f"{path} has a truncated WAV fmt chunk; {hint}")
                _tag, ch, rate, _bps, _align, bits = struct.unpack("<HHIIHH", body[:16])
                fmt = (int(rate), int(ch), int(bits))
            elif cid == b"data":
                # a streaming header (length 0 or 0xFFFFFFFF) means "up to the end of the file"
                avail = size - pos - 8
                data_bytes = avail if clen in (0, 0xFFFFFFFF) else min(int(clen), avail)
            pos += 8 + clen + (clen & 1)
    if fmt is None or data_bytes is None:
        raise CorruptFileError(f"{path} has no {'fmt' if fmt is None else 'data'} chunk; {hint}")
    rate, ch, bits = fmt
    lo, hi = WAV_RATE_RANGE
    if not lo <= rate <= hi:
        raise CorruptFileError(f"{path} declares a sample rate of {rate} Hz; audio must be sampled at "
                               f"{lo}-{hi} Hz (resample it first, e.g. sox in.wav -r 48000 out.wav)")
    if not 1 <= ch <= WAV_MAX_CHANNELS:
        raise CorruptFileError(f"{path} declares {ch} channels; expected 1-{WAV_MAX_CHANNELS}")
    if bits not in (8, 16, 24, 32, 64):
        raise CorruptFileError(f"{path} declares {bits} bits per sample; expected 8, 16, 24, 32 or 64; {hint}")
    frames = data_bytes // (ch * bits // 8)
    header = WavHeader(rate=rate, channels=ch, bits=bits, frames=int(frames))
    if frames == 0:
        raise CorruptFileError(f"{path} holds no audio samples")
    if header.seconds > WAV_MAX_SECONDS:
        raise CorruptFileError(f"{path} holds {header.seconds:.0f} s of audio; encode-audio takes files of at most "
                               f"{WAV_MAX_SECONDS:.0f} s (cut it into utterances first)")
    return header


def read_wav(path) -> tuple[np.ndarray, int]:
    """A WAV file as mono float64 in [-1, 1] and its sample rate; errors name the file.

    The header is checked first (:func:`wav_header`: sample rate, channels, length), then the samples:
    NaN or infinite samples and a silent file (peak below ``SILENCE_PEAK``) are errors too."""
    from scipy.io import wavfile

    path = Path(path)
    wav_header(path)
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
    if float(np.max(np.abs(data))) < SILENCE_PEAK:
        raise CorruptFileError(f"{path} is silent (every sample below {SILENCE_PEAK:g} of full scale): it would "
                               "give no spikes")
    return data, int(fs)


def encode_wav(path, *, seed: int = 0, config=None):
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


def encode_wav_files(paths, out, *, labels=None, seed: int = 0, config=None,
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
    for p in paths:  # every header first: a bad file is reported before any audio is read or encoded
        wav_header(p)
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
