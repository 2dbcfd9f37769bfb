"""Events per image of the nfashion_mnist protocol (three N-MNIST saccades over a Fashion-MNIST image) with the
default (v2e) camera and the pre-format-2 noise settings, on the first ``--n`` test images; prints JSON.

    nice python benchmarks/nfashion_events.py --n 256
"""

from __future__ import annotations

import argparse
import json
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=256)
    args = p.parse_args(argv)
    import numpy as np

    from neurosynth.datasets.event_camera import EventCameraConfig, Sensor, saccade_events
    from neurosynth.datasets.fashion import locate, missing_error, read_idx

    found = locate(None, "test")
    if found is None:
        raise missing_error(None, "test")
    imgs = read_idx(found[0])[: args.n]
    out = {}
    for name, cfg in (("v2e defaults", EventCameraConfig()),
                      ("old noise (leak 0.1 Hz, shot 0.5 Hz)", EventCameraConfig(leak_rate_hz=0.1,
                                                                                  shot_noise_rate_hz=0.5))):
        sensor = Sensor(34, 34, cfg)
        c0 = time.process_time()
        counts = []
        for s in range(0, len(imgs), 64):
            evs = saccade_events(imgs[s:s + 64], sensor, list(range(s, s + 64))[: len(imgs[s:s + 64])])
            counts += [len(e) for e in evs]
        out[name] = {"mean": round(float(np.mean(counts))), "median": int(np.median(counts)),
                     "min": int(np.min(counts)), "max": int(np.max(counts)),
                     "cpu_s_per_image": round((time.process_time() - c0) / len(imgs), 4)}
    print(json.dumps({"images": len(imgs), **out}))
    return 0


if __name__ == "__main__":
    from neurosynth.errors import run_script

    raise SystemExit(run_script(main))
