"""Binning and collate: invariants on random event arrays (hypothesis) and golden cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neurosynth.datasets import Binning, bin_events, collate_time_first, downsampled_size, pad_time_first

CAM = np.dtype([("x", np.int16), ("y", np.int16), ("p", bool), ("t", np.int64)])
AUDIO = np.dtype([("t", int), ("x", int), ("p", int)])


def camera_events(rng, n, w=20, h=12, t_max=10_000):
    ev = np.empty(n, CAM)
    ev["x"], ev["y"] = rng.integers(0, w, n), rng.integers(0, h, n)
    ev["p"] = rng.integers(0, 2, n).astype(bool)
    ev["t"] = np.sort(rng.integers(0, t_max, n))
    return ev


def dense_reference(ev, size, origin, dt, T):
    """Independent count: np.add.at on floor((t - origin) / dt)."""
    w, h, p = size
    out = np.zeros((T, p, h, w), np.float32)
    k = np.floor((ev["t"].astype(np.float64) - origin) / dt).astype(np.int64)
    keep = (k >= 0) & (k < T)
    np.add.at(out, (k[keep], ev["p"][keep].astype(int), ev["y"][keep], ev["x"][keep]), 1)
    return out


events_st = st.tuples(st.integers(0, 2**31 - 1), st.integers(1, 400), st.integers(1, 50_000))


@settings(max_examples=40, deadline=None)
@given(events_st, st.integers(1, 40), st.sampled_from(["zero", "first"]))
def test_T_bins_keep_every_event(params, T, origin):
    seed, n, t_max = params
    ev = camera_events(np.random.default_rng(seed), n, t_max=t_max)
    frames = bin_events(ev, (20, 12, 2), Binning(T=T, origin=origin))
    assert frames.shape == (T, 2, 12, 20) and frames.dtype == np.float32
    assert frames.sum() == n
    # per-pixel totals are conserved too
    total = np.zeros((2, 12, 20))
    np.add.at(total, (ev["p"].astype(int), ev["y"], ev["x"]), 1)
    np.testing.assert_array_equal(frames.sum(0), total)


@settings(max_examples=40, deadline=None)
@given(events_st, st.floats(1.0, 5_000.0), st.one_of(st.none(), st.integers(1, 60)), st.sampled_from(["zero", "first"]))
def test_time_windows_match_reference(params, dt, T, origin):
    seed, n, t_max = params
    ev = camera_events(np.random.default_rng(seed), n, t_max=t_max)
    frames = bin_events(ev, (20, 12, 2), Binning(T=T, dt=dt, origin=origin))
    o = 0.0 if origin == "zero" else float(ev["t"][0])
    n_steps = T if T is not None else int(math.floor((ev["t"][-1] - o) / dt)) + 1
    assert frames.shape[0] == n_steps
    np.testing.assert_array_equal(frames, dense_reference(ev, (20, 12, 2), o, dt, n_steps))
    if T is None:  # no cropping: every event lands in a bin
        assert frames.sum() == n


@settings(max_examples=30, deadline=None)
@given(events_st, st.integers(1, 100))
def test_event_count_frames(params, count):
    seed, n, t_max = params
    ev = camera_events(np.random.default_rng(seed), n, t_max=t_max)
    frames = bin_events(ev, (20, 12, 2), Binning(event_count=count))
    assert frames.sum() == n
    assert frames.shape[0] == math.ceil(n / count)
    assert all(f.sum() == count for f in frames[:-1])


@settings(max_examples=30, deadline=None)
@given(events_st, st.sampled_from([0.5, 0.25, 0.3]))
def test_downsampling_conserves_counts(params, factor):
    seed, n, t_max = params
    ev = camera_events(np.random.default_rng(seed), n, t_max=t_max)
    frames = bin_events(ev, (20, 12, 2), Binning(T=5, spatial_factor=factor))
    w, h, _ = downsampled_size((20, 12, 2), factor)
    assert frames.shape == (5, 2, h, w)
    assert frames.sum() == n


def test_downsampled_size_golden():
    assert downsampled_size((128, 128, 2), 0.25) == (32, 32, 2)
    assert downsampled_size((700, 1, 1), 0.5) == (350, 1, 1)
    assert downsampled_size((34, 34, 2), 1.0) == (34, 34, 2)


def test_audio_events_golden():
    """SHD-like events (no y, one polarity): channel x at step floor(t / dt)."""
    ev = np.array([(0, 3, 1), (999, 3, 1), (1000, 5, 1), (2500, 699, 1), (9999, 0, 1)], dtype=AUDIO)
    frames = bin_events(ev, (700, 1, 1), Binning(T=4, dt=1000.0, origin="zero"))
    assert frames.shape == (4, 1, 700)
    assert frames[0, 0, 3] == 2 and frames[1, 0, 5] == 1 and frames[2, 0, 699] == 1
    assert frames.sum() == 4  # t=9999 is past T*dt and cropped


def test_binary_clips_and_unsorted_input_is_sorted():
    ev = np.array([(50, 1, 1), (10, 1, 1), (11, 1, 1)], dtype=AUDIO)
    frames = bin_events(ev, (4, 1, 1), Binning(T=2, dt=30.0, origin="zero"))
    assert frames[0, 0, 1] == 2 and frames[1, 0, 1] == 1
    assert bin_events(ev, (4, 1, 1), Binning(T=2, dt=30.0, origin="zero", binary=True)).max() == 1


def test_empty_events_give_zero_frames():
    ev = np.empty(0, CAM)
    assert bin_events(ev, (20, 12, 2), Binning(T=3)).shape == (3, 2, 12, 20)


@pytest.mark.parametrize("kw, match", [
    ({}, "needs T"), ({"T": 0}, "positive integer"), ({"dt": -1.0}, "positive bin width"),
    ({"T": 3, "origin": "middle"}, "origin"), ({"T": 3, "spatial_factor": 2.0}, "spatial_factor"),
    ({"dt": 1.0, "event_count": 3}, "not both"),
])
def test_bad_binning_is_rejected(kw, match):
    with pytest.raises(ValueError, match=match):
        Binning(**kw)


shapes_st = st.lists(st.integers(1, 12), min_size=1, max_size=6)


@settings(max_examples=50, deadline=None)
@given(shapes_st, st.integers(1, 4), st.integers(0, 1000))
def test_collate_pads_time_first(lengths, width, seed):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.rand(t, width, 3, generator=g) + 0.1 for t in lengths]
    batch = [(x, i % 3) for i, x in enumerate(xs)]
    x, y, lens = collate_time_first(batch)
    assert x.shape == (max(lengths), len(lengths), width, 3)
    assert lens.tolist() == lengths and lens.dtype == torch.int64
    assert y.tolist() == [i % 3 for i in range(len(lengths))]
    for i, s in enumerate(xs):
        torch.testing.assert_close(x[: lengths[i], i], s)
        assert not x[lengths[i]:, i].any()  # zero padding after the end
    assert float(x.sum()) == pytest.approx(float(sum(s.sum() for s in xs)), rel=1e-5)


def test_collate_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same per-step shape"):
        pad_time_first([torch.zeros(3, 4), torch.zeros(3, 5)])
