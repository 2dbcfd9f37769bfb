"""Forward+backward time of a 700-256-256-20 LIF network (B=32, T=100, surrogate BPTT with ATan), per backend.

Variants (each timed in its own subprocess, then measured for memory in another one):

- ``floor``: the same network's matmuls and spike function (ATan surrogate) with no recurrence: the cost no
  LIF implementation can go below;
- ``ns_fused``: neurosynth ``LIF(backend="fused")`` with the C++ kernel (built on first use, cached);
- ``ns_fused_torch``: the fused backend with its pure-torch loops (``NEUROSYNTH_NO_CEXT=1``);
- ``ns_python``: neurosynth ``LIF(backend="python")``: a loop over the pure step function, autograd;
- ``snntorch``: snnTorch ``Leaky``, stepped over time tutorial-style (Linear inside the time loop);
- ``snntorch_hoisted``: snnTorch ``Leaky`` with each Linear hoisted out of the loop (one GEMM per layer);
- ``spikingjelly``: SpikingJelly 2.0 ``LIFNode(step_mode="m")`` (its default CPU op), one GEMM per layer.
- ``ns_cubalif`` / ``ns_alif`` (``*_python``): the same network with fused (python-backend) ``CubaLIF``
  (alpha 0.5, reset to zero) or ``ALIF`` (adapt_decay 0.95, adapt_scale 0.2) layers; compared with the same floor.
- ``rec_fused`` / ``rec_python``: ``Linear(700, 256) -> Recurrent(256, LIF) -> Linear(256, 20) -> LIF`` (the SHD
  recurrent model at hidden 256), with the recurrent fast path (per-step GEMM + fused C++ step, reverse-scan
  backward) or the python loop over the pure step (what ``Recurrent`` ran before the fast path).
- ``custom_generated`` / ``custom_eager`` / ``custom_compiled``: the 700-256-256-20 network with a custom neuron
  written as a Python ``charge`` (the README's quadratic LIF, ``examples/custom_neuron.py``:
  ``v = beta v + a relu(v)^2 + x``, reset to zero): through the kernel generated from its hooks (the default;
  ``neurosynth/_ops/custom``), or the reference loop over the pure step (``backend="python"``), eager or under
  ``torch.compile(model)`` (default inductor backend). ``first_iter_ms`` includes the kernel generation
  (``custom_generated``, when its cache is cold: ``--cold-kernel-cache``) or the compilation (``custom_compiled``),
  reported as ``compile_s``.
- ``custom_adaptive`` / ``custom_refractory``: generated kernels of two two-state custom neurons: an adaptive
  threshold written as hooks (``threshold_of = threshold + 0.2 a``, ``after_fire: a = 0.95 a + s``) and the
  tutorial's refractory LIF (``t_ref`` 2 steps).
- ``ns_adlif`` / ``ns_adlif_python``: the 700-256-256-20 network with ``AdLIF`` layers (Bittar & Garner 2022;
  per-neuron learnable alpha, beta, a, b as trained, defaults tau_u 10, tau_w 60, a 0.5, b 1, subtractive reset,
  weights scaled 10x more, since adLIF scales its input by 1 - alpha): through the kernel generated from its
  hooks (the default ``backend="auto"``) or the python loop over ``functional.adlif_step``; ``rec_adlif``: the
  ``rec_*`` network with ``Recurrent(256, AdLIF)`` (RadLIF), which runs the python loop (no recurrent fast path for
  adLIF). Compare with ``ns_fused`` (LIF, C++ kernel) and ``floor``.
- ``shd_fused`` / ``shd_python`` (``--recurrent-shd``): the recurrent SHD model at the issue's size, built as
  ``examples/train_shd.py`` builds it: ``SNN(Linear(700, 1024), Recurrent(1024, LIF(beta 0.95)), Linear(1024, 20),
  LI(beta 0.95))``, B=256, T=100, loss cross-entropy of the max-over-time readout; fast path vs the python loop
  (hidden LIF ``backend="python"``). ``--recurrent-shd`` defaults to B=256, T=100, 1 warm-up, 1 round of 3
  timed iterations, no memory pass (one iteration takes seconds on one core).

All variants use the same weights, input (Bernoulli(0.05) spikes) and labels; loss is cross-entropy of the
output spike counts. LIF: beta 0.9, threshold 1, reset by subtraction, detached reset, ATan(alpha=2).
Timing: ``--warmup`` iterations, then ``--rounds`` x ``--iters`` timed iterations; a worker reports the median
of its timed iterations (wall clock; also the median CPU time of the process, which a busy shared machine
disturbs less). ``--runs N`` repeats the set of workers N times, interleaved so that a change of machine load
hits every variant, and reports the median over runs; ratios use these medians.
Memory: MB saved for backward (unique storages still held by the graph when backward starts, through
``saved_tensors_hooks``) and the peak RSS growth during one iteration, sampled every 0.2 ms in a process
where glibc maps every block over 4 KiB separately and returns it on free (so RSS follows live memory; the
sampler can miss short peaks, so treat it as approximate).

Usage::

    python benchmarks/bench_lif.py                      # full run, prints a table
    python benchmarks/bench_lif.py --runs 3 --json benchmarks/results/bench_lif.json
    python benchmarks/bench_lif.py --quick --json out.json
    python benchmarks/bench_lif.py --threads 2 --variants floor,ns_fused,snntorch
    python benchmarks/bench_lif.py --recurrent-shd --json benchmarks/results/bench_shd_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "floor": "GEMMs + spike fn, no recurrence (floor)",
    "ns_fused": "neurosynth fused, C++ kernel",
    "ns_fused_torch": "neurosynth fused, pure-torch loop",
    "ns_python": "neurosynth python backend (autograd)",
    "snntorch": "snnTorch Leaky, step loop (tutorial)",
    "snntorch_hoisted": "snnTorch Leaky, Linear hoisted",
    "spikingjelly": "SpikingJelly LIFNode 'm' (CPU op)",
    "ns_cubalif": "neurosynth CubaLIF fused, C++ kernel",
    "ns_cubalif_python": "neurosynth CubaLIF python backend",
    "ns_alif": "neurosynth ALIF fused, C++ kernel",
    "ns_alif_python": "neurosynth ALIF python backend",
    "rec_fused": "recurrent net 700-256(rec LIF)-20: fast path",
    "rec_python": "recurrent net 700-256(rec LIF)-20: python loop (before)",
    "shd_fused": "SHD model 700-1024(rec LIF)-20: fast path",
    "shd_python": "SHD model 700-1024(rec LIF)-20: python loop (before)",
    "custom_generated": "custom neuron (Python charge), generated kernel",
    "custom_adaptive": "custom adaptive neuron (hooks, 2 states), generated kernel",
    "custom_refractory": "custom refractory LIF (hooks, 2 states), generated kernel",
    "custom_eager": "custom neuron (Python charge), eager reference loop",
    "custom_compiled": "custom neuron (Python charge), torch.compile(model)",
    "ns_adlif": "neurosynth adLIF, kernel generated from its hooks",
    "ns_adlif_python": "neurosynth adLIF python backend (autograd)",
    "rec_adlif": "recurrent net 700-256(rec adLIF = RadLIF)-20: python loop",
}
ADLIF_VARIANTS = ("ns_adlif", "ns_adlif_python", "rec_adlif")
SHD_VARIANTS = ("shd_fused", "shd_python")
CUSTOM_VARIANTS = ("custom_generated", "custom_adaptive", "custom_refractory", "custom_eager", "custom_compiled")


def _custom_neurons() -> dict:
    """The benchmark's custom neurons (benchmark-local classes, not registered), by variant."""
    from neurosynth.neurons import NeuronModel

    class QuadraticLIF(NeuronModel):  # the README's / examples/custom_neuron.py's neuron
        defaults = {"beta": 0.9, "threshold": 1.0, "a": 0.1}
        default_reset = "zero"

        def charge(self, x, state, p):
            return state._replace(v=p.beta * state.v + p.a * state.v.clamp(min=0) ** 2 + x)

    class AdaptiveLIF(NeuronModel):  # an adaptive threshold written as hooks (two states)
        defaults = {"beta": 0.9, "threshold": 1.0, "rho": 0.95, "b": 0.2}
        state_vars = ("v", "a")

        def charge(self, x, state, p):
            return state._replace(v=p.beta * state.v + x)

        def threshold_of(self, state, p):
            return p.threshold + p.b * state.a

        def after_fire(self, s, state, p):
            return state._replace(a=p.rho * state.a + s)

    class RefractoryLIF(NeuronModel):  # docs/tutorials/02_custom_neurons.py
        defaults = {"beta": 0.9, "threshold": 1.0, "t_ref": 2.0}
        state_vars = ("v", "ref")
        default_reset = "zero"

        def charge(self, x, state, p):
            open_ = (state.ref <= 0).to(x.dtype)
            return state._replace(v=p.beta * state.v + open_ * x, ref=(state.ref - 1).clamp_min(0))

        def after_fire(self, s, state, p):
            return state._replace(ref=state.ref + s.detach() * (p.t_ref - state.ref))

    return {"custom_generated": QuadraticLIF, "custom_eager": QuadraticLIF, "custom_compiled": QuadraticLIF,
            "custom_adaptive": AdaptiveLIF, "custom_refractory": RefractoryLIF}
SIZES = (700, 256, 256, 20)


# ------------------------------------------------------------------------------------------ worker side
def _build(variant: str, batch: int, steps: int):
    """Return ``(step_fn, params, info)``: ``step_fn()`` runs one forward+backward and returns the loss."""
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(0)
    x = (torch.rand(steps, batch, SIZES[0], generator=g) < 0.05).float()
    labels = torch.randint(0, SIZES[-1], (batch,), generator=g)
    torch.manual_seed(0)  # same Linear initialisation in every variant
    fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(SIZES[:-1], SIZES[1:]))
    with torch.no_grad():
        for fc in fcs:
            fc.weight.mul_(4.0)  # enough drive for a few % firing in every layer
    params = list(fcs.parameters())
    T, B = steps, batch
    info = {}

    def gemm(fc, inp):
        return fc(inp.reshape(T * B, -1)).reshape(T, B, -1)

    def loss_of(out):
        return nn.functional.cross_entropy(out.sum(0), labels)

    if variant == "floor":
        from neurosynth.surrogate import ATan

        spike = ATan(alpha=2.0)

        def forward():
            h = x
            for fc in fcs:
                h = spike(gemm(fc, h) - 1.0)
            return h

    elif variant in ("ns_fused", "ns_fused_torch", "ns_python"):
        from neurosynth import _cext
        from neurosynth.neurons import LIF

        backend = "python" if variant == "ns_python" else "fused"
        lifs = [LIF(beta=0.9, threshold=1.0, reset="subtract", surrogate={"name": "atan", "alpha": 2.0},
                    backend=backend) for _ in fcs]
        if variant == "ns_fused":
            st = _cext.status()
            if not st["available"]:
                raise RuntimeError(f"C++ kernel unavailable: {st['reason']}")
        info["cext"] = _cext.available(x)

        def forward():
            h = x
            for fc, lif in zip(fcs, lifs):
                h = lif(gemm(fc, h))
            return h

    elif variant in ("ns_cubalif", "ns_cubalif_python", "ns_alif", "ns_alif_python"):
        from neurosynth import _cext
        from neurosynth.neurons import ALIF, CubaLIF

        backend = "python" if variant.endswith("_python") else "fused"
        sur = {"name": "atan", "alpha": 2.0}
        if variant.startswith("ns_cubalif"):
            lifs = [CubaLIF(alpha=0.5, beta=0.9, threshold=1.0, surrogate=sur, backend=backend) for _ in fcs]
        else:
            lifs = [ALIF(beta=0.9, threshold=1.0, adapt_decay=0.95, adapt_scale=0.2, surrogate=sur, backend=backend)
                    for _ in fcs]
        if backend == "fused" and not _cext.status()["available"]:
            raise RuntimeError(f"C++ kernel unavailable: {_cext.status()['reason']}")
        info["cext"] = _cext.available(x)

        def forward():
            h = x
            for fc, lif in zip(fcs, lifs):
                h = lif(gemm(fc, h))
            return h

    elif variant in ("rec_fused", "rec_python"):
        from neurosynth.layers import Recurrent
        from neurosynth.neurons import LIF

        backend = "python" if variant == "rec_python" else "fused"
        sur = {"name": "atan", "alpha": 2.0}
        torch.manual_seed(0)
        fc_in, fc_out = nn.Linear(SIZES[0], SIZES[1]), nn.Linear(SIZES[1], SIZES[-1])
        rec = Recurrent(SIZES[1], LIF(beta=0.9, threshold=1.0, surrogate=sur, backend=backend))
        out_lif = LIF(beta=0.9, threshold=1.0, surrogate=sur, backend=backend)
        with torch.no_grad():
            fc_in.weight.mul_(4.0)
            fc_out.weight.mul_(4.0)
            rec.rec.weight.mul_(0.5)
        params = [*fc_in.parameters(), *rec.parameters(), *fc_out.parameters()]
        info["fast_path"] = rec._fast_op(rec.neuron.initial_state(torch.zeros(B, SIZES[1]))) is not None

        def forward():
            return out_lif(gemm(fc_out, rec(gemm(fc_in, x))))

    elif variant in ADLIF_VARIANTS:
        from neurosynth.layers import Recurrent
        from neurosynth.neurons import AdLIF

        backend = "python" if variant == "ns_adlif_python" else "auto"
        sur = {"name": "atan", "alpha": 2.0}
        with torch.no_grad():
            for fc in fcs:
                fc.weight.mul_(10.0)  # adLIF integrates (1 - alpha) x: about 10x the LIF drive for similar firing
        if variant == "rec_adlif":
            torch.manual_seed(0)
            fc_in, fc_out = nn.Linear(SIZES[0], SIZES[1]), nn.Linear(SIZES[1], SIZES[-1])
            rec = Recurrent(SIZES[1], AdLIF(shape=SIZES[1], surrogate=sur))
            out_n = AdLIF(shape=SIZES[-1], surrogate=sur)
            with torch.no_grad():
                fc_in.weight.mul_(40.0)
                fc_out.weight.mul_(40.0)
                rec.rec.weight.mul_(5.0)
            params = [*fc_in.parameters(), *rec.parameters(), *fc_out.parameters(), *out_n.parameters()]
            info["fast_path"] = rec._fast_op(rec.neuron.initial_state(torch.zeros(B, SIZES[1]))) is not None

            def forward():
                return out_n(gemm(fc_out, rec(gemm(fc_in, x))))
        else:
            lifs = nn.ModuleList(AdLIF(shape=n, surrogate=sur, backend=backend) for n in SIZES[1:])
            params = [*params, *lifs.parameters()]

            def forward():
                h = x
                for fc, lif in zip(fcs, lifs):
                    h = lif(gemm(fc, h))
                return h

        def paths():
            from neurosynth._ops import custom

            return custom.paths()

        info["paths"] = paths

    elif variant in ("snntorch", "snntorch_hoisted"):
        import snntorch
        from snntorch import surrogate

        lifs = [snntorch.Leaky(beta=0.9, threshold=1.0, spike_grad=surrogate.atan(alpha=2.0),
                               reset_mechanism="subtract") for _ in fcs]
        if variant == "snntorch":
            def forward():
                mems = [lif.init_leaky() for lif in lifs]
                out = []
                for t in range(T):
                    h = x[t]
                    for i, (fc, lif) in enumerate(zip(fcs, lifs)):
                        h, mems[i] = lif(fc(h), mems[i])
                    out.append(h)
                return torch.stack(out)
        else:
            def forward():
                h = x
                for fc, lif in zip(fcs, lifs):
                    cur = gemm(fc, h)
                    mem = lif.init_leaky()
                    spk = []
                    for t in range(T):
                        s, mem = lif(cur[t], mem)
                        spk.append(s)
                    h = torch.stack(spk)
                return h

    elif variant == "spikingjelly":
        from spikingjelly.activation_based import functional, neuron, surrogate

        lifs = nn.ModuleList(
            neuron.LIFNode(tau=10.0, decay_input=False, v_threshold=1.0, v_reset=None,
                           surrogate_function=surrogate.ATan(alpha=2.0), detach_reset=True, step_mode="m")
            for _ in fcs)

        def forward():
            functional.reset_net(lifs)
            h = x
            for fc, lif in zip(fcs, lifs):
                h = lif(gemm(fc, h))
            return h

    elif variant in CUSTOM_VARIANTS:
        neuron_cls = _custom_neurons()[variant]
        backend = "auto" if variant in ("custom_generated", "custom_adaptive", "custom_refractory") else "python"
        lifs = nn.ModuleList(neuron_cls(surrogate={"name": "atan", "alpha": 2.0}, backend=backend) for _ in fcs)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fcs, self.lifs = fcs, lifs

            def forward(self, inp):
                h = inp
                for fc, lif in zip(self.fcs, self.lifs):
                    h = lif(fc(h.reshape(T * B, -1)).reshape(T, B, -1))
                return h

        net = Net()
        run_net = torch.compile(net) if variant == "custom_compiled" else net

        def forward():
            return run_net(x)

        def paths():
            from neurosynth._ops import custom

            return custom.paths()

        info["paths"] = paths

    elif variant in SHD_VARIANTS:
        from neurosynth.layers import SNN, Recurrent
        from neurosynth.neurons import LI, LIF

        backend = "python" if variant == "shd_python" else "fused"
        hidden = 1024
        torch.manual_seed(0)
        rec = Recurrent(hidden, LIF(beta=0.95, threshold=1.0, backend=backend))
        model = SNN(nn.Linear(SIZES[0], hidden), rec, nn.Linear(hidden, SIZES[-1]), LI(beta=0.95))
        with torch.no_grad():  # a few % firing in the hidden layer (the default init leaves it almost silent)
            model[0].weight.mul_(4.0)
            rec.rec.weight.mul_(0.5)
        params = list(model.parameters())
        info["fast_path"] = rec._fast_op(rec.neuron.initial_state(torch.zeros(B, hidden))) is not None
        info["hidden"] = hidden
        hidden_rate = []

        def _rate(_m, _inp, out):
            hidden_rate.append(float(out.detach().mean()))

        rec.register_forward_hook(_rate)  # a module hook: the rec Linear (not hooked) keeps the fast path

        def loss_of(out):  # noqa: F811 - the SHD example's max-over-time readout
            return nn.functional.cross_entropy(out.max(0).values, labels)

        info["hidden_rate"] = hidden_rate

        def forward():
            return model(x)

    else:
        raise ValueError(f"unknown variant {variant!r}; choose from {sorted(VARIANTS)}")

    def step():
        for p in params:
            p.grad = None
        out = forward()
        loss = loss_of(out)
        loss.backward()
        return loss, out

    def forward_only():
        out = forward()
        return loss_of(out), out

    step.forward_only = forward_only
    step.params = params
    return step, info


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _worker(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    step, info = _build(args.worker, args.batch, args.steps)
    res = {"variant": args.worker, **info}
    t0 = time.perf_counter()
    loss, out = step()
    res["first_iter_ms"] = (time.perf_counter() - t0) * 1e3
    if args.worker in CUSTOM_VARIANTS and args.worker != "custom_eager":  # generated / compiled in the first call
        res["compile_s"] = res["first_iter_ms"] / 1e3
    if callable(res.get("paths")):
        res["paths"] = res["paths"]()
    res["loss"] = float(loss)
    res["output_rate"] = float(out.detach().mean())
    if "hidden_rate" in res:
        res["hidden_rate"] = res["hidden_rate"][-1] if res["hidden_rate"] else None
    if args.measure == "memory":
        for _ in range(2):
            step()
        holders = weakref.WeakSet()

        class Held:  # what autograd keeps; it dies with the graph node that saved it
            __slots__ = ("t", "__weakref__")

            def __init__(self, t):
                self.t = t

        def pack(t):
            h = Held(t)
            holders.add(h)
            return h

        for p_ in step.params:
            p_.grad = None
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda h: h.t):
            loss, out = step.forward_only()
        saved = {}
        for h in list(holders):  # only what the graph still holds when backward starts
            try:
                st = h.t.untyped_storage()
                saved[st.data_ptr()] = st.nbytes()
            except Exception:  # noqa: BLE001 - non-storage tensors do not count
                pass
        loss.backward()
        del loss, out
        res["saved_mb"] = sum(saved.values()) / 2**20
        peak, stop = [0], threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], _rss_bytes())
                time.sleep(0.0002)

        sys.setswitchinterval(1e-4)  # let the sampler in between the many small ops of per-step loops
        base = _rss_bytes()
        th = threading.Thread(target=sample, daemon=True)
        th.start()
        step()
        stop.set()
        th.join()
        res["peak_rss_mb"] = max(0, peak[0] - base) / 2**20
        return res
    for _ in range(args.warmup - 1):
        step()
    rounds, cpu = [], []
    for _ in range(args.rounds):
        times = []
        for _ in range(args.iters):
            t0, c0 = time.perf_counter(), time.process_time()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
        rounds.append(times)
    flat = [t for r in rounds for t in r]
    res["median_ms"] = statistics.median(flat)
    res["round_medians_ms"] = [statistics.median(r) for r in rounds]
    res["min_ms"] = min(flat)
    res["cpu_median_ms"] = statistics.median(cpu)  # CPU time of this process: robust to a shared machine
    return res


def saved_bytes(steps: int = 100, batch: int = 32, n: int = 256) -> list[dict]:
    """What each fused op keeps for backward, against the python backend: unique storages (MB) held by the graph
    when backward starts, and how many of them are spike trains (a ``[T, B, N]`` tensor of zeros and ones), for
    LIF, CubaLIF, ALIF (``[T, B, N]`` input) and a ``Recurrent(N, LIF)`` layer. The graph is built under
    ``saved_tensors_hooks`` and read before backward, in this process (small sizes, no timing)."""
    import torch

    from neurosynth.layers import Recurrent
    from neurosynth.neurons import ALIF, LIF, CubaLIF

    def build(name, backend):
        kw = dict(surrogate={"name": "atan", "alpha": 2.0}, backend=backend)
        if name == "lif":
            return LIF(beta=0.9, threshold=1.0, **kw)
        if name == "cubalif":
            return CubaLIF(alpha=0.5, beta=0.9, threshold=1.0, **kw)
        if name == "alif":
            return ALIF(beta=0.9, threshold=1.0, adapt_decay=0.95, adapt_scale=0.2, **kw)
        torch.manual_seed(0)
        return Recurrent(n, LIF(beta=0.9, threshold=1.0, **kw))

    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(steps, batch, n, generator=g) * 0.8 + 0.4
    rows = []
    for name in ("lif", "cubalif", "alif", "recurrent_lif"):
        row = {"op": name}
        for backend in ("fused", "python"):
            mod = build(name, backend)
            x = x0.clone().requires_grad_()
            held: list = []
            with torch.autograd.graph.saved_tensors_hooks(lambda t, h=held: (h.append(t), t)[1],
                                                          lambda t: t):
                out = mod(x)
            storages, spike_bytes = {}, 0
            for t in held:
                st = t.untyped_storage()
                if st.data_ptr() in storages:
                    continue
                storages[st.data_ptr()] = st.nbytes()
                if t.is_floating_point() and t.numel() >= batch * n and bool(((t == 0) | (t == 1)).all()):
                    spike_bytes += st.nbytes()  # a spike train (or a 0/1 mask) kept in a float dtype
            row[f"{backend}_saved_mb"] = sum(storages.values()) / 2**20
            row[f"{backend}_spike_mb"] = spike_bytes / 2**20
            row["output_shares_spike_storage"] = row.get("output_shares_spike_storage", False) or (
                backend == "fused" and out.untyped_storage().data_ptr() in storages)
            out.sum().backward()
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------ parent side
def _run_worker(variant: str, args, measure: str) -> dict:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(args.threads)
    env.setdefault("PYTHONPATH", str(ROOT))
    if args.cold_kernel_cache and variant in (*CUSTOM_VARIANTS, "ns_adlif", "rec_adlif"):  # the kernel generated (and compiled) afresh
        import tempfile

        env["NEUROSYNTH_KERNEL_CACHE"] = tempfile.mkdtemp(prefix="ns-kernels-")
    if variant == "ns_fused_torch":
        env["NEUROSYNTH_NO_CEXT"] = "1"
    else:
        env.pop("NEUROSYNTH_NO_CEXT", None)
    if measure == "memory":  # glibc hands freed blocks back, so RSS follows live memory
        env["MALLOC_MMAP_THRESHOLD_"] = "4096"
        env["MALLOC_TRIM_THRESHOLD_"] = "0"
        env["MALLOC_TOP_PAD_"] = "0"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", variant, "--measure", measure,
           "--threads", str(args.threads), "--batch", str(args.batch), "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--rounds", str(args.rounds), "--iters", str(args.iters)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(ROOT))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"variant": variant, "error": " | ".join(tail) or f"exit code {proc.returncode}"}
    return json.loads(lines[-1])


def _machine() -> dict:
    import torch

    model = platform.processor() or ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for ln in out.splitlines():
            if ln.startswith("Model name:"):
                model = ln.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    versions = {"torch": torch.__version__, "python": platform.python_version()}
    for mod in ("snntorch", "spikingjelly"):
        try:
            from importlib.metadata import version

            versions[mod] = version(mod)
        except Exception:  # noqa: BLE001
            versions[mod] = None
    return {"cpu": model, "cores": os.cpu_count(), "loadavg_start": load, "versions": versions,
            "platform": platform.platform()}


def _ratios(results: dict) -> dict:
    out = _ratios_of(results, "median_ms")
    out.update({f"cpu:{k}": v for k, v in _ratios_of(results, "cpu_median_ms").items()})
    return out


def _ratios_of(results: dict, key: str) -> dict:
    def med(v):
        r = results.get(v, {})
        return r.get(key)

    out = {}
    floor, fused = med("floor"), med("ns_fused")
    for v in results:
        m = med(v)
        if m is not None and floor:
            out[f"{v}/floor"] = m / floor
    if fused:
        for ref in ("snntorch", "snntorch_hoisted", "spikingjelly", "ns_python", "ns_fused_torch"):
            if med(ref):
                out[f"{ref}/ns_fused"] = med(ref) / fused
        for v in ("custom_generated", "custom_adaptive", "custom_refractory", "ns_adlif", "ns_adlif_python"):
            if med(v):
                out[f"{v}/ns_fused"] = med(v) / fused
    for slow, fast in (("ns_cubalif_python", "ns_cubalif"), ("ns_alif_python", "ns_alif"), ("rec_python", "rec_fused"),
                       ("shd_python", "shd_fused"), ("custom_eager", "custom_compiled"),
                       ("custom_eager", "custom_generated"), ("ns_adlif_python", "ns_adlif"),
                       ("rec_adlif", "rec_fused")):
        if med(slow) and med(fast):
            out[f"{slow}/{fast}"] = med(slow) / med(fast)
    return out


def _goals(ratios: dict) -> dict:
    goals = {}
    for v in ("ns_fused", "ns_cubalif", "ns_alif"):
        if f"{v}/floor" in ratios:
            goals[f"{v} within 1.3x of floor"] = ratios[f"{v}/floor"] <= 1.3
    if "rec_python/rec_fused" in ratios:
        goals["recurrent fast path >= 2x faster than the python loop"] = ratios["rec_python/rec_fused"] >= 2.0
    if "shd_python/shd_fused" in ratios:
        goals["recurrent SHD model >= 2x faster than the python loop"] = ratios["shd_python/shd_fused"] >= 2.0
    for v in ("custom_generated", "custom_adaptive", "custom_refractory"):
        if f"{v}/ns_fused" in ratios:
            goals[f"{v} within 1.5x of built-in LIF"] = ratios[f"{v}/ns_fused"] <= 1.5
    if "snntorch/ns_fused" in ratios:
        goals[">= 4x faster than snnTorch"] = ratios["snntorch/ns_fused"] >= 4.0
    if "spikingjelly/ns_fused" in ratios:
        goals[">= 2x faster than SpikingJelly"] = ratios["spikingjelly/ns_fused"] >= 2.0
    return goals


def _table(results: dict) -> str:
    floor = results.get("floor", {}).get("median_ms")
    fused = results.get("ns_fused", {}).get("median_ms")
    rows = ["| variant | median ms | round medians ms | x floor | x ns_fused | CPU ms | 1st iter ms | saved MB "
            "| peak RSS delta MB | loss |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for v, r in results.items():
        if "error" in r:
            rows.append(f"| {VARIANTS.get(v, v)} | error: {r['error']} | | | | | | | | |")
            continue
        m = r["median_ms"]
        rm = "/".join(f"{x:.1f}" for x in r["round_medians_ms"])
        rows.append(
            f"| {VARIANTS.get(v, v)} | {m:.1f} | {rm} | {m / floor:.2f} | {m / fused:.2f} | "
            f"{r['cpu_median_ms']:.1f} | {r['first_iter_ms']:.0f} | {r.get('saved_mb', float('nan')):.1f} | "
            f"{r.get('peak_rss_mb', float('nan')):.1f} | {r['loss']:.4f} |"
            if floor and fused else
            f"| {VARIANTS.get(v, v)} | {m:.1f} | {rm} | | | {r['cpu_median_ms']:.1f} | {r['first_iter_ms']:.0f} "
            f"| | | {r['loss']:.4f} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", type=Path, help="write results, ratios and the machine to this JSON file")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {list(VARIANTS)}")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1)")
    p.add_argument("--recurrent-shd", action="store_true",
                   help="the recurrent SHD model at the issue's size (variants shd_fused,shd_python; B=256, T=100)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 32; 256 with --recurrent-shd)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=None, help="warm-up iterations (default 3; 1 with --recurrent-shd)")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (default 3; 1 with --recurrent-shd)")
    p.add_argument("--iters", type=int, default=None, help="iterations per round (default 10; 3 with --recurrent-shd)")
    p.add_argument("--runs", type=int, default=1,
                   help="repeat the whole set of workers, interleaved; report the median over runs")
    p.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    p.add_argument("--cold-kernel-cache", action="store_true",
                   help="custom_* workers start from an empty generated-kernel cache (first_iter_ms includes the "
                        "generation and compilation)")
    p.add_argument("--saved-bytes", action="store_true",
                   help="only print what each fused op saves for backward vs the python backend (MB, spike tensors)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--measure", default="time", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    shd = args.recurrent_shd
    if shd and args.variants == p.get_default("variants"):
        args.variants = ",".join(SHD_VARIANTS)
    for name, default, shd_default in (("batch", 32, 256), ("warmup", 3, 1), ("rounds", 3, 1), ("iters", 10, 3)):
        if getattr(args, name) is None:
            setattr(args, name, shd_default if shd else default)
    if shd:
        args.no_memory = True
    if args.worker:
        print(json.dumps(_worker(args)))
        return 0
    if args.saved_bytes:
        import torch

        torch.set_num_threads(args.threads)
        rows = saved_bytes(args.steps, args.batch)
        print(f"saved for backward, T={args.steps}, B={args.batch}, N=256 (float32 input):")
        print("| op | fused MB | of which 0/1 spike tensors | python MB | of which 0/1 spike tensors "
              "| fused output is a saved tensor |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['op']} | {r['fused_saved_mb']:.2f} | {r['fused_spike_mb']:.2f} | {r['python_saved_mb']:.2f} | "
                  f"{r['python_spike_mb']:.2f} | {r['output_shares_spike_storage']} |")
        if args.json:
            sys.path.insert(0, str(ROOT))
            from neurosynth.io import write_json

            write_json(args.json, {"saved_bytes": rows, "steps": args.steps, "batch": args.batch})
        return 0
    if args.quick:
        args.warmup, args.rounds, args.iters = 2, 2, 3
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    if any(v.startswith(("ns_", "rec_", "shd_")) for v in variants):  # build the C++ kernel once, outside the timers
        subprocess.run([sys.executable, "-c", "from neurosynth import _cext; print(_cext.status())"],
                       cwd=str(ROOT), env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))},
                       check=False, capture_output=True)
    machine = _machine()
    per_run = {v: [] for v in variants}
    for run in range(args.runs):  # variants interleaved, so a change in machine load hits all of them
        for v in variants:
            print(f"[bench_lif] run {run + 1}/{args.runs}: {v} ...", file=sys.stderr, flush=True)
            per_run[v].append(_run_worker(v, args, "time"))
    results = {}
    for v in variants:
        ok = [r for r in per_run[v] if "error" not in r]
        if not ok:
            results[v] = per_run[v][0]
            continue
        r = dict(ok[0])
        r["run_medians_ms"] = [x["median_ms"] for x in ok]
        r["round_medians_ms"] = [m for x in ok for m in x["round_medians_ms"]]
        r["median_ms"] = statistics.median(r["run_medians_ms"])
        r["cpu_median_ms"] = statistics.median(x["cpu_median_ms"] for x in ok)
        r["min_ms"] = min(x["min_ms"] for x in ok)
        r["first_iter_ms"] = statistics.median(x["first_iter_ms"] for x in ok)
        if "compile_s" in ok[0]:
            r["compile_s"] = statistics.median(x["compile_s"] for x in ok)
            # the generation / compilation alone: the first call minus a steady-state iteration
            r["generation_s"] = statistics.median((x["first_iter_ms"] - x["median_ms"]) / 1e3 for x in ok)
        if not args.no_memory:
            mem = _run_worker(v, args, "memory")
            r["saved_mb"], r["peak_rss_mb"] = mem.get("saved_mb"), mem.get("peak_rss_mb")
        results[v] = r
    ratios = _ratios(results)
    goals = _goals(ratios)
    try:
        machine["loadavg_end"] = os.getloadavg()
    except OSError:
        pass
    config = {"sizes": (SIZES[0], 1024, SIZES[-1]) if set(variants) <= set(SHD_VARIANTS) else SIZES, "batch": args.batch, "steps": args.steps, "threads": args.threads,
              "warmup": args.warmup, "rounds": args.rounds, "iters": args.iters, "runs": args.runs,
              "command": " ".join([Path(sys.executable).name, *sys.argv])}
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['versions']['torch']}, "
          f"threads {args.threads}, load {machine['loadavg_start']} -> {machine.get('loadavg_end')}")
    print(_table(results))
    for k, v in ratios.items():
        print(f"  {k}: {v:.2f}")
    for v, r in results.items():
        if r.get("compile_s") is not None:
            print(f"  {v}: first iteration (compilation included) {r['compile_s']:.1f} s; generation / compilation "
                  f"alone (first minus median iteration) {r['generation_s']:.1f} s")
        if r.get("hidden_rate") is not None:
            print(f"  {v}: hidden firing rate {r['hidden_rate']:.4f}")
    for k, ok in goals.items():  # judged on wall-clock medians
        print(f"  goal {k}: {'met' if ok else 'NOT met'}")
    if args.json:
        sys.path.insert(0, str(ROOT))
        from neurosynth.io import write_json

        write_json(args.json, {"machine": machine, "config": config, "results": results, "ratios": ratios,
                               "goals": goals})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
