r"""Generated C++ kernels for custom neurons (CPU, float32/float64): one source per captured step.

The source has no torch headers (plain C++ and OpenMP, so it compiles in about a second) and two entry points
called through ``ctypes`` with raw pointers (GIL released while they run):

- ``ns_fwd(T, M, threads, save, ptrs)``: the whole sequence. The ``M`` neurons (batch and features flattened)
  are split into one contiguous chunk per thread; each chunk runs the time loop inside (one parallel region per
  layer and sequence, as the built-in kernels of ``neurosynth/_csrc/lif.cpp``). Per step and neuron it reads
  the input, the state and the parameters, stores the state it read (only the variables the backward reads)
  when ``save``, and writes the spike, the pre-reset membrane ``h`` and the new state.
- ``ns_bwd(T, M, threads, has_gs, has_gh, ptrs)``: the reverse-time pass. Per step it recomputes the step from
  the saved state and runs the captured vector-Jacobian product: the input gradient of every step, the running
  state gradient, and per-neuron sums of the learnable parameters' gradients.

Compiled with ``-O3 -ffp-contract=off`` (no fused multiply-add: float32 spikes bit-identical to the reference
loop) into ``$NEUROSYNTH_KERNEL_CACHE`` (default ``~/.cache/neurosynth/custom_kernels``), one library per
source hash, written atomically; a later process only loads it. Set ``NEUROSYNTH_NO_CEXT=1`` to never compile.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import torch

from .codegen import Cpp, lower
from .tracing import Captured, CaptureError

# -fno-tree-loop-distribute-patterns: otherwise GCC turns the saved-state stores into memmove calls, which splits
# the forward row loop and leaves it scalar (seen with -fopt-info-vec-missed for two-state neurons)
FLAGS = ["-O3", "-ffp-contract=off", "-fno-trapping-math", "-fno-math-errno", "-fno-tree-loop-distribute-patterns",
         "-fopenmp", "-std=c++17", "-shared", "-fPIC"]
GRAIN = 512  # neurons per thread below which fewer threads are used (as the built-in kernels' at::parallel_for)
_CTYPES = {torch.float32: "float", torch.float64: "double"}
_lock = threading.Lock()
_libs: dict[str, ctypes.CDLL] = {}


def cache_root() -> Path:
    base = os.environ.get("NEUROSYNTH_KERNEL_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "neurosynth" / "custom_kernels"


def _compiler() -> str:
    return os.environ.get("CXX") or "c++"


def source(cap: Captured) -> str:
    """The C++ source of ``cap``'s forward and backward kernels."""
    if cap.dtype not in _CTYPES:
        raise CaptureError(f"dtype {cap.dtype} (the CPU kernels run float32 and float64)")
    k, n_p = len(cap.state_vars), len(cap.param_names)
    reads_x, reads_st = cap.bwd_reads()
    pnames = [f"p{j}" for j in range(n_p)]
    R = "scalar_t* __restrict__"
    C = "const scalar_t* __restrict__"

    # forward row: inputs x[i], st_k[i], p_j[i]
    f_lines, f_out = lower(cap.fwd, Cpp, ["a_x"] + [f"a_s{q}" for q in range(k)] + [f"a_{p}" for p in pnames],
                           cap.dtype, "f")
    fwd_args = [f"{C} x"] + [f"{C} {p}" for p in pnames] + [f"{R} st{q}" for q in range(k)] + \
        [f"{R} sv{q}" for q in range(k) if reads_st[q]] + [f"{R} s", f"{R} h"]
    body = ["const scalar_t a_x = x[i];"] + [f"const scalar_t a_s{q} = st{q}[i];" for q in range(k)] + \
        [f"const scalar_t a_{p} = {p}[i];" for p in pnames] + \
        [f"if (SAVE) sv{q}[i] = a_s{q};" for q in range(k) if reads_st[q]] + f_lines + \
        [f"s[i] = {f_out[0]};", f"h[i] = {f_out[1]};"] + [f"st{q}[i] = {f_out[2 + q]};" for q in range(k)]
    fwd_row = (f"template <bool SAVE>\nstatic inline void fwd_row(int64_t n, {', '.join(fwd_args)}) {{\n"
               "  for (int64_t i = 0; i < n; ++i) {\n" + "".join(f"    {ln}\n" for ln in body) + "  }\n}\n")

    # backward row: inputs x, st0 (saved), p, g_s, g_h, g_st2 (running); outputs g_x, g_st0, g_p
    g = len(cap.grad_params)
    b_in = ["a_x" if reads_x else None] + [f"a_s{q}" if reads_st[q] else None for q in range(k)] + \
        [f"a_{p}" for p in pnames] + ["a_gs", "a_gh"] + [f"a_g{q}" for q in range(k)]
    b_lines, b_out = lower(cap.bwd, Cpp, b_in, cap.dtype, "b")
    bwd_args = [f"{C} x"] + [f"{C} {p}" for p in pnames] + [f"{C} sv{q}" for q in range(k)] + \
        [f"{C} gs", f"{C} gh"] + [f"{R} g{q}" for q in range(k)] + [f"{R} gx"] + [f"{R} gp{j}" for j in range(g)]
    body = (["const scalar_t a_x = x[i];"] if reads_x else []) + \
        [f"const scalar_t a_s{q} = sv{q}[i];" for q in range(k) if reads_st[q]] + \
        [f"const scalar_t a_{p} = {p}[i];" for p in pnames] + \
        ["const scalar_t a_gs = GS ? gs[i] : scalar_t(0);", "const scalar_t a_gh = GH ? gh[i] : scalar_t(0);"] + \
        [f"const scalar_t a_g{q} = g{q}[i];" for q in range(k)] + b_lines + [f"gx[i] = {b_out[0]};"] + \
        [f"g{q}[i] = {b_out[1 + q]};" for q in range(k)] + [f"gp{j}[i] = gp{j}[i] + {b_out[1 + k + j]};" for j in range(g)]
    bwd_row = (f"template <bool GS, bool GH>\nstatic inline void bwd_row(int64_t n, {', '.join(bwd_args)}) {{\n"
               "  for (int64_t i = 0; i < n; ++i) {\n" + "".join(f"    {ln}\n" for ln in body) + "  }\n}\n")

    def ptr(i, const=True):
        return f"({'const ' if const else ''}scalar_t*)ptr[{i}]"

    # pointer layouts (see CpuKernel)
    fx_ = ptr(0)
    fp = [ptr(1 + j) for j in range(n_p)]
    fst = [ptr(1 + n_p + q, False) for q in range(k)]
    fsv = [ptr(1 + n_p + k + q, False) for q in range(k)]
    fs, fh = ptr(1 + n_p + 2 * k, False), ptr(2 + n_p + 2 * k, False)
    sv_call = [f"({fsv[q]} ? {fsv[q]} + o : nullptr)" for q in range(k) if reads_st[q]]
    fwd_call = ", ".join(["e - b", f"{fx_} + o"] + [f"{p} + b" for p in fp] + [f"{s} + b" for s in fst] + sv_call +
                         [f"{fs} + o", f"{fh} + o"])
    bx = ptr(0)
    bp = [ptr(1 + j) for j in range(n_p)]
    bsv = [ptr(1 + n_p + q) for q in range(k)]
    bgs, bgh = ptr(1 + n_p + k), ptr(2 + n_p + k)
    bg = [ptr(3 + n_p + k + q, False) for q in range(k)]
    bgx = ptr(3 + n_p + 2 * k, False)
    bgp = [ptr(4 + n_p + 2 * k + j, False) for j in range(g)]

    def off(e, o):
        return f"({e} ? {e} + {o} : nullptr)"

    bwd_call = ", ".join(["e - b", off(bx, "o")] + [f"{p} + b" for p in bp] + [off(s, "o") for s in bsv] +
                         [off(bgs, "o"), off(bgh, "o")] + [f"{x} + b" for x in bg] + [f"{bgx} + o"] +
                         [f"{x} + b" for x in bgp])
    return f"""// generated by neurosynth._ops.custom.cpu for {cap.name}: states {cap.state_vars}, \
parameters {cap.param_names}, learning {cap.grad_params}
#include <cmath>
#include <cstdint>
#include <limits>
#include <algorithm>
#include <omp.h>

typedef {_CTYPES[cap.dtype]} scalar_t;

{fwd_row}
{bwd_row}
static inline void chunk(int64_t M, int64_t parts, int64_t id, int64_t& b, int64_t& e) {{
  int64_t per = (M + parts - 1) / parts;
  per = (per + 15) / 16 * 16;
  b = std::min(M, id * per);
  e = std::min(M, b + per);
}}

extern "C" void ns_fwd(int64_t T, int64_t M, int64_t threads, int64_t save, void** ptr) {{
#pragma omp parallel num_threads(threads) if (threads > 1)
  {{
    int64_t b, e;
    chunk(M, omp_get_num_threads(), omp_get_thread_num(), b, e);
    for (int64_t t = 0; b < e && t < T; ++t) {{
      const int64_t o = t * M + b;
      if (save) fwd_row<true>({fwd_call});
      else fwd_row<false>({fwd_call});
    }}
  }}
}}

template <bool GS, bool GH>
static void bwd_loop(int64_t T, int64_t M, void** ptr) {{
  int64_t b, e;
  chunk(M, omp_get_num_threads(), omp_get_thread_num(), b, e);
  for (int64_t t = T - 1; b < e && t >= 0; --t) {{
    const int64_t o = t * M + b;
    bwd_row<GS, GH>({bwd_call});
  }}
}}

extern "C" void ns_bwd(int64_t T, int64_t M, int64_t threads, int64_t has_gs, int64_t has_gh, void** ptr) {{
#pragma omp parallel num_threads(threads) if (threads > 1)
  {{
    if (has_gs && has_gh) bwd_loop<true, true>(T, M, ptr);
    else if (has_gs) bwd_loop<true, false>(T, M, ptr);
    else if (has_gh) bwd_loop<false, true>(T, M, ptr);
    else bwd_loop<false, false>(T, M, ptr);
  }}
}}
"""


def _key(src: str) -> str:
    parts = [src, _compiler(), " ".join(FLAGS), sys.platform]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def build(src: str) -> ctypes.CDLL:
    """Compile ``src`` (or load the cached library) and return it; raises ``CaptureError`` with the reason."""
    key = _key(src)
    with _lock:
        if key in _libs:
            return _libs[key]
        if shutil.which(_compiler()) is None:
            raise CaptureError(f"no C++ compiler ({_compiler()!r} not found; set CXX)")
        from ...io import atomic_path, atomic_write

        folder = cache_root() / key
        lib_path = folder / "kernel.so"
        if not lib_path.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            src_path = folder / "kernel.cpp"
            with atomic_write(src_path) as f:
                f.write(src)
            with atomic_path(lib_path) as tmp:
                proc = subprocess.run([_compiler(), *FLAGS, str(src_path), "-o", str(tmp)], capture_output=True,
                                      text=True, timeout=300)
                if proc.returncode != 0:
                    err = (proc.stderr or proc.stdout).strip().splitlines()
                    raise CaptureError(f"the C++ compiler failed: {' | '.join(err[:3])[:300]}")
        lib = ctypes.CDLL(str(lib_path))
        for name, n in (("ns_fwd", 4), ("ns_bwd", 5)):
            fn = getattr(lib, name)
            fn.argtypes = [ctypes.c_int64] * n + [ctypes.POINTER(ctypes.c_void_p)]
            fn.restype = None
        _libs[key] = lib
        return lib


def _ptrs(tensors) -> ctypes.Array:
    return (ctypes.c_void_p * len(tensors))(*[None if t is None else t.data_ptr() for t in tensors])


def threads_for(m: int) -> int:
    return max(1, min(torch.get_num_threads(), m // GRAIN))


class CpuKernel:
    """A compiled custom-neuron kernel pair for CPU tensors of one dtype (the contract of
    :mod:`neurosynth._ops.custom.autograd`)."""

    device_type = "cpu"

    def __init__(self, cap: Captured):
        self.cap = cap
        self.src = source(cap)
        self.lib = build(self.src)
        self.reads_x, self.reads_st = cap.bwd_reads()

    def forward(self, x: torch.Tensor, states: list[torch.Tensor], params: list[torch.Tensor], save: bool):
        """``x [T, M]``, ``states`` K contiguous ``[M]`` tensors (updated in place to the final state), ``params`` P
        contiguous ``[M]``. Returns ``(s, h, saved)``, ``saved`` the ``[T, M]`` states the backward reads."""
        T, M = x.shape
        s, h = torch.empty_like(x), torch.empty_like(x)
        saved = [torch.empty_like(x) if (save and r) else None for r in self.reads_st]
        ptrs = _ptrs([x, *params, *states, *saved, s, h])
        if T and M:
            self.lib.ns_fwd(T, M, threads_for(M), int(save), ptrs)
        return s, h, saved

    def backward(self, T: int, x, saved, params, g_s, g_h, g_states: list[torch.Tensor]):
        """``g_states`` K contiguous ``[M]`` (the final state's gradient; updated in place to the initial state's).
        Returns ``(g_x [T, M], [g_param [M] for each learnable parameter])``."""
        M = g_states[0].numel()
        dtype = g_states[0].dtype
        g_x = torch.empty((T, M), dtype=dtype)
        g_p = [torch.zeros(M, dtype=dtype) for _ in self.cap.grad_params]
        ptrs = _ptrs([x if self.reads_x else None, *params, *saved, g_s, g_h, *g_states, g_x, *g_p])
        if T and M:
            self.lib.ns_bwd(T, M, threads_for(M), int(g_s is not None), int(g_h is not None), ptrs)
        return g_x, g_p
