"""One mode of the Lava check of a saved ``examples/train_shd.py --loihi`` run, so float and fixed point can run
as two processes (and with different ``--copies``: the fixed-point run of 20 copies of a 700-128 recurrent
network was killed by the OOM killer on a 23 GB machine). Same checks as ``verify_samples``::

    python benchmarks/shd_verify_mode.py RUN --n 480 --mode float --copies 20   # -> RUN/lava_float.json
    python benchmarks/shd_verify_mode.py RUN --n 480 --mode fixed --copies 8    # -> RUN/lava_fixed.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("run")
    p.add_argument("--n", type=int, default=480)
    p.add_argument("--mode", choices=["float", "fixed"], required=True)
    p.add_argument("--copies", type=int, default=None)
    a = p.parse_args()
    torch.set_num_threads(1)
    from neurosynth.datasets import load
    from neurosynth.hardware.energy import compare, count_ops
    from neurosynth.hardware.lava.ir import extract
    from neurosynth.hardware.lava.netx import read_netx, write_netx
    from neurosynth.hardware.lava.verify import verify
    from neurosynth.io import write_json
    from neurosynth.rundir import load_run

    run = Path(a.run)
    model, _, _ = load_run(run)
    cfg = json.loads((run / "manifest.json").read_text())["config"]
    test = load(cfg["dataset"], cfg["data_root"], "test", T=int(cfg["T"]), binary=True)
    n = min(a.n, len(test))
    x = (torch.stack([torch.as_tensor(test[i][0]) for i in range(n)], 1) > 0).float()
    y = torch.as_tensor([int(test[i][1]) for i in range(n)])
    model.eval()
    shape = (int(x.shape[-1]),)
    h5 = run / f"loihi_{a.mode}.h5"
    write_netx(extract(model, shape), h5)
    t0 = time.perf_counter()
    net = read_netx(h5) if a.mode == "fixed" else None  # fixed point runs the network read back from the file
    rep = verify(model, x, y, input_shape=shape, net=net, modes=(a.mode,), copies=a.copies, progress=True)
    rep["seconds"] = time.perf_counter() - t0
    if a.mode == "float":
        with torch.no_grad():
            e = compare(count_ops(model, x))
        rep["energy"] = {"T": int(x.shape[0]), "syn_ops": e["counts"]["syn_ops"],
                         "neuron_updates": e["counts"]["neuron_updates"], "ann_macs": e["counts"]["ann_macs"],
                         "loihi_nj": e["snn"]["total_j"] * 1e9, "ann_nj": e["ann"]["total_j"] * 1e9}
    write_json(run / f"lava_{a.mode}.json", {"copies": a.copies, **rep})
    print(json.dumps({k: v for k, v in rep.items() if "accuracy" in k or "exact" in k or k == "seconds"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
