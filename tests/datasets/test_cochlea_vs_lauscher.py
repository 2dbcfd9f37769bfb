"""The fast cochlea against Lauscher (the model that made SHD) on the same utterances and tones.

The reference (``tests/datasets/data/lauscher_ref_100.npz``, 100 channels) was written by
``nice python benchmarks/cochlea_reference.py --n 4 --channels 100 --out tests/datasets/data/lauscher_ref_100.npz``
(Lauscher 1.0.1; ~1 CPU-minute per utterance), and Lauscher's second run with other seeds
(``lauscher_reseed_100.npz``) by ``... --reseed tests/datasets/data/lauscher_ref_100.npz --out ...``, so the
comparison runs without Lauscher; the slow test recomputes one Lauscher sample live and checks the stored
reference against it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neurosynth.datasets.cochlea import Cochlea, vector_strength

REF = Path(__file__).parent / "data" / "lauscher_ref_100.npz"


@pytest.fixture(scope="module")
def ref():
    z = np.load(REF)
    meta = json.loads(str(z["meta"]))
    n = meta["n_utterances"]
    waves = [z[f"wave_{i}"].astype(np.float64) / 32767 for i in range(n)]
    spikes = [(z[f"times_{i}"], z[f"units_{i}"].astype(np.int64)) for i in range(n + len(meta["tones_hz"]))]
    return meta, waves, spikes


def tone_wave(f, fs=48000):
    t = np.arange(int(0.3 * fs)) / fs
    return np.concatenate([np.zeros(int(0.05 * fs)), 0.5 * np.sin(2 * np.pi * f * t), np.zeros(int(0.05 * fs))])


def rate_profile(units, channels, smooth=1):
    c = np.bincount(units, minlength=channels).astype(np.float64)
    if smooth > 1:
        c = np.convolve(c, np.ones(smooth) / smooth, mode="same")
    return c


def test_rate_profiles_follow_lauscher(ref):
    """Per utterance, the spike count of every unit (its rate profile over the 100 channels) correlated with
    Lauscher's. Lauscher run twice with different seeds (``lauscher_reseed_100.npz``) agrees with itself only at
    mean r = 0.80 unsmoothed (few spikes per unit), so issue 20's r >= 0.9 is out of reach unsmoothed for any
    model: the fast cochlea is as close to Lauscher as Lauscher is to itself there (0.81), and reaches r >= 0.9
    with the profiles smoothed over 5 neighbouring units (Lauscher vs itself: 0.93)."""
    meta, waves, spikes = ref
    C, n = meta["channels"], meta["n_utterances"]
    coch = Cochlea(n_channels=C)
    fast = coch.encode_batch([(w, meta["fs"]) for w in waves], [u["seed"] for u in meta["utterances"]])
    z = np.load(REF.with_name("lauscher_reseed_100.npz"))
    again = [z[f"units_{i}"].astype(np.int64) for i in range(n)]

    def mean_r(a, b, smooth):
        return float(np.mean([np.corrcoef(rate_profile(x, C, smooth), rate_profile(y, C, smooth))[0, 1]
                              for x, y in zip(a, b)]))

    lauscher = [u for _, u in spikes[:n]]
    ours = [u for _, u in fast]
    ceiling = mean_r(again, lauscher, 1)
    assert mean_r(ours, lauscher, 1) >= ceiling - 0.03, (mean_r(ours, lauscher, 1), ceiling)
    assert mean_r(ours, lauscher, 5) >= 0.9
    assert mean_r(ours, again, 5) >= 0.9  # and against the other Lauscher run
    # the old cochlea's order (unit 0 = lowest frequency) would not correlate: the order is SHD's
    assert mean_r([C - 1 - u for u in ours], lauscher, 1) < 0.3


def test_vector_strength_at_500_hz_within_0_1_of_lauscher(ref):
    meta, _, spikes = ref
    C, n = meta["channels"], meta["n_utterances"]
    i = meta["tones_hz"].index(500.0)
    lt, lu = spikes[n + i]
    lbest = np.bincount(lu, minlength=C).argmax()
    vs_l = vector_strength(lt[lu == lbest], 500.0)
    t, u = Cochlea(n_channels=C)(tone_wave(500.0), 48000, seed=0)
    best = np.bincount(u, minlength=C).argmax()
    vs_f = vector_strength(t[u == best], 500.0)
    assert abs(vs_f - vs_l) <= 0.1, (vs_f, vs_l)
    assert abs(int(best) - int(lbest)) <= 3  # about the same best unit (place map)


@pytest.mark.slow
def test_stored_reference_is_lauscher(ref):
    """Recompute the 500 Hz tone with Lauscher: the same spikes as stored (seeded), so the file is what it says."""
    pytest.importorskip("lauscher", reason="pip install 'neurosynth[lauscher]'")
    from neurosynth.datasets.cochlea import LauscherCochlea

    meta, _, spikes = ref
    n = meta["n_utterances"]
    i = meta["tones_hz"].index(500.0)
    t, u = LauscherCochlea(n_channels=meta["channels"])(tone_wave(500.0), 48000, seed=n + i)
    np.testing.assert_allclose(t, spikes[n + i][0])
    np.testing.assert_array_equal(u, spikes[n + i][1])
