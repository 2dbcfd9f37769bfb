"""GPU benchmark of the fused neurons (Triton kernels) against the GEMM floor, SpikingJelly 2.0 and snnTorch.

Reproduces the table of issue 10 in one run (Open Neuromorphic set-up: ``Linear(n, n)`` then the neuron, input
``randn [T=500, B=16, n]``, loss ``out.sum()``, forward + backward), for ``n`` in {4096, 16384}, float32 and
bfloat16 autocast:

- ``floor``: the Linear and the spike function (ATan surrogate) with no recurrence: what no neuron can beat;
- ``ns_fused``: neurosynth ``LIF`` with its default backend (the Triton kernels on CUDA);
- ``ns_python``: neurosynth ``LIF(backend="python")`` (a loop over the step function, autograd);
- ``sj``: SpikingJelly 2.0 ``LIFNode(step_mode="m")`` with the backend it selects itself on CUDA;
- ``snntorch``: snnTorch ``Leaky`` stepped over time (its documented usage).

Same dynamics for all: beta = 0.5 (SpikingJelly ``tau=2, decay_input=False``), threshold 1, soft reset (by
subtraction) detached, ATan(alpha=2); snnTorch ``Leaky`` uses its default delayed reset (``reset_delay``),
compared with neurosynth's ``LIF(reset_delay=True)``. Then ``CubaLIF`` and ``ALIF`` (fused vs python, vs LIF fused)
and the recurrent SHD model (``700 -> Linear -> 1024 Recurrent LIF -> Linear -> 20 LI``, B=256, T=100, Bernoulli
(0.05) input, cross-entropy of the max-over-time readout; default backend vs ``backend="python"``). Last
(``--parts custom``), a custom neuron (a Python ``charge``: the quadratic LIF of ``examples/custom_neuron.py``):
``Linear(n, n)`` + that neuron, n=4096, fp32, ``T=--custom-T``: its generated kernel (Triton on CUDA,
``neurosynth/_ops/custom``; the first call includes the generation), the built-in LIF (reset to zero) in its
place (the goal: generated within 1.5x of it), and the reference loop eager vs ``torch.compile(model)`` (the
compiled graph unrolls the time loop), with the compile time (the first call, forward and backward graphs).

Timing: CUDA events around each forward+backward, after ``--warmup`` iterations and ``torch.cuda.synchronize()``;
the median of ``--iters``. Memory: ``torch.cuda.max_memory_allocated`` over one iteration (absolute, i.e. with
weights and input, and the growth over what was resident before it). Spike agreement: the fraction of spikes
equal to ``ns_fused``'s in one forward pass with the same weights and input. SpikingJelly / snnTorch rows are
skipped (recorded as errors) when the package is missing; any failing row is recorded and the run goes on.
Results are written after every row (``--json``), and so is the Markdown section between the ``bench_gpu``
markers of ``--md`` (default ``BENCHMARKS.md`` on a GPU), so a run cut short by a time-out keeps what it measured.

``--smoke`` runs everything on CPU with tiny sizes in seconds (the neurosynth "fused" rows run the Triton kernels
in the Triton interpreter when the dispatcher can be pinned to them), so the script is tested without a GPU.

    python benchmarks/bench_gpu.py --json benchmarks/results/bench_gpu.json          # on a CUDA machine
    python benchmarks/bench_gpu.py --smoke --json /tmp/smoke.json --md /tmp/smoke.md  # anywhere
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import gc
import json
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
try:  # an installed neurosynth (PYTHONPATH) wins; else the checkout this script lives in
    import neurosynth  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT))

MARK_START = "<!-- bench_gpu:start -->"
MARK_END = "<!-- bench_gpu:end -->"
BETA, THR, TAU = 0.5, 1.0, 2.0


# ------------------------------------------------------------------------------------------------ helpers
def _version(mod: str):
    try:
        from importlib.metadata import version

        return version(mod)
    except Exception:  # noqa: BLE001
        return None


def machine(device: str) -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "device": device,
            "versions": {m: _version(m) for m in ("triton", "spikingjelly", "snntorch", "numpy")},
            "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M")}
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(0), capability=".".join(map(str, torch.cuda.get_device_capability(0))),
                    gpu_memory_gib=round(p.total_memory / 2**30, 1), sms=p.multi_processor_count)
    else:
        info.update(gpu=None, cpu=platform.processor() or platform.machine(), cores=os.cpu_count())
    return info


def _pin_triton(smoke: bool):
    """On CPU (smoke) pin the dispatcher to the Triton kernels (they run in the interpreter); on CUDA the
    dispatcher picks them itself."""
    if not smoke:
        return contextlib.nullcontext(), "auto"
    try:
        from neurosynth import _ops

        if hasattr(_ops, "forced"):
            from neurosynth._ops.lif import triton as tri

            if tri.triton is not None and tri.INTERPRET:
                return _ops.forced("triton"), "triton (interpreter)"
    except ImportError:
        pass
    return contextlib.nullcontext(), "auto (CPU)"


class Timer:
    """Median forward+backward time: CUDA events on a GPU, perf_counter on CPU."""

    def __init__(self, device: str):
        self.cuda = device == "cuda"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def measure(self, fn, warmup: int, iters: int) -> dict:
        t0 = time.perf_counter()
        fn()
        self.sync()
        first = (time.perf_counter() - t0) * 1e3
        for _ in range(max(0, warmup - 1)):
            fn()
        self.sync()
        times = []
        if self.cuda:
            evs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
            for a, b in evs:
                a.record()
                fn()
                b.record()
            torch.cuda.synchronize()
            times = [a.elapsed_time(b) for a, b in evs]
        else:
            for _ in range(iters):
                t = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t) * 1e3)
        return {"median_ms": statistics.median(times), "min_ms": min(times), "first_ms": first, "iters": iters}

    def peak(self, fn) -> dict:
        if not self.cuda:
            return {}
        gc.collect()
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        return {"peak_gib": peak / 2**30, "peak_growth_gib": (peak - base) / 2**30}


def _autocast(device: str, dtype: str):
    if dtype == "bf16":
        return torch.autocast(device_type=device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ------------------------------------------------------------------------------------------ the layer bench
def _ns_neuron(kind: str, backend: str, delay: bool = False):
    from neurosynth.neurons import ALIF, LIF, CubaLIF

    if kind == "lif":
        return LIF(beta=BETA, threshold=THR, reset="subtract", reset_delay=delay, surrogate="atan", backend=backend)
    if kind == "cubalif":
        return CubaLIF(alpha=0.5, beta=BETA, threshold=THR, surrogate="atan", backend=backend)
    if kind == "alif":
        return ALIF(beta=BETA, threshold=THR, surrogate="atan", backend=backend)
    raise ValueError(kind)


class _Floor(nn.Module):
    def __init__(self):
        super().__init__()
        from neurosynth.surrogate import ATan

        self.spike = ATan(alpha=2.0)

    def forward(self, y):
        return self.spike(y - THR)


class _SJ(nn.Module):
    def __init__(self):
        super().__init__()
        from spikingjelly.activation_based import neuron, surrogate

        self.node = neuron.LIFNode(tau=TAU, decay_input=False, v_threshold=THR, v_reset=None,
                                   surrogate_function=surrogate.ATan(alpha=2.0), detach_reset=True, step_mode="m")

    def forward(self, y):
        self.node.reset()
        return self.node(y)


class _SnnTorch(nn.Module):
    def __init__(self):
        super().__init__()
        import snntorch as snn
        from snntorch import surrogate

        self.leaky = snn.Leaky(beta=BETA, threshold=THR, reset_mechanism="subtract", spike_grad=surrogate.atan(alpha=2.0))

    def forward(self, y):
        mem = self.leaky.init_leaky()
        out = []
        for t in range(y.shape[0]):
            spk, mem = self.leaky(y[t], mem)
            out.append(spk)
        return torch.stack(out)


def _layer_net(variant: str, kind: str, n: int, device: str):
    lin = nn.Linear(n, n)
    if variant == "floor":
        neuron = _Floor()
    elif variant == "ns_fused":
        neuron = _ns_neuron(kind, "auto")
    elif variant == "ns_fused_delay":
        neuron = _ns_neuron(kind, "auto", delay=True)
    elif variant == "ns_python":
        neuron = _ns_neuron(kind, "python")
    elif variant == "sj":
        neuron = _SJ()
    elif variant == "snntorch":
        neuron = _SnnTorch()
    else:
        raise ValueError(variant)
    return lin.to(device), neuron.to(device)


def bench_layer(args, kind: str, variant: str, n: int, dtype: str, timer: Timer, pin) -> dict:
    dev = args.device
    torch.manual_seed(0)
    lin, neuron = _layer_net(variant, kind, n, dev)
    x = torch.randn(args.T, args.B, n, device=dev)

    def step():
        for p in lin.parameters():
            p.grad = None
        with pin():
            with _autocast(dev, dtype):
                out = neuron(lin(x))
                loss = out.float().sum()
            loss.backward()

    res = timer.measure(step, args.warmup, args.iters)
    res.update(timer.peak(step))
    return res


def spikes_of(args, kind: str, variant: str, n: int, dtype: str, pin) -> torch.Tensor:
    dev = args.device
    torch.manual_seed(0)
    lin, neuron = _layer_net(variant, kind, n, dev)
    x = torch.randn(args.T, args.B, n, device=dev)
    with torch.no_grad(), pin(), _autocast(dev, dtype):
        return (neuron(lin(x)) > 0).cpu()


# ------------------------------------------------------------------------------------------ the SHD model
def _shd_model(backend: str, hidden: int, device: str):
    from neurosynth.layers import SNN, Recurrent
    from neurosynth.neurons import LI, LIF

    return SNN(nn.Linear(700, hidden), Recurrent(hidden, LIF(beta=0.95, threshold=1.0, backend=backend)),
               nn.Linear(hidden, 20), LI(beta=0.95)).to(device)


def bench_shd(args, backend: str, dtype: str, timer: Timer, pin) -> dict:
    dev = args.device
    torch.manual_seed(0)
    model = _shd_model(backend, args.shd_hidden, dev)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(args.shd_T, args.shd_B, 700, generator=g) < 0.05).float().to(dev)
    y = torch.randint(0, 20, (args.shd_B,), generator=g).to(dev)

    def step():
        model.zero_grad(set_to_none=True)
        with pin():
            with _autocast(dev, dtype):
                out = model(x)
                loss = nn.functional.cross_entropy(out.float().amax(0), y)
            loss.backward()

    res = timer.measure(step, args.warmup, args.iters)
    res.update(timer.peak(step))
    with torch.no_grad(), pin(), _autocast(dev, dtype):
        res["_out"] = model(x).float().cpu()
    return res


def _custom_net(n: int, device: str, mode: str = "eager"):
    """``Linear(n, n)`` + the quadratic LIF: through its generated kernel (``mode="generated"``), the reference
    loop (``"eager"``/``"compiled"``), or the built-in LIF in its place (``"lif"``, the ratio's reference)."""
    from neurosynth.neurons import LIF, NeuronModel

    class QuadraticLIF(NeuronModel):  # examples/custom_neuron.py (not registered: a benchmark-local class)
        defaults = {"beta": 0.9, "threshold": 1.0, "a": 0.1}
        default_reset = "zero"

        def charge(self, x, state, p):
            return state._replace(v=p.beta * state.v + p.a * state.v.clamp(min=0) ** 2 + x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(n, n)
            sur = {"name": "atan", "alpha": 2.0}
            if mode == "lif":
                self.neuron = LIF(beta=BETA, threshold=THR, reset="zero", surrogate=sur)
            else:
                self.neuron = QuadraticLIF(beta=BETA, threshold=THR, surrogate=sur,
                                           backend="auto" if mode == "generated" else "python")

        def forward(self, x):
            T, B = x.shape[:2]
            return self.neuron(self.fc(x.reshape(T * B, -1)).reshape(T, B, -1))

    return Net().to(device)


def bench_custom(args, mode: str, timer: Timer) -> dict:
    """A custom neuron (Python ``charge``): ``mode`` ``generated`` (its generated kernel: Triton on CUDA),
    ``lif`` (built-in LIF instead), ``eager`` (reference loop) or ``compiled`` (``torch.compile`` of the reference
    loop); ``first_call_s`` = the first call (kernel generation or compilation included)."""
    dev, n = args.device, args.custom_n
    torch.manual_seed(0)
    net = _custom_net(n, dev, mode)
    run = torch.compile(net, backend=args.compile_backend) if mode == "compiled" else net
    x = torch.randn(args.custom_T, args.B, n, generator=torch.Generator().manual_seed(0)).to(dev)
    pinned = contextlib.nullcontext
    if args.smoke and mode == "generated":  # on CPU the smoke run exercises the Triton template (interpreter)
        from neurosynth._ops import custom

        pinned = custom.force_triton

    def step():
        net.zero_grad(set_to_none=True)
        with pinned():
            run(x).sum().backward()

    t0 = time.perf_counter()
    step()
    timer.sync()
    first_s = time.perf_counter() - t0
    res = timer.measure(step, args.warmup, args.iters)
    res["first_call_s"] = first_s
    res.update(timer.peak(step))
    if mode == "generated":
        from neurosynth._ops import custom

        res["path"] = custom.paths().get("QuadraticLIF")
    return res


# ------------------------------------------------------------------------------------------------- report
def _fmt_ms(r):
    if r is None:
        return "—"
    if "error" in r:
        return "error"
    return f"{r['median_ms']:.2f} ms"


def _ratio(a, b):
    if not a or not b or "error" in a or "error" in b:
        return None
    return a["median_ms"] / b["median_ms"]


def markdown(results: dict, args) -> str:
    m = results["machine"]
    rows = results["rows"]
    lines = [MARK_START, "## GPU: fused neurons vs floor, SpikingJelly, snnTorch (`benchmarks/bench_gpu.py`)", ""]
    where = m.get("gpu") or f"CPU ({m.get('cpu')}, {m.get('cores')} cores)"
    lines.append(f"Machine: {where}, torch {m['torch']} (CUDA {m['cuda']}), triton {m['versions'].get('triton')}, "
                 f"SpikingJelly {m['versions'].get('spikingjelly')}, snnTorch {m['versions'].get('snntorch')}; "
                 f"{m['date_utc']} UTC. Command: `{results['command']}`. neurosynth fused rows ran: "
                 f"{results['fused_backend']}.")
    if args.smoke:
        lines.append("")
        lines.append("**Smoke run (tiny sizes, CPU, Triton interpreter): these numbers say nothing about speed.**")
    lines += ["", f"`Linear(n, n)` + neuron, input randn [T={args.T}, B={args.B}, n], loss `out.sum()`, forward + "
              f"backward, median of {args.iters} after {args.warmup} warm-up; peak = `max_memory_allocated` over "
              "one iteration; agreement = fraction of spikes equal to neurosynth fused.", "",
              "| n | dtype | floor | neurosynth fused | × floor | SpikingJelly 2.0 LIFNode 'm' | neurosynth python "
              "| snnTorch Leaky | peak GiB (fused / SJ) | agreement (python / SJ / snnTorch vs delayed) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in rows.items():
        if not key.startswith("lif/"):
            continue
        _, n, dt = key.split("/")
        fused, floor = r.get("ns_fused"), r.get("floor")
        ratio = _ratio(fused, floor)
        peaks = "/".join(f"{v['peak_gib']:.2f}" if v and "peak_gib" in v else "—"
                         for v in (fused, r.get("sj")))
        agree = r.get("agreement", {})
        ag = " / ".join(f"{agree[k]:.6f}" if agree.get(k) is not None else "—" for k in ("ns_python", "sj", "snntorch"))
        lines.append(f"| {n} | {dt} | {_fmt_ms(floor)} | {_fmt_ms(fused)} | {f'{ratio:.2f}' if ratio else '—'} | "
                     f"{_fmt_ms(r.get('sj'))} | {_fmt_ms(r.get('ns_python'))} | {_fmt_ms(r.get('snntorch'))} | "
                     f"{peaks} | {ag} |")
    lines += ["", "| neuron | n | dtype | fused | python | fused × LIF fused | fused peak GiB |", "|---|---|---|---|---|---|---|"]
    for key, r in rows.items():
        kind = key.split("/")[0]
        if kind not in ("cubalif", "alif"):
            continue
        _, n, dt = key.split("/")
        lif = rows.get(f"lif/{n}/{dt}", {}).get("ns_fused")
        ratio = _ratio(r.get("ns_fused"), lif)
        pk = r.get("ns_fused", {}).get("peak_gib")
        lines.append(f"| {kind} | {n} | {dt} | {_fmt_ms(r.get('ns_fused'))} | {_fmt_ms(r.get('ns_python'))} | "
                     f"{f'{ratio:.2f}' if ratio else '—'} | {f'{pk:.2f}' if pk is not None else '—'} |")
    lines += ["", f"Recurrent SHD model (700→{args.shd_hidden} recurrent LIF→20 LI, B={args.shd_B}, T={args.shd_T}, "
              "CE of max-over-time, forward + backward):", "",
              "| dtype | default backend | python loop | speed-up | peak GiB (default / python) | max |out diff| |",
              "|---|---|---|---|---|---|"]
    for key, r in rows.items():
        if not key.startswith("shd/"):
            continue
        dt = key.split("/")[1]
        f, p = r.get("fused"), r.get("python")
        sp = _ratio(p, f)
        pk = "/".join(f"{v['peak_gib']:.2f}" if v and "peak_gib" in v else "—" for v in (f, p))
        lines.append(f"| {dt} | {_fmt_ms(f)} | {_fmt_ms(p)} | {f'{sp:.1f}×' if sp else '—'} | {pk} | "
                     f"{r.get('max_abs_out_diff', '—')} |")
    cu = rows.get(f"custom/{args.custom_n}/fp32")
    if cu:
        e, c = cu.get("eager"), cu.get("compiled")
        gen, lif = cu.get("generated"), cu.get("lif")
        sp = _ratio(e, c)
        cs = c.get("first_call_s") if c and "error" not in c else None
        gs = gen.get("first_call_s") if gen and "error" not in gen else None
        rl = _ratio(gen, lif)
        lines += ["", f"Custom neuron (Python `charge`, quadratic LIF of `examples/custom_neuron.py`): "
                  f"`Linear({args.custom_n}, {args.custom_n})` + neuron, randn [T={args.custom_T}, B={args.B}, n], fp32, "
                  f"`out.sum()`, forward + backward; generated kernel (path: {gen.get('path') if gen else '—'}) vs "
                  "built-in LIF (reset to zero) in its place vs the reference loop eager / under torch.compile:", "",
                  "| generated | built-in LIF | generated / LIF | generation (first call) | eager | torch.compile | "
                  "eager / compiled | compile (first call) |", "|---|---|---|---|---|---|---|---|",
                  f"| {_fmt_ms(gen)} | {_fmt_ms(lif)} | {f'{rl:.2f}×' if rl else '—'} | "
                  f"{f'{gs:.1f} s' if gs is not None else '—'} | {_fmt_ms(e)} | {_fmt_ms(c)} | "
                  f"{f'{sp:.1f}×' if sp else '—'} | {f'{cs:.0f} s' if cs is not None else '—'} |"]
    goals = results.get("goals", {})
    if goals:
        lines += ["", "Goals (issue 10): " + "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in goals.items())
                  + "."]
    errors = [(k, v, r[v]["error"]) for k, r in rows.items() for v in r if isinstance(r[v], dict) and "error" in r[v]]
    if errors:
        lines += ["", "Rows that failed: " + "; ".join(f"{k} {v}: {e}" for k, v, e in errors) + "."]
    lines.append(MARK_END)
    return "\n".join(lines) + "\n"


def write_md(path: Path, section: str):
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if MARK_START in text and MARK_END in text:
        pre, rest = text.split(MARK_START, 1)
        post = rest.split(MARK_END, 1)[1]
        text = pre + section.rstrip("\n") + post
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def goals_of(rows: dict) -> dict:
    g = {}
    lif32, lif16 = rows.get("lif/4096/fp32", {}), rows.get("lif/4096/bf16", {})
    r = _ratio(lif32.get("ns_fused"), lif32.get("floor"))
    if r:
        g["fused LIF ≤ 1.05× floor (n=4096 fp32)"] = r <= 1.05
    r = _ratio(lif16.get("ns_fused"), lif16.get("floor"))
    if r:
        g["fused LIF ≤ 1.5× floor (n=4096 bf16)"] = r <= 1.5
    sj_rows = [(k, _ratio(v.get("ns_fused"), v.get("sj"))) for k, v in rows.items() if k.startswith("lif/")]
    sj_rows = [x for x in sj_rows if x[1]]
    if sj_rows:
        g["fused LIF at least as fast as SpikingJelly in every row"] = all(x <= 1.0 for _, x in sj_rows)
    pk_f = lif32.get("ns_fused", {}).get("peak_gib")
    pk_s = lif32.get("sj", {}).get("peak_gib")
    if pk_f is not None and pk_s is not None:
        g["peak memory ≤ SpikingJelly's (n=4096 fp32)"] = pk_f <= pk_s
    for kind in ("cubalif", "alif"):
        rs = [_ratio(rows[k].get("ns_fused"), rows.get(k.replace(kind, "lif", 1), {}).get("ns_fused"))
              for k in rows if k.startswith(kind + "/")]
        rs = [x for x in rs if x]
        if rs:
            g[f"{kind} ≤ 1.2× LIF fused (every row)"] = all(x <= 1.2 for x in rs)
    sp = [_ratio(v.get("python"), v.get("fused")) for k, v in rows.items() if k.startswith("shd/")]
    sp = [x for x in sp if x]
    if sp:
        g["recurrent SHD ≥ 5× the python loop"] = all(x >= 5 for x in sp)
    return g


# --------------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes on CPU (the Triton interpreter): tests the script")
    p.add_argument("--json", type=Path, help="write the results here (after every row)")
    p.add_argument("--md", type=Path, help="replace the bench_gpu section of this Markdown file "
                                           "(default BENCHMARKS.md, not in --smoke)")
    p.add_argument("--sizes", default="4096,16384")
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--T", type=int, default=500)
    p.add_argument("--B", type=int, default=16)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--parts", default="lif,neurons,shd,custom", help="subset of lif,neurons,shd,custom")
    p.add_argument("--variants", default="floor,ns_fused,ns_python,sj,snntorch")
    p.add_argument("--slow-variants-fp32-only", action=argparse.BooleanOptionalAction, default=True,
                   help="run ns_python and snnTorch only in fp32 (as the issue's table)")
    p.add_argument("--shd-hidden", type=int, default=1024)
    p.add_argument("--shd-B", type=int, default=256)
    p.add_argument("--shd-T", type=int, default=100)
    p.add_argument("--custom-n", type=int, default=4096)
    p.add_argument("--custom-T", type=int, default=100)
    p.add_argument("--compile-backend", default="inductor", help="torch.compile backend of the custom part")
    p.add_argument("--budget-s", type=float, default=480.0, help="start no new row after this many seconds")
    args = p.parse_args(argv)
    if args.smoke:
        args.device = "cpu"
        args.sizes, args.T, args.B, args.warmup, args.iters = "48", 5, 2, 1, 2
        args.shd_hidden, args.shd_B, args.shd_T = 24, 3, 4
        args.custom_n, args.custom_T = 48, 5
    else:
        if not torch.cuda.is_available():
            p.error("no CUDA device: use --smoke for the CPU check")
        args.device = "cuda"
        if args.md is None:
            args.md = ROOT / "BENCHMARKS.md"
    sizes = [int(s) for s in args.sizes.split(",") if s]
    dtypes = [d for d in args.dtypes.split(",") if d]
    parts = set(args.parts.split(","))
    variants = [v for v in args.variants.split(",") if v]
    pinned = _pin_triton(args.smoke)[1]

    def pin():
        ctx, _ = _pin_triton(args.smoke)
        return ctx

    timer = Timer(args.device)
    started = time.perf_counter()
    results = {"machine": machine(args.device), "fused_backend": pinned,
               "command": "python benchmarks/bench_gpu.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "rows": {}}
    rows = results["rows"]

    def save():
        results["goals"] = {} if args.smoke else goals_of(rows)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2, default=str))
        if args.md:  # after every row too: a run cut short by a time-out still leaves its tables
            write_md(args.md, markdown(results, args))

    def run(key, name, fn):
        if time.perf_counter() - started > args.budget_s:
            rows.setdefault(key, {})[name] = {"error": "skipped: --budget-s reached"}
            return
        print(f"[bench_gpu] {key} {name} ...", file=sys.stderr, flush=True)
        try:
            rows.setdefault(key, {})[name] = fn()
        except Exception as exc:  # noqa: BLE001 - a failing row is recorded, the run goes on
            rows.setdefault(key, {})[name] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
            traceback.print_exc(limit=3)
        finally:
            gc.collect()
            if args.device == "cuda":
                torch.cuda.empty_cache()
        save()

    kinds = (["lif"] if "lif" in parts else []) + (["cubalif", "alif"] if "neurons" in parts else [])
    for kind in kinds:
        for n in sizes:
            for dt in dtypes:
                key = f"{kind}/{n}/{dt}"
                vs = variants if kind == "lif" else [v for v in variants if v in ("ns_fused", "ns_python")]
                for v in vs:
                    if dt != "fp32" and args.slow_variants_fp32_only and v in ("ns_python", "snntorch"):
                        continue
                    run(key, v, lambda v=v, kind=kind, n=n, dt=dt: bench_layer(args, kind, v, n, dt, timer, pin))
                if kind == "lif" and "ns_fused" in vs:  # spike agreement with the fused backend
                    def agreement(n=n, dt=dt, vs=vs):
                        ref = spikes_of(args, "lif", "ns_fused", n, dt, pin)
                        out = {"ns_fused_spike_rate": float(ref.float().mean())}
                        for v in ("ns_python", "sj"):
                            if v in vs:
                                out[v] = float((spikes_of(args, "lif", v, n, dt, pin) == ref).float().mean())
                        if "snntorch" in vs:  # snnTorch's delayed reset vs LIF(reset_delay=True)
                            ref_d = spikes_of(args, "lif", "ns_fused_delay", n, dt, pin)
                            out["snntorch"] = float((spikes_of(args, "lif", "snntorch", n, dt, pin) == ref_d)
                                                    .float().mean())
                        return out

                    def safe_agreement(agreement=agreement):
                        try:
                            return agreement()
                        except Exception as exc:  # noqa: BLE001
                            return {"error_detail": f"{type(exc).__name__}: {str(exc)[:200]}"}

                    run(key, "agreement", safe_agreement)
    if "shd" in parts:
        for dt in dtypes:
            key = f"shd/{dt}"
            run(key, "fused", lambda dt=dt: bench_shd(args, "auto", dt, timer, pin))
            run(key, "python", lambda dt=dt: bench_shd(args, "python", dt, timer, pin))
            r = rows.get(key, {})
            f, q = r.get("fused", {}), r.get("python", {})
            if "_out" in f and "_out" in q:
                r["max_abs_out_diff"] = f"{float((f['_out'] - q['_out']).abs().max()):.3g}"
            for v in (f, q):
                v.pop("_out", None)
            save()
    if "custom" in parts:
        key = f"custom/{args.custom_n}/fp32"
        for mode in ("generated", "lif", "eager", "compiled"):  # the slow compile last (--budget-s)
            run(key, mode, lambda mode=mode: bench_custom(args, mode, timer))
    results["total_s"] = time.perf_counter() - started
    save()
    section = markdown(results, args)
    if args.md:
        write_md(args.md, section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
