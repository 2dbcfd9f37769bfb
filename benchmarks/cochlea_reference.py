"""Lauscher (SHD's own cochlea) on a few spoken-digit utterances and tones: the reference the fast cochlea is
tested against (``tests/datasets/test_cochlea_vs_lauscher.py``).

Renders ``--n`` utterances of the spoken_digits test plan (seed 0, needs espeak-ng) at 48 kHz, runs Lauscher
(``pip install 'neurosynth[lauscher]'``) on each with ``--channels`` units and on pure tones, and writes an
``.npz`` with the waveforms (int16, 48 kHz), Lauscher's spikes and its CPU seconds (its worker pool included).
Slow: about a minute of CPU per utterance at 100 channels, ~7x that at 700.

    nice python benchmarks/cochlea_reference.py --n 4 --channels 100 --out tests/datasets/data/lauscher_ref_100.npz
    nice python benchmarks/cochlea_reference.py --reseed tests/datasets/data/lauscher_ref_100.npz \
        --out tests/datasets/data/lauscher_reseed_100.npz
"""

from __future__ import annotations

import argparse
import json
import resource


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (Lauscher's pool workers)."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--channels", type=int, default=100)
    p.add_argument("--tones", type=float, nargs="*", default=[250.0, 500.0, 1000.0, 2000.0, 4000.0])
    p.add_argument("--out", required=True)
    p.add_argument("--heldout", default=None, metavar="WORKDIR",
                   help="instead: Lauscher on utterances --start .. --start + --n - 1 of the test plan (held out "
                        "from any fitting), each quantised to int16 first (the stored wave is exactly Lauscher's "
                        "input), then again with seed 1000 + index (its own ceiling), and on tone bursts without "
                        "the Hann window (--bursts, seeds 0 and 1); one file per run in WORKDIR (resumable), "
                        "packed into --out")
    p.add_argument("--start", type=int, default=4)
    p.add_argument("--compare", nargs=3, default=None, metavar=("REF.npz", "RESEED.npz", "HELDOUT.npz"),
                   help="instead: compare the fast cochlea (and its parameters before 2026-12-07) with the stored "
                        "Lauscher runs: rate profiles, spikes per utterance, tone bursts, vector strength; JSON to "
                        "--out (needs espeak-ng for the held-out utterances)")
    p.add_argument("--pack", action="store_true", help="with --heldout: only pack what WORKDIR holds into --out")
    p.add_argument("--utts-only", action="store_true",
                   help="with --heldout: only the first Lauscher runs, last utterance first (a third process)")
    p.add_argument("--again-only", action="store_true",
                   help="with --heldout: only the second Lauscher runs (seeds 1000 + index), last utterance first "
                        "(a second process beside the first one; both skip what is already in WORKDIR)")
    p.add_argument("--bursts", type=float, nargs="*", default=[500.0, 1000.0, 2000.0, 4000.0])
    p.add_argument("--reseed", default=None, metavar="REF.npz",
                   help="instead: run Lauscher again on the utterances stored in REF.npz with seeds 1000 + i "
                        "(its run-to-run variability: the ceiling of any comparison with it)")
    args = p.parse_args(argv)
    if args.compare:
        return compare(*args.compare, out_path=args.out)
    if args.heldout:
        return heldout(args)
    if args.reseed:
        return reseed(args.reseed, args.out)
    import numpy as np

    from neurosynth.datasets import spoken_digits as sd
    from neurosynth.datasets.cochlea import LauscherCochlea

    fs = 48000
    variants = sd.espeak_variants()
    opts = sd.SpokenDigitsOptions(seed=0)
    voices = sd.split_voices(variants, opts, sd.variant_families(variants))
    utts = sd.plan("test", voices["test"], variants, opts)[: args.n]
    waves = [sd.render(u, fs)[0] for u in utts]
    t = np.arange(int(0.3 * fs)) / fs
    tones = [np.concatenate([np.zeros(int(0.05 * fs)), 0.5 * np.sin(2 * np.pi * f * t), np.zeros(int(0.05 * fs))])
             for f in args.tones]
    coch = LauscherCochlea(n_channels=args.channels)
    out = {}
    cpu = []
    for i, w in enumerate(waves + tones):
        c0 = cpu_seconds()
        times, units = coch(w, fs, seed=i)
        cpu.append(cpu_seconds() - c0)
        out[f"times_{i}"], out[f"units_{i}"] = times, units.astype(np.uint16)
        print(f"sample {i}: {len(times)} spikes, {cpu[-1]:.1f} s CPU", flush=True)
    peak = [float(np.max(np.abs(w))) for w in waves]
    for i, w in enumerate(waves):
        out[f"wave_{i}"] = np.round(w / peak[i] * 32767).astype(np.int16)
    meta = {"fs": fs, "channels": args.channels, "n_utterances": len(waves), "tones_hz": args.tones,
            "utterances": [{"text": u.text, "voice": u.voice, "seed": u.seed} for u in utts],
            "cpu_s": cpu, "audio_s": [len(w) / fs for w in waves + tones], "espeak_ng": sd.espeak_version()}
    write_reference(args.out, out, meta)
    return 0


def write_reference(path, arrays: dict, meta: dict | None = None) -> None:
    """Write ``arrays`` (and ``meta`` as the JSON string ``"meta"``, then printed without its utterance list) to
    the compressed ``.npz`` ``path``, atomically."""
    import numpy as np

    from neurosynth.io import atomic_path

    if meta is not None:
        arrays = {**arrays, "meta": np.array(json.dumps(meta))}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    if meta is not None:
        print(json.dumps({k: v for k, v in meta.items() if k != "utterances"}))


def lauscher_unwindowed(x, fs: int, channels: int, seed: int):
    """Lauscher's stages after its RMS scaling and Hann window (basilar membrane, hair cell, bushy cells) on ``x``
    as given; NumPy's global generator seeded for the call and restored afterwards."""
    import numpy as np
    from lauscher.audiowaves import MonoAudioWave
    from lauscher.helpers import CommandLineArguments
    from lauscher.transformations import BasilarMembrane, BushyCell, HairCell

    from neurosynth.datasets.cochlea import seeded_lauscher

    CommandLineArguments().num_concurrent_jobs = 1
    return seeded_lauscher(lambda: MonoAudioWave(np.array(x, np.float64), fs).transform(
        BasilarMembrane(channels=channels)).transform(HairCell()).transform(BushyCell()), seed)


def heldout(args) -> int:
    import os

    import numpy as np

    from neurosynth.datasets import spoken_digits as sd
    from neurosynth.datasets.cochlea import LauscherCochlea, tone_burst
    from neurosynth.io import atomic_path

    fs, C = 48000, args.channels
    work = args.heldout
    os.makedirs(work, exist_ok=True)
    variants = sd.espeak_variants()
    opts = sd.SpokenDigitsOptions(seed=0)
    voices = sd.split_voices(variants, opts, sd.variant_families(variants))
    utts = sd.plan("test", voices["test"], variants, opts)[args.start: args.start + args.n]
    coch = LauscherCochlea(n_channels=C)

    def run(name, fn):
        path = os.path.join(work, name + ".npz")
        if os.path.exists(path):
            return
        c0 = cpu_seconds()
        t, u = fn()
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, times=t, units=u.astype(np.uint16), cpu=cpu_seconds() - c0)
        print(f"{name}: {len(t)} spikes, {cpu_seconds() - c0:.1f} s CPU", flush=True)

    waves = {}
    for k, u in enumerate(utts):
        w = sd.render(u, fs)[0]
        waves[k] = np.round(w / np.max(np.abs(w)) * 32767).astype(np.int16)
    if args.pack:
        return pack(work, args, utts, waves)
    if args.utts_only:
        for k in reversed(range(len(utts))):
            run(f"utt_{k}", lambda k=k: coch(waves[k].astype(np.float64) / 32767, fs, seed=args.start + k))
        return 0
    if args.again_only:
        for k in reversed(range(len(utts))):
            run(f"again_{k}", lambda k=k: coch(waves[k].astype(np.float64) / 32767, fs, seed=1000 + args.start + k))
        return 0
    for f in args.bursts:
        run(f"burst_{int(f)}_0", lambda f=f: lauscher_unwindowed(tone_burst(f, fs), fs, C, seed=0))
    for k in range(len(utts)):
        run(f"utt_{k}", lambda k=k: coch(waves[k].astype(np.float64) / 32767, fs, seed=args.start + k))
    for k in range(len(utts)):
        run(f"again_{k}", lambda k=k: coch(waves[k].astype(np.float64) / 32767, fs, seed=1000 + args.start + k))
    for f in args.bursts:
        run(f"burst_{int(f)}_1", lambda f=f: lauscher_unwindowed(tone_burst(f, fs), fs, C, seed=1))
    return pack(work, args, utts, waves)


def pack(work: str, args, utts, waves) -> int:
    """The runs in ``work`` as one small file: spike times as ticks of Lauscher's 24 kHz output grid (exact),
    units as uint8/uint16, and the SHA-256 of every int16 utterance (the test renders them again with espeak-ng
    and checks it) instead of the waves (which would not fit the size limit of files in the repository)."""
    import hashlib
    import os

    import numpy as np

    from neurosynth.datasets import spoken_digits as sd
    from neurosynth.datasets.cochlea import TONE_BURST

    out = {}
    cpu = {}
    for name in sorted(os.listdir(work)):
        z = np.load(os.path.join(work, name))
        cpu[name[:-4]] = round(float(z["cpu"]), 2)
        out[f"ticks_{name[:-4]}"] = np.round(z["times"] * 24000).astype(np.int32)
        out[f"units_{name[:-4]}"] = z["units"].astype(np.uint8 if args.channels <= 256 else np.uint16)
    meta = {"fs": 48000, "channels": args.channels, "tick_hz": 24000, "start": args.start, "n_utterances": len(utts),
            "bursts_hz": args.bursts, "burst": TONE_BURST,
            "utterances": [{"text": u.text, "voice": u.voice, "seed": u.seed, "plan_index": args.start + k,
                            "lauscher_seed": args.start + k, "again_seed": 1000 + args.start + k,
                            "wave_sha256": hashlib.sha256(waves[k].tobytes()).hexdigest()}
                           for k, u in enumerate(utts)],
            "espeak_ng": sd.espeak_version(), "lauscher_cpu_s": cpu}
    write_reference(args.out, out, meta)
    return 0


#: the fast cochlea's parameters before they were fitted to Lauscher's level and adaptation (2026-12-07)
BEFORE = {"bandwidth": 3.0, "bandwidth_above": 1.0, "compression": 0.3, "gain_tilt": 0.2, "release_gain": 20.0,
          "weight": 4.0, "noise": 0.03, "shot_noise": False}


def load_heldout(path):
    """The packed held-out runs: ``meta``, the int16 waves rendered again (checked against the stored hashes) and
    ``{run name: (times, units)}``."""
    import hashlib

    import numpy as np

    from neurosynth.datasets import spoken_digits as sd

    z = np.load(path)
    meta = json.loads(str(z["meta"]))
    runs = {k[6:]: (z[k].astype(np.float64) / meta["tick_hz"], z["units_" + k[6:]].astype(np.int64))
            for k in z.files if k.startswith("ticks_")}
    waves = []
    for u in meta["utterances"]:
        utt = next(x for x in heldout_plan(meta["start"], meta["n_utterances"]) if x.seed == u["seed"])
        w = sd.render(utt, meta["fs"])[0]
        q = np.round(w / np.max(np.abs(w)) * 32767).astype(np.int16)
        if hashlib.sha256(q.tobytes()).hexdigest() != u["wave_sha256"]:
            raise RuntimeError(f"espeak-ng renders {u['text']!r} ({u['voice']}) differently from the stored "
                               f"reference ({meta['espeak_ng']}; this one: {sd.espeak_version()})")
        waves.append(q.astype(np.float64) / 32767)
    return meta, waves, runs


def heldout_plan(start: int, n: int):
    from neurosynth.datasets import spoken_digits as sd

    variants = sd.espeak_variants()
    opts = sd.SpokenDigitsOptions(seed=0)
    voices = sd.split_voices(variants, opts, sd.variant_families(variants))
    return sd.plan("test", voices["test"], variants, opts)[start: start + n]


def compare(ref: str, reseed_path: str, heldout_path: str, out_path=None) -> int:
    import numpy as np

    from neurosynth.datasets.cochlea import (
        Cochlea,
        CochleaConfig,
        onset_steady_rates,
        rate_profile_correlation,
        tone_burst,
        vector_strength,
    )

    z = np.load(ref)
    meta = json.loads(str(z["meta"]))
    C, n = meta["channels"], meta["n_utterances"]
    fit_waves = [z[f"wave_{i}"].astype(np.float64) / 32767 for i in range(n)]
    fit_seeds = [u["seed"] for u in meta["utterances"]]
    fit_l = [z[f"units_{i}"].astype(np.int64) for i in range(n)]
    fit_l_times = [z[f"times_{i}"] for i in range(n)]
    zr = np.load(reseed_path)
    fit_again = [zr[f"units_{i}"].astype(np.int64) for i in range(n)]
    hmeta, ho_waves, runs = load_heldout(heldout_path)
    m = hmeta["n_utterances"]
    have = [k for k in range(m) if f"utt_{k}" in runs]
    ho_seeds = [hmeta["utterances"][k]["seed"] for k in have]
    ho_l = [runs[f"utt_{k}"][1] for k in have]
    both = [k for k in have if f"again_{k}" in runs]

    def level(fast, lau):
        r = np.array([len(a) / max(len(b), 1) for a, b in zip(fast, lau)])
        return {"fast_mean_spikes": float(np.mean([len(a) for a in fast])),
                "lauscher_mean_spikes": float(np.mean([len(b) for b in lau])),
                "ratio_of_totals": float(sum(len(a) for a in fast) / sum(len(b) for b in lau)),
                "median_ratio": float(np.median(r)), "ratios": [round(float(x), 3) for x in r]}

    res = {"channels": C, "measure": "Pearson r of spikes per unit: per utterance (unsmoothed, mean over "
           "utterances) and pooled (spikes per unit summed over the utterances)",
           "fit_set": {"utterances": n, "source": ref},
           "held_out": {"utterances": len(have), "source": heldout_path,
                        "plan_indices": [hmeta["utterances"][k]["plan_index"] for k in have]}}
    res["fit_set"]["lauscher_vs_lauscher"] = rate_profile_correlation(fit_again, fit_l, C)
    if both:
        res["held_out"]["lauscher_vs_lauscher"] = {
            "utterances": len(both),
            **rate_profile_correlation([runs[f"again_{k}"][1] for k in both], [runs[f"utt_{k}"][1] for k in both], C)}
    i500 = meta["tones_hz"].index(500.0)
    lt, lu = z[f"times_{n + i500}"], z[f"units_{n + i500}"].astype(np.int64)
    lbest = int(np.bincount(lu, minlength=C).argmax())
    vs_l = vector_strength(lt[lu == lbest], 500.0)
    t = np.arange(int(0.3 * 48000)) / 48000
    tone500 = np.concatenate([np.zeros(2400), 0.5 * np.sin(2 * np.pi * 500.0 * t), np.zeros(2400)])
    onset = hmeta["burst"]["silence_s"]
    bursts_l = {}
    for f in hmeta["bursts_hz"]:
        for s in (0, 1):
            if f"burst_{int(f)}_{s}" in runs:
                bt, bu = runs[f"burst_{int(f)}_{s}"]
                bursts_l.setdefault(str(int(f)), []).append({**onset_steady_rates(bt, bu, onset), "spikes": len(bt)})
    res["lauscher"] = {"vs_500hz": vs_l, "vs_500hz_unit": lbest, "bursts": bursts_l}
    for name, kw in (("fast", {}), ("fast_before", BEFORE)):
        coch = Cochlea(CochleaConfig(n_channels=C, **kw))
        fit = coch.encode_batch([(w, 48000) for w in fit_waves], fit_seeds)
        ho = coch.encode_batch([(ho_waves[k], 48000) for k in have], ho_seeds)
        t5, u5 = coch(tone500, 48000, seed=0)
        best = int(np.bincount(u5, minlength=C).argmax())
        burst = Cochlea(CochleaConfig(n_channels=C, window=False, **kw))
        bursts = {}
        for f in hmeta["bursts_hz"]:
            bt, bu = burst(tone_burst(f), 48000, seed=0)
            bursts[str(int(f))] = {**onset_steady_rates(bt, bu, onset), "spikes": len(bt)}
        res[name] = {
            "params": kw or "defaults",
            "fit_set": {**rate_profile_correlation([u for _, u in fit], fit_l, C),
                        "vs_second_lauscher_run": rate_profile_correlation([u for _, u in fit], fit_again, C)["pooled"],
                        "level": level([u for _, u in fit], fit_l)},
            "held_out": {**rate_profile_correlation([u for _, u in ho], ho_l, C),
                         "level": level([u for _, u in ho], ho_l)} if have else None,
            "held_out_run_twice": rate_profile_correlation([ho[have.index(k)][1] for k in both],
                                                           [runs[f"utt_{k}"][1] for k in both], C) if both else None,
            "vs_500hz": vector_strength(t5[u5 == best], 500.0), "vs_500hz_unit": best, "bursts": bursts}
        res[name]["fit_set"]["time_course_r"] = float(np.mean([
            np.corrcoef(np.histogram(a, np.arange(0, 1.2, 0.02))[0], np.histogram(b, np.arange(0, 1.2, 0.02))[0])[0, 1]
            for (a, _), b in zip(fit, fit_l_times)]))
    # speed, the method of bench_cochlea.py: CPU seconds per utterance (Lauscher's with its worker processes, as
    # it ran in --heldout), the fast cochlea one utterance at a time, best of 3
    cpu_l = [hmeta.get("lauscher_cpu_s", {}).get(f"utt_{k}") for k in have]
    if have and all(c is not None for c in cpu_l):
        coch = Cochlea(CochleaConfig(n_channels=C))
        fast_cpu = []
        for k, s in zip(have, ho_seeds):
            best = float("inf")
            for _ in range(3):
                c0 = cpu_seconds()
                coch(ho_waves[k], 48000, s)
                best = min(best, cpu_seconds() - c0)
            fast_cpu.append(best)
        res["speed_100_channels"] = {"lauscher_cpu_s_per_utt": float(np.mean(cpu_l)),
                                     "fast_cpu_s_per_utt": float(np.mean(fast_cpu)),
                                     "ratio": float(np.mean(cpu_l) / np.mean(fast_cpu))}
    text = json.dumps(res, indent=1, default=float)
    print(text)
    if out_path:
        from neurosynth.io import atomic_write

        with atomic_write(out_path, "w") as f:
            f.write(text + "\n")
    return 0


def reseed(ref: str, out_path: str) -> int:
    import numpy as np

    from neurosynth.datasets.cochlea import LauscherCochlea

    z = np.load(ref)
    meta = json.loads(str(z["meta"]))
    coch = LauscherCochlea(n_channels=meta["channels"])
    out = {}
    for i in range(meta["n_utterances"]):
        w = z[f"wave_{i}"].astype(np.float64) / 32767
        t, u = coch(w, meta["fs"], seed=1000 + i)
        out[f"times_{i}"], out[f"units_{i}"] = t, u.astype(np.uint16)
        print(f"sample {i}: {len(out[f'times_{i}'])} spikes", flush=True)
    write_reference(out_path, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
