"""Where a Lava run of the pooled conv (DVS) network spends its time, and what the batching buys.

Times :func:`neurosynth.hardware.lava.builder.build_graph` + ``LavaGraph.run`` of the Loihi-exact pooled conv
net (``loihi_pooled_conv_spec``, random 8-bit weights) on Bernoulli input spikes, for each of ``--copies``
(replicas side by side), at two run lengths (``--steps``: the difference gives the cost per simulated step,
the rest is start-up: compiling, forking one OS process per Lava process, tearing down), with the spikes of
every layer recorded either by Lava's sink ``RingBuffer`` read back with ``Var.get()`` (``--sink ringbuffer``,
one inter-process message per element in lava-nc 0.10) or by our memmap ``SpikeRecorder`` (``--sink file``).
Also times Lava's Python ``Conv`` kernel (``lava.proc.conv.utils.conv``, scipy, one ``convolve2d`` per
(output, input) channel pair) in-process per layer. Prints one JSON line per measurement.

    OMP_NUM_THREADS=1 python benchmarks/lava_run.py --size 16 --channels 8 --copies 1 4 --steps 20 80 \\
        --sink ringbuffer file

Wall times depend on the machine's load (Lava runs ~20 OS processes that hand messages to each other every
step); report them with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--copies", type=int, nargs="+", default=[1, 4])
    p.add_argument("--steps", type=int, nargs=2, default=[20, 80])
    p.add_argument("--sink", nargs="+", default=["ringbuffer", "file"], choices=["ringbuffer", "file"])
    p.add_argument("--mode", default="fixed", choices=["float", "fixed"])
    p.add_argument("--rate", type=float, default=0.1, help="input spike probability per pixel and step")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import numpy as np
    import torch

    from neurosynth.arch import build
    from neurosynth.hardware.lava.builder import _lava_shape, build_graph, lava_conv_weight, replicate
    from neurosynth.hardware.lava.compat import import_lava
    from neurosynth.hardware.lava.ir import extract
    from neurosynth.hardware.targets import loihi_qat as qat

    torch.manual_seed(args.seed)
    shape = (2, args.size, args.size)
    spec = qat.loihi_pooled_conv_spec(shape, [args.channels, 2 * args.channels], args.hidden, 10, beta=0.85)
    net = extract(qat.scale_synapses(build(spec), 6.0).eval(), shape)
    rng = np.random.default_rng(args.seed)
    machine = {"cpus": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2),
               "cpu": platform.processor() or platform.machine()}
    import_lava()
    from lava.proc.conv import utils

    for R in args.copies:
        big = replicate(net, R)
        kernel_ms = {}
        for st in big.stages:
            if st.kind != "conv":
                continue
            w = lava_conv_weight(st.weight.astype(float))
            x = rng.random(_lava_shape(st.in_shape)) < args.rate
            t = time.perf_counter()
            for _ in range(10):
                utils.conv(x, w, np.array(w.shape[1:3]), np.array(st.stride[::-1]), np.array(st.padding[::-1]),
                           np.array(st.dilation[::-1]), st.groups)
            kernel_ms[st.name] = round((time.perf_counter() - t) / 10 * 1e3, 2)
        for sink in args.sink:
            runs = {}
            for steps in args.steps:
                x = (rng.random((steps, *big.input_shape)) < args.rate).astype(np.int32)
                t0 = time.perf_counter()
                graph = build_graph(big, x, args.mode, sink=sink)
                t1 = time.perf_counter()
                spikes = graph.run()
                t2 = time.perf_counter()
                runs[steps] = {"build_s": round(t1 - t0, 2), "run_s": round(t2 - t1, 2),
                               "recorded_values": int(sum(s.size for s in spikes))}
            (a, ra), (b, rb) = sorted(runs.items())
            per_step = (rb["run_s"] - ra["run_s"]) / (b - a)
            print(json.dumps({"copies": R, "sink": sink, "mode": args.mode, "input": list(shape),
                              "channels": [args.channels, 2 * args.channels], "hidden": args.hidden,
                              "lava_processes": 1 + 3 * len(net.stages), "runs": runs,
                              "seconds_per_step": round(per_step, 4),
                              "seconds_per_sample_step": round(per_step / R, 4),
                              "startup_s": round(ra["run_s"] - a * per_step, 2),
                              "conv_kernel_ms_per_step_in_process": kernel_ms, **machine}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
