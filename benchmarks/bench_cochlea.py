"""Cost of the cochleas (``neurosynth.datasets.cochlea``) per utterance, and the fast / Lauscher speed ratio.

Renders ``--n`` utterances of the spoken_digits test plan (seed 0, needs espeak-ng) at 48 kHz and times the fast
cochlea on them as the generator runs it (``Cochlea.encode_batch``: front end per utterance, the synapse + LIF
loop batched over the utterances, phase-locked spike times), and with ``--lauscher N`` Lauscher (SHD's own
model, ``pip install 'neurosynth[lauscher]'``) on the first ``N`` of them, each with ``--channels`` units.
CPU seconds include Lauscher's worker processes. Prints JSON; ``--out`` also writes it.

    OMP_NUM_THREADS=1 nice python benchmarks/bench_cochlea.py --n 32 --lauscher 1 --channels 700
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time


def cpu_seconds() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def timed(fn):
    w, c = time.perf_counter(), cpu_seconds()
    out = fn()
    return out, time.perf_counter() - w, cpu_seconds() - c


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--channels", type=int, default=700)
    p.add_argument("--lauscher", type=int, default=0, help="also run Lauscher on this many of the utterances")
    p.add_argument("--out", default=None, help="JSON file to write (atomically)")
    args = p.parse_args(argv)
    import numpy as np

    from neurosynth.datasets import spoken_digits as sd
    from neurosynth.datasets.cochlea import Cochlea, CochleaConfig, LauscherCochlea

    fs = 48000
    variants = sd.espeak_variants()
    opts = sd.SpokenDigitsOptions(seed=0)
    voices = sd.split_voices(variants, opts, sd.variant_families(variants))
    utts = sd.plan("test", voices["test"], variants, opts)[: args.n]
    waves = [sd.render(u, fs) for u in utts]
    seeds = [u.seed for u in utts]
    coch = Cochlea(CochleaConfig(n_channels=args.channels))
    coch.encode_batch(waves[:1], seeds[:1])  # warm-up: FFT plans and cached filter responses
    fast, fw, fc = timed(lambda: coch.encode_batch(waves, seeds))
    n = len(waves)
    audio_s = float(np.mean([len(w) / f for w, f in waves]))
    res = {"utterances": n, "channels": args.channels, "mean_audio_seconds": round(audio_s, 3),
           "fast_per_utt": {"wall_s": round(fw / n, 4), "cpu_s": round(fc / n, 4)},
           "fast_mean_spikes": round(float(np.mean([len(t) for t, _ in fast])), 1),
           "cpu": platform.processor() or platform.machine(), "load_average": list(__import__("os").getloadavg())}
    if args.lauscher:
        k = min(args.lauscher, n)
        ref = LauscherCochlea(n_channels=args.channels)
        lw, lc, spikes = 0.0, 0.0, []
        for (w, f), s in zip(waves[:k], seeds[:k]):
            out, a, b = timed(lambda w=w, f=f, s=s: ref(w, f, s))
            lw, lc = lw + a, lc + b
            spikes.append(len(out[0]))
        fast_k, _, fck = timed(lambda: coch.encode_batch(waves[:k], seeds[:k]))
        res["lauscher_per_utt"] = {"utterances": k, "wall_s": round(lw / k, 2), "cpu_s": round(lc / k, 2),
                                   "mean_spikes": round(float(np.mean(spikes)), 1)}
        res["fast_same_utts_cpu_s"] = round(fck / k, 4)
        res["speed_ratio_cpu"] = round((lc / k) / max(fck / k, 1e-9), 1)
    text = json.dumps(res)
    print(text)
    if args.out:
        from neurosynth.io import atomic_write

        with atomic_write(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
