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
    p.add_argument("--reseed", default=None, metavar="REF.npz",
                   help="instead: run Lauscher again on the utterances stored in REF.npz with seeds 1000 + i "
                        "(its run-to-run variability: the ceiling of any comparison with it)")
    args = p.parse_args(argv)
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
