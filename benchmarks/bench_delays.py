"""Forward + backward time of the learnable-delay layer (:class:`neurosynth.delays.DelayedLinear`) against a plain
Linear at SHD size, on the CPU with one thread, and of three ways to apply the ``[N_out, N_in, K]`` delay kernel.

Default sizes are the DCLS SHD configuration's first layer: T=100 steps, batch 32, 140 -> 256, K=25 taps.
Inputs are Bernoulli(0.1) spikes (the density does not change dense kernels' time). Every variant builds its
kernel from the weights and the Gaussian taps (training mode, sigma = 2) inside the timed region, then runs the
forward and the backward of ``y.square().mean()``:

- ``linear``: ``nn.Linear`` on the ``[T*B, N]`` view (what ``SNN`` does for a Linear), the baseline;
- ``delayed_conv1d``: the layer as shipped (one causal ``conv1d`` over time, ``neurosynth.delays.delayed_linear``);
- ``delayed_matmul_shift``: one GEMM ``x @ kernel -> [T, B, K, N_out]`` then the sum of the K time-shifted slices;
- ``delayed_unfold``: im2col by hand (``[T*B, N_in*K]`` windows) then one GEMM;
- ``delayed_eval``: the layer in eval mode (rounded one-tap delays), forward only (no grad);
- ``delayed_conv1d_subnormal``: as ``delayed_conv1d`` but with the kernel's subnormal entries kept (the layer before
  ``delay_kernel`` set them to zero). While sigma anneals, a few percent of ``w g`` fall below float32's smallest
  normal number (``subnormal_fraction``), and the CPU's convolution runs them in microcode. The spoken-digits
  delays recipe's sizes at the mid-anneal sigma::

    OMP_NUM_THREADS=1 python benchmarks/bench_delays.py --T 70 --batch 64 --n-in 700 --K 12 --sigma 0.61 \
        --repeat 5 --json benchmarks/results/bench_delays_subnormal_cpu.json

Each variant: 3 warm-up iterations, then ``--repeat`` timed ones; the median wall time and the median CPU time of
the process are reported (the machine is shared, so CPU time is the steadier figure). Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_delays.py --json benchmarks/results/bench_delays_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from neurosynth.delays import DelayedLinear, delay_kernel, delayed_linear, gaussian_taps


def _matmul_shift(x, kernel):
    T, B, _ = x.shape
    K = kernel.shape[-1]
    z = (x.reshape(T * B, -1) @ kernel.permute(1, 2, 0).reshape(kernel.shape[1], -1)).reshape(T, B, K, -1)
    y = z[:, :, 0].clone()
    for k in range(1, K):
        y[k:] += z[: T - k, :, k]
    return y


def _unfold(x, kernel):
    T, B, n_in = x.shape
    K = kernel.shape[-1]
    xp = F.pad(x, (0, 0, 0, 0, K - 1, 0))  # [T+K-1, B, N_in]
    win = xp.unfold(0, K, 1)  # [T, B, N_in, K]: window k holds x[t - (K-1) + k]
    return win.reshape(T * B, n_in * K).matmul(kernel.flip(-1).reshape(kernel.shape[0], -1).t()).reshape(T, B, -1)


def _time(fn, repeat: int) -> dict:
    for _ in range(3):
        fn()
    wall, cpu = [], []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return {"wall_median_ms": 1e3 * statistics.median(wall), "cpu_median_ms": 1e3 * statistics.median(cpu),
            "wall_min_ms": 1e3 * min(wall), "repeat": repeat}


def _machine() -> dict:
    model = platform.processor() or ""
    try:
        for ln in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if ln.startswith("Model name:"):
                model = ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "loadavg": os.getloadavg()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--T", type=int, default=100)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--n-in", type=int, default=140)
    p.add_argument("--n-out", type=int, default=256)
    p.add_argument("--K", type=int, default=25)
    p.add_argument("--sigma", type=float, default=2.0)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(args.seed)
    x = (torch.rand(args.T, args.batch, args.n_in, generator=g) < 0.1).float()
    layer = DelayedLinear(args.n_in, args.n_out, max_delay=args.K, generator=g)
    layer.set_sigma(args.sigma)
    lin = torch.nn.Linear(args.n_in, args.n_out, bias=False)

    def fwd_bwd(apply):
        def run():
            layer.zero_grad(set_to_none=True)
            k = delay_kernel(layer.weight, layer.delay, layer.sigma, layer.max_delay)
            apply(x, k).square().mean().backward()
        return run

    def subnormal_kernel():  # the kernel before subnormal entries were zeroed
        return layer.weight.unsqueeze(-1) * gaussian_taps(layer.delay, layer.sigma, layer.max_delay)

    def conv_subnormal():
        layer.zero_grad(set_to_none=True)
        delayed_linear(x, subnormal_kernel()).square().mean().backward()

    def linear():
        lin.zero_grad(set_to_none=True)
        lin(x.reshape(-1, args.n_in)).reshape(args.T, args.batch, -1).square().mean().backward()

    def evaluate():
        with torch.no_grad():
            layer.eval()(x)
        layer.train()

    # the three kernels agree
    k = delay_kernel(layer.weight, layer.delay, layer.sigma, layer.max_delay).detach()
    ref = delayed_linear(x, k)
    for fn in (_matmul_shift, _unfold):
        torch.testing.assert_close(fn(x, k), ref, rtol=1e-4, atol=1e-4)

    variants = {"linear": linear, "delayed_conv1d": fwd_bwd(delayed_linear),
                "delayed_matmul_shift": fwd_bwd(_matmul_shift), "delayed_unfold": fwd_bwd(_unfold),
                "delayed_eval": evaluate, "delayed_conv1d_subnormal": conv_subnormal}
    with torch.no_grad():
        raw = subnormal_kernel()
        subnormal = float(((raw != 0) & (raw.abs() < torch.finfo(raw.dtype).tiny)).float().mean())
    torch.testing.assert_close(delayed_linear(x, raw), ref, rtol=0, atol=1e-30)  # the same layer, numerically
    results = {}
    for name, fn in variants.items():
        results[name] = _time(fn, args.repeat)
        print(f"{name:22s} wall {results[name]['wall_median_ms']:8.2f} ms  cpu {results[name]['cpu_median_ms']:8.2f} ms",
              flush=True)
    base = results["linear"]["cpu_median_ms"]
    ratios = {k: v["cpu_median_ms"] / base for k, v in results.items() if k != "linear"}
    out = {"benchmark": "bench_delays", "sizes": {k: getattr(args, k) for k in ("T", "batch", "n_in", "n_out", "K")},
           "sigma": args.sigma, "seed": args.seed, "input": "Bernoulli(0.1) spikes",
           "timed": "forward + backward of y.square().mean(), kernel built inside (delayed_eval: forward only)",
           "results": results, "cpu_ratio_vs_linear": ratios, "subnormal_fraction": subnormal,
           "subnormal_slowdown": results["delayed_conv1d_subnormal"]["cpu_median_ms"]
           / results["delayed_conv1d"]["cpu_median_ms"], "machine": _machine(),
           "command": "OMP_NUM_THREADS=1 python benchmarks/bench_delays.py " + " ".join(argv or [])}
    if args.json:
        from neurosynth.io import atomic_write

        with atomic_write(args.json) as f:
            f.write(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
