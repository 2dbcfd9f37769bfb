"""Cost of the cochlea (``neurosynth.datasets.cochlea``) per utterance, on spoken digits from espeak-ng.

Renders ``--n`` utterances of the spoken_digits plan (needs espeak-ng), then times, per utterance, the
front end (level + gammatone filterbank + hair cells: ``Cochlea.cochleagram``) one utterance at a time and the
synapse + LIF stage both one at a time and batched (``spike_units_batch``, as the generator runs it). Reports
wall and CPU (process) seconds per utterance and the audio duration, as JSON.

    OMP_NUM_THREADS=1 python benchmarks/bench_cochlea.py --n 32
"""

from __future__ import annotations

import argparse
import json
import platform
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--channels", type=int, default=700)
    args = p.parse_args(argv)
    import numpy as np

    from neurosynth.datasets import spoken_digits as sd
    from neurosynth.datasets.cochlea import Cochlea, CochleaConfig

    variants = sd.espeak_variants()
    opts = sd.SpokenDigitsOptions()
    utts = sd.plan("train", variants[: max(1, args.n // 20 + 1)], variants, opts)[: args.n]
    waves = [sd.render(u) for u in utts]
    coch = Cochlea(CochleaConfig(n_channels=args.channels))
    coch.cochleagram(*waves[0])  # warm-up: FFT plans and cached filter responses

    def timed(fn):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        return out, time.perf_counter() - w, time.process_time() - c

    drives, fw, fc = timed(lambda: [coch.cochleagram(w, fs) for w, fs in waves])
    _, sw, sc = timed(lambda: [coch.spike_units(d) for d in drives])
    spikes, bw, bc = timed(lambda: coch.spike_units_batch(drives, [0] * len(drives)))
    n = len(waves)
    audio_s = float(np.mean([len(w) / fs for w, fs in waves]))
    res = {"utterances": n, "channels": args.channels, "mean_audio_seconds": round(audio_s, 3),
           "front_end_per_utt": {"wall_s": round(fw / n, 4), "cpu_s": round(fc / n, 4)},
           "lif_one_at_a_time_per_utt": {"wall_s": round(sw / n, 4), "cpu_s": round(sc / n, 4)},
           "lif_batched_per_utt": {"wall_s": round(bw / n, 4), "cpu_s": round(bc / n, 4)},
           "mean_spikes": round(float(np.mean([len(t) for t, _ in spikes])), 1),
           "cpu": platform.processor() or platform.machine()}
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
