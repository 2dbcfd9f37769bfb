"""The Triton kernels compile for a real GPU (sm_90, the H200's architecture) without one.

The interpreter tests (test_triton_ops.py & co.) check the arithmetic but not what only the compiler sees (types of
loop-carried values, constexpr branches, bitcasts, launch options). Here a subprocess imports the kernels as
compiled ``JITFunction`` objects (it pretends a CUDA device exists), routes every launch the public functions make
(``forward``/``backward`` of lif, cubalif, alif, recurrent, for every mode, surrogate, dtype and optional input)
to ``triton.compile(..., target=GPUTarget("cuda", 90, 32))`` instead of a launch, and compiles down to a cubin
with the ``ptxas`` bundled in the triton wheel. Nothing runs on a GPU: results are not checked here.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _compile_all(quick: bool) -> int:  # runs in the subprocess
    import contextlib

    import torch

    torch.cuda.is_available = lambda: True  # the kernels are decorated as compiled JITFunctions
    os.environ.pop("TRITON_INTERPRET", None)
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.jit import JITFunction

    from neurosynth._ops.alif import triton as ta
    from neurosynth._ops.cubalif import triton as tc
    from neurosynth._ops.lif import triton as tl_
    from neurosynth._ops.recurrent import triton as tr

    assert not tl_.INTERPRET
    target = GPUTarget("cuda", 90, 32)
    seen, compiled = set(), []
    names = {torch.float32: "fp32", torch.float64: "fp64", torch.bfloat16: "bf16", torch.float16: "fp16"}

    def fake_run(self, *args, grid, warmup, **kwargs):
        params = self.params
        bound = dict(zip([p.name for p in params], args))
        bound.update({k: v for k, v in kwargs.items() if k in bound or k in [p.name for p in params]})
        sig, consts = {}, {}
        for p in params:
            v = bound[p.name]
            if p.is_constexpr:
                sig[p.name] = "constexpr"
                consts[p.name] = v
            elif isinstance(v, torch.Tensor):
                sig[p.name] = "*" + names[v.dtype]
            elif isinstance(v, bool):
                sig[p.name] = "i1"
            elif isinstance(v, int) and v == 1:  # the JIT specialises integer arguments equal to 1
                sig[p.name] = "constexpr"
                consts[p.name] = 1
            elif isinstance(v, int):
                sig[p.name] = "i32" if -2**31 <= v < 2**31 else "i64"
            elif isinstance(v, float):
                sig[p.name] = "fp32"
            else:
                raise TypeError(f"{p.name}: {type(v)}")
        key = (self.fn.__name__, tuple(sorted(sig.items())), tuple(sorted((k, str(v)) for k, v in consts.items())))
        if key in seen:
            return None
        seen.add(key)
        opts = {k: kwargs[k] for k in ("num_warps", "enable_fp_fusion") if k in kwargs}
        kernel = triton.compile(ASTSource(self, sig, consts), target=target, options=opts)
        assert kernel.asm.get("cubin"), f"{self.fn.__name__}: no cubin"
        compiled.append(self.fn.__name__)
        return None

    JITFunction.run = fake_run
    for mod in (tl_, tc, ta, tr):  # CPU tensors stand in for CUDA ones; nothing is launched
        mod.usable = lambda x: x.dtype in names
        mod.on_device = lambda x: contextlib.nullcontext()

    g = torch.Generator().manual_seed(0)
    T, B, N = 4, 2, 8
    surs = [(0, 1.0, 3.14)] if quick else [(i, 0.5, 1.0) for i in range(6)]
    dtypes = [torch.float32, torch.bfloat16] if quick else [torch.float32, torch.float64, torch.bfloat16,
                                                            torch.float16]
    p = torch.rand(N, generator=g)
    for dt in dtypes:
        acc = torch.float64 if dt == torch.float64 else torch.float32
        x = torch.randn(T, B, N, generator=g).to(dt)
        h = torch.randn(T, B, N, dtype=acc)
        st = torch.zeros(B, N)
        full = torch.randn(T, B, N)
        for mode in range(4):
            tl_.forward(x, st, p, p, mode)
            for sur in surs:
                for detach in (True, False):
                    tl_.backward(h, full, full, st, p, p, mode, detach, sur)
            tl_.backward(h, None, None, None, p, p, mode, True, surs[0])
            tl_.backward(h, torch.ones(()).expand(h.shape), torch.ones(()).expand(h.shape), None, p, p, mode, True,
                         surs[0])  # broadcast output gradients (out.sum())
            tl_.lif_backward(h, full, None, st, p, p, mode, mode != 3, surs[0], v0=st, param_grads=True)
            if mode == 3:
                continue
            tc.forward(x, st, st, p, p, p, mode, True)
            tc.forward(x, st, st, p, p, p, mode, False)
            ta.forward(x, st, st, p, p, p, p, mode)
            for detach in (True, False):
                tc.backward(h, full, full, st, st, p, p, p, mode, detach, surs[-1], True)
                ta.backward(h, h, st, full, full, st, st, p, p, p, p, mode, detach, surs[-1], True)
            tc.backward(h, full, None, None, None, p, p, p, mode, True, surs[0], False)
            ta.backward(h, h, st, None, None, None, None, p, p, p, p, mode, True, surs[0], False)
            w = torch.randn(N, N, generator=g)
            for neuron, states, params in (("lif", [st], [p, p]), ("cubalif", [st, st], [p, p, p]),
                                           ("alif", [st, st], [p, p, p, p])):
                tr.forward(neuron, x, w, p, st, states, params, mode)
                for detach in (True, False):
                    tr.backward(neuron, full, h, h, w, st, states, params, full, full, [st] * len(states), st,
                                mode, detach, surs[0])
                tr.backward(neuron, full, h, h, w, st, states, params, None, None, [None] * len(states), None,
                            mode, True, surs[0])
    x1, h1, f1 = torch.randn(1, B, N), torch.randn(1, B, N), torch.randn(1, B, N)  # T = 1
    tl_.forward(x1, st, p, p, 0)
    tl_.backward(h1, f1, f1, st, p, p, 1, False, surs[0])
    tc.forward(x1, st, st, p, p, p, 1, True)
    tc.backward(h1, f1, f1, st, st, p, p, p, 1, False, surs[0], True)
    ta.forward(x1, st, st, p, p, p, p, 0)
    ta.backward(h1, h1, st, f1, f1, st, st, p, p, p, p, 0, False, surs[0], True)
    print(f"compiled {len(compiled)} kernel variants for sm_90: {sorted(set(compiled))}")
    return 0


def _run(quick: bool):
    pytest.importorskip("triton")
    from neurosynth._ops.lif import triton as tl_

    if tl_.triton is None:
        pytest.skip("triton is not installed")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("TRITON_INTERPRET", None)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "quick" if quick else "all"], env=env,
                       capture_output=True, text=True, timeout=1800)
    if r.returncode != 0 and "ptxas" in (r.stderr + r.stdout) and "not found" in (r.stderr + r.stdout):
        pytest.skip("no ptxas in this triton installation")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-6000:]
    assert "compiled" in r.stdout


@pytest.mark.slow
def test_every_kernel_compiles_for_sm90_quick():
    _run(quick=True)


@pytest.mark.slow
def test_every_kernel_variant_compiles_for_sm90():
    _run(quick=False)


if __name__ == "__main__":
    sys.exit(_compile_all(sys.argv[1:] == ["quick"]))
