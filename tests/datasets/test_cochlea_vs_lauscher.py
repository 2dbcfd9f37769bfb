"""The fast cochlea against Lauscher (the model that made SHD) on the same utterances and tone bursts.

Two stored references, so the comparison runs without Lauscher (~1 CPU-minute per utterance):

- the fit set (``tests/datasets/data/lauscher_ref_100.npz``, 100 channels, 4 utterances with their waves, and
  windowed tones), written by ``nice python benchmarks/cochlea_reference.py --n 4 --channels 100 --out ...``, and
  Lauscher's second run with other seeds (``lauscher_reseed_100.npz``: ``... --reseed REF --out ...``). The fast
  cochlea's parameters were chosen on these and on the tone bursts.
- the held-out set (``lauscher_heldout_100.npz``): utterances 4-11 of the same test plan (never used to choose a
  parameter), each run twice (seeds 4+k and 1004+k: the ceiling), and tone bursts at 500 Hz-4 kHz without the
  Hann window; written by ``nice python benchmarks/cochlea_reference.py --heldout WORKDIR --start 4 --n 8 --out
  ...``. It stores the SHA-256 of every utterance's int16 wave instead of the wave (the size limit): the test
  renders them again with espeak-ng and checks the hashes.

The measure (docs/datasets.md): the rate profile is the spikes per unit; its Pearson r with Lauscher's per
utterance (unsmoothed) is bounded by Lauscher's own run-to-run r (~0.8 at 100 units: a few spikes per unit per
utterance), so issue 20's r >= 0.9 is asserted for the corpus-pooled profile (spikes per unit summed over the
utterances), and per utterance against that ceiling.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from neurosynth.datasets.cochlea import (
    Cochlea,
    onset_steady_rates,
    rate_profile_correlation,
    tone_burst,
    vector_strength,
)

DATA = Path(__file__).parent / "data"
REF = DATA / "lauscher_ref_100.npz"
HELDOUT = DATA / "lauscher_heldout_100.npz"


@pytest.fixture(scope="module")
def ref():
    z = np.load(REF)
    meta = json.loads(str(z["meta"]))
    n = meta["n_utterances"]
    waves = [z[f"wave_{i}"].astype(np.float64) / 32767 for i in range(n)]
    spikes = [(z[f"times_{i}"], z[f"units_{i}"].astype(np.int64)) for i in range(n + len(meta["tones_hz"]))]
    return meta, waves, spikes


@pytest.fixture(scope="module")
def heldout():
    z = np.load(HELDOUT)
    meta = json.loads(str(z["meta"]))
    runs = {k[6:]: (z[k].astype(np.float64) / meta["tick_hz"], z["units_" + k[6:]].astype(np.int64))
            for k in z.files if k.startswith("ticks_")}
    return meta, runs


@pytest.fixture(scope="module")
def heldout_waves(heldout):
    """The held-out utterances rendered again (espeak-ng), checked against the stored hashes."""
    if shutil.which("espeak-ng") is None:
        msg = "espeak-ng is not installed (apt-get install -y espeak-ng): the held-out utterances are rendered"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI must install espeak-ng: " + msg)
        pytest.skip(msg)
    from neurosynth.datasets import spoken_digits as sd

    meta, _ = heldout
    variants = sd.espeak_variants()
    opts = sd.SpokenDigitsOptions(seed=0)
    voices = sd.split_voices(variants, opts, sd.variant_families(variants))
    plan = sd.plan("test", voices["test"], variants, opts)
    waves = []
    for u in meta["utterances"]:
        utt = plan[u["plan_index"]]
        assert utt.seed == u["seed"] and utt.text == u["text"]
        w = sd.render(utt, meta["fs"])[0]
        q = np.round(w / np.max(np.abs(w)) * 32767).astype(np.int16)
        if hashlib.sha256(q.tobytes()).hexdigest() != u["wave_sha256"]:
            pytest.skip(f"this espeak-ng ({sd.espeak_version()}) renders {u['text']!r} ({u['voice']}) differently "
                        f"from the one that made the reference ({meta['espeak_ng']})")
        waves.append(q.astype(np.float64) / 32767)
    return waves


def tone_wave(f, fs=48000):
    t = np.arange(int(0.3 * fs)) / fs
    return np.concatenate([np.zeros(int(0.05 * fs)), 0.5 * np.sin(2 * np.pi * f * t), np.zeros(int(0.05 * fs))])


def test_rate_profile_correlation_measure():
    """The measure itself: identical profiles give 1, per utterance and pooled; pooling sums before correlating."""
    a = [np.array([0, 1, 1, 2, 2, 2]), np.array([3, 3, 0])]
    r = rate_profile_correlation(a, a, 4)
    assert r["per_utterance"] == pytest.approx([1.0, 1.0]) and r["pooled"] == pytest.approx(1.0)
    # profiles a: [1, 2, 3, 0] and [1, 0, 0, 2]; b: [3, 2, 1, 0] and [0, 2, 1, 0] (r by hand: 0.2 and -9/11);
    # pooled a [2, 2, 3, 2], b [3, 4, 2, 0]: r = -0.25 / sqrt(0.75 * 8.75)
    b = [np.array([0, 0, 0, 1, 1, 2]), np.array([1, 1, 2])]
    r = rate_profile_correlation(a, b, 4)
    assert r["per_utterance"] == pytest.approx([0.2, -9 / 11])
    assert r["mean_per_utterance"] == pytest.approx((0.2 - 9 / 11) / 2)
    assert r["pooled"] == pytest.approx(-0.25 / np.sqrt(0.75 * 8.75))
    with pytest.raises(ValueError):
        rate_profile_correlation(a, b[:1], 4)


def test_onset_steady_rates_measure():
    """A synthetic burst: 10 units, 300 spikes/s each in the first 10 ms after the onset, 30 spikes/s after."""
    t = np.concatenate([0.05 + np.arange(3) * 0.003, 0.06 + np.arange(0, 0.24, 1 / 30)])
    times = np.concatenate([t + 1e-5 * k for k in range(11)])
    units = np.repeat(np.arange(20, 31), t.size)
    r = onset_steady_rates(times, units, 0.05, unit=25)
    assert r["onset"] == pytest.approx(300.0, rel=0.05)
    assert r["steady"] == pytest.approx(30.0, rel=0.1)
    assert r["ratio"] == pytest.approx(10.0, rel=0.15)


def test_rate_profiles_follow_lauscher(ref):
    """Fit set: per utterance as close to Lauscher as Lauscher is to itself with other seeds (mean r ~0.8, the
    ceiling); pooled over the utterances r >= 0.9 (issue 20), against both Lauscher runs."""
    meta, waves, spikes = ref
    C, n = meta["channels"], meta["n_utterances"]
    fast = Cochlea(n_channels=C).encode_batch([(w, meta["fs"]) for w in waves], [u["seed"] for u in meta["utterances"]])
    z = np.load(REF.with_name("lauscher_reseed_100.npz"))
    again = [z[f"units_{i}"].astype(np.int64) for i in range(n)]
    lauscher = [u for _, u in spikes[:n]]
    ours = [u for _, u in fast]
    ceiling = rate_profile_correlation(again, lauscher, C)
    r = rate_profile_correlation(ours, lauscher, C)
    assert r["mean_per_utterance"] >= ceiling["mean_per_utterance"] - 0.03, (r, ceiling)
    assert r["pooled"] >= 0.9
    assert rate_profile_correlation(ours, again, C)["pooled"] >= 0.9
    # the old cochlea's order (unit 0 = lowest frequency) would not correlate: the order is SHD's
    assert rate_profile_correlation([C - 1 - u for u in ours], lauscher, C)["mean_per_utterance"] < 0.3


def test_spikes_per_utterance_match_lauscher(ref):
    """Fit set: the level (spikes per utterance) within 25% of Lauscher's over the corpus, every utterance within
    a factor 2 (the cochlea before 2026-12-07 gave 1.67x over the corpus)."""
    meta, waves, spikes = ref
    n = meta["n_utterances"]
    fast = Cochlea(n_channels=meta["channels"]).encode_batch([(w, meta["fs"]) for w in waves],
                                                             [u["seed"] for u in meta["utterances"]])
    ratio = np.array([len(a[0]) / len(b[0]) for a, b in zip(fast, spikes[:n])])
    total = sum(len(a[0]) for a in fast) / sum(len(b[0]) for b in spikes[:n])
    assert 0.75 <= total <= 1.25, (total, ratio)
    assert np.all((ratio > 0.5) & (ratio < 2.0)), ratio


def test_held_out_utterances(heldout, heldout_waves):
    """Held-out set (no parameter was chosen on it): pooled rate-profile r >= 0.9, per utterance within 0.05 of
    Lauscher's own run-to-run r, and the level within 25% of Lauscher's over the set."""
    meta, runs = heldout
    C, m = meta["channels"], meta["n_utterances"]
    have = [k for k in range(m) if f"utt_{k}" in runs]
    pairs = [k for k in have if f"again_{k}" in runs]  # run twice: Lauscher's own run-to-run agreement
    assert len(have) == m and len(pairs) == m, sorted(runs)
    fast = Cochlea(n_channels=C).encode_batch([(heldout_waves[k], meta["fs"]) for k in have],
                                              [meta["utterances"][k]["seed"] for k in have])
    lauscher = [runs[f"utt_{k}"][1] for k in have]
    ceiling = rate_profile_correlation([runs[f"again_{k}"][1] for k in pairs], [runs[f"utt_{k}"][1] for k in pairs],
                                       C)
    r = rate_profile_correlation([u for _, u in fast], lauscher, C)
    assert r["pooled"] >= 0.9, (r, ceiling)
    on_pairs = np.mean([r["per_utterance"][have.index(k)] for k in pairs])  # the same utterances as the ceiling
    assert on_pairs >= ceiling["mean_per_utterance"] - 0.05, (r, ceiling)
    total = sum(len(t) for t, _ in fast) / sum(len(u) for u in lauscher)
    assert 0.75 <= total <= 1.25, total


@pytest.mark.parametrize("f", [500.0, 1000.0, 2000.0, 4000.0])
def test_tone_bursts_onset_and_adaptation_follow_lauscher(heldout, f):
    """A tone burst without the Hann window: a strong onset that adapts (onset / steady rate >= 5; Lauscher's
    9-16, the cochlea before 2026-12-07 gave 2), onset and steady rates and the spike count within a factor 2 of
    Lauscher's (same best unit, +-3)."""
    meta, runs = heldout
    lt, lu = runs[f"burst_{int(f)}_0"]
    onset = meta["burst"]["silence_s"]
    want = onset_steady_rates(lt, lu, onset)
    t, u = Cochlea(n_channels=meta["channels"], window=False)(tone_burst(f), meta["fs"], seed=0)
    got = onset_steady_rates(t, u, onset)
    assert got["ratio"] >= 5, (got, want)
    assert abs(got["unit"] - want["unit"]) <= 3
    for k in ("onset", "steady"):
        assert 0.5 <= got[k] / want[k] <= 2.0, (k, got, want)
    assert 0.5 <= len(t) / len(lt) <= 2.0, (len(t), len(lt))


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
