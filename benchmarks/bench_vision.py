"""Speed of the vision data path: Fashion-MNIST decoding and batching, the event-camera simulator, and one
training step of the default conv-SNN recipe. Prints JSON (wall and CPU seconds; the CPU seconds are the
better figure on a shared machine).

    OMP_NUM_THREADS=1 python benchmarks/bench_vision.py [--images 128]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time


def timed(fn):
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, round(time.perf_counter() - t, 3), round(time.process_time() - c, 3)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=128, help="images to run through the event camera")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from neurosynth.datasets import fashion, load
    from neurosynth.datasets.event_camera import EventCameraConfig, Sensor, saccade_events

    res = {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__, "threads": 1,
           "load_average": os.getloadavg()}
    fashion._CACHE.clear()
    (tr, te), w, c = timed(lambda: (load("fashion_mnist", split="train", T=2), load("fashion_mnist", split="test")))
    res["fashion_decode_both_splits"] = {"wall_s": w, "cpu_s": c}
    _, w, c = timed(lambda: load("fashion_mnist", split="train", T=2))
    res["fashion_load_again"] = {"wall_s": w, "cpu_s": c}
    _, w, c = timed(lambda: sum(len(y) for _, y in tr.batches(128)))
    res["fashion_epoch_direct_T2_B128"] = {"wall_s": w, "cpu_s": c}
    rate = load("fashion_mnist", split="train", T=4, encoding="rate")
    _, w, c = timed(lambda: sum(len(y) for _, y in rate.batches(128)))
    res["fashion_epoch_rate_T4_B128"] = {"wall_s": w, "cpu_s": c}
    dl = torch.utils.data.DataLoader(tr, batch_size=128)
    _, w, c = timed(lambda: [b for _, b in zip(range(50), dl)])
    res["fashion_dataloader_per_sample_50_batches"] = {"wall_s": w, "cpu_s": c}

    imgs = tr.images[: args.images, 0].numpy()
    sensor = Sensor(34, 34, EventCameraConfig())
    evs, w, c = timed(lambda: [e for i in range(0, len(imgs), 64)
                               for e in saccade_events(imgs[i:i + 64], sensor, range(i, min(i + 64, len(imgs))))])
    res["nfashion_simulation"] = {"images": len(imgs), "wall_s": w, "cpu_s": c,
                                  "cpu_ms_per_image": round(1000 * c / len(imgs), 1),
                                  "events_per_image": round(sum(len(e) for e in evs) / len(evs))}

    from neurosynth.apps.recipes.csnn import RECIPES, build_spec
    from neurosynth.arch import build
    from neurosynth.losses import get_loss

    cfg = RECIPES["cpu"]
    model = build(build_spec(cfg, (1, 28, 28), 10))
    opt = torch.optim.Adam(model.parameters(), cfg["lr"])
    loss = get_loss("mean_membrane_ce")
    x, y = next(iter(tr.batches(cfg["batch_size"])))
    times = []
    for _ in range(6):
        def step():
            opt.zero_grad()
            loss(model(x), y).backward()
            opt.step()
        _, w, c = timed(step)
        times.append((w, c))
    w, c = min(t[0] for t in times[1:]), min(t[1] for t in times[1:])
    res["csnn_cpu_recipe_train_step_B128_T2"] = {"wall_s": w, "cpu_s": c,
                                                 "extrapolated_cpu_s_per_epoch": round(c * 469, 1)}
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
