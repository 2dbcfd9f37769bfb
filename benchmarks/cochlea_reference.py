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
    p.add_argument("--again-only", action="store_true",
                   help="with --heldout: only the second Lauscher runs (seeds 1000 + index), last utterance first "
                        "(a second process beside the first one; both skip what is already in WORKDIR)")
    p.add_argument("--bursts", type=float, nargs="*", default=[500.0, 1000.0, 2000.0, 4000.0])
    p.add_argument("--reseed", default=None, metavar="REF.npz",
                   help="instead: run Lauscher again on the utterances stored in REF.npz with seeds 1000 + i "
                        "(its run-to-run variability: the ceiling of any comparison with it)")
    args = p.parse_args(argv)
    if args.heldout:
        return heldout(args)
    if args.reseed:
        return reseed(args.reseed, args.out)
    import numpy as np

    from neurosynth.datasets import spoken_digits as sd
    from neurosynth.datasets.cochlea import LauscherCochlea
    from neurosynth.io import atomic_path

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
    out["meta"] = np.array(json.dumps(meta))
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **out)
    print(json.dumps({k: v for k, v in meta.items() if k != "utterances"}))
    return 0


BURST = {"silence_s": 0.05, "tone_s": 0.25, "after_s": 0.1, "ramp_s": 0.0025, "rms": 0.3}


def tone_burst(f: float, fs: int = 48000):
    """A tone burst at ``f``: 50 ms silence, 250 ms tone (2.5 ms raised-cosine ramps), 100 ms silence, the file
    scaled to RMS 0.3 (Lauscher's level), so the cochleas see the same input without the whole-file Hann window."""
    import numpy as np

    b = BURST
    n_on = int(b["tone_s"] * fs)
    t = np.arange(n_on) / fs
    tone = np.sin(2 * np.pi * f * t)
    r = int(b["ramp_s"] * fs)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(r) / r)
    tone[:r] *= ramp
    tone[-r:] *= ramp[::-1]
    x = np.concatenate([np.zeros(int(b["silence_s"] * fs)), tone, np.zeros(int(b["after_s"] * fs))])
    return x * (b["rms"] / np.sqrt(np.mean(x ** 2)))


def lauscher_unwindowed(x, fs: int, channels: int, seed: int):
    """Lauscher's stages after its RMS scaling and Hann window (basilar membrane, hair cell, bushy cells) on ``x``
    as given; NumPy's global generator seeded for the call and restored afterwards."""
    import numpy as np
    from lauscher.audiowaves import MonoAudioWave
    from lauscher.helpers import CommandLineArguments
    from lauscher.transformations import BasilarMembrane, BushyCell, HairCell

    CommandLineArguments().num_concurrent_jobs = 1
    state = np.random.get_state()
    np.random.seed(int(seed) % 2**32)
    try:
        sp = (MonoAudioWave(np.array(x, np.float64), fs).transform(BasilarMembrane(channels=channels))
              .transform(HairCell()).transform(BushyCell()))
    finally:
        np.random.set_state(state)
    t = np.asarray(sp.spike_times, np.float64)
    u = np.asarray(sp.spike_labels, np.float64).astype(np.int64)
    o = np.argsort(t, kind="stable")
    return t[o], u[o]


def heldout(args) -> int:
    import os

    import numpy as np

    from neurosynth.datasets import spoken_digits as sd
    from neurosynth.datasets.cochlea import LauscherCochlea
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
    out = {}
    for k in range(len(utts)):
        out[f"wave_{k}"] = waves[k]
    for name in sorted(os.listdir(work)):
        z = np.load(os.path.join(work, name))
        out[f"times_{name[:-4]}"] = z["times"]
        out[f"units_{name[:-4]}"] = z["units"]
    meta = {"fs": fs, "channels": C, "start": args.start, "n_utterances": len(utts), "bursts_hz": args.bursts,
            "burst": BURST, "utterances": [{"text": u.text, "voice": u.voice, "seed": u.seed} for u in utts],
            "espeak_ng": sd.espeak_version()}
    out["meta"] = np.array(json.dumps(meta))
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **out)
    print(json.dumps({k: v for k, v in meta.items() if k != "utterances"}))
    return 0


def reseed(ref: str, out_path: str) -> int:
    import numpy as np

    from neurosynth.datasets.cochlea import LauscherCochlea
    from neurosynth.io import atomic_path

    z = np.load(ref)
    meta = json.loads(str(z["meta"]))
    coch = LauscherCochlea(n_channels=meta["channels"])
    out = {}
    for i in range(meta["n_utterances"]):
        w = z[f"wave_{i}"].astype(np.float64) / 32767
        t, u = coch(w, meta["fs"], seed=1000 + i)
        out[f"times_{i}"], out[f"units_{i}"] = t, u.astype(np.uint16)
        print(f"sample {i}: {len(out[f'times_{i}'])} spikes", flush=True)
    with atomic_path(out_path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
