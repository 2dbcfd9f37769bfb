r"""Generated Triton kernels for custom neurons (CUDA; CPU tensors under the Triton interpreter), float32.

The same captured step graphs as the C++ kernels (:mod:`neurosynth._ops.custom.tracing`), lowered by
:mod:`neurosynth._ops.custom.codegen` into a module of two ``@triton.jit`` kernels from one template:

- forward: one program per block of neurons, the time loop inside, the state in registers; per step it stores the
  spike, the pre-reset membrane and (when the backward needs it) the state it read;
- backward: the reverse-time loop over the saved states, the running state gradient in registers, the learnable
  parameters' per-neuron gradient sums accumulated in registers and stored once.

Only ``triton.language`` builtins are used (not its ``@jit`` library functions such as ``tl.zeros``, which the
interpreter cannot call when only the decoration ran in interpreter mode). Arithmetic is written as the reference
(``x * x`` for a square, ``tl.div_rn`` / ``tl.sqrt_rn`` for IEEE division
and square root, ``enable_fp_fusion=False`` on CUDA: no FMA). Transcendental functions use Triton's, so on a GPU a
spike can flip where the membrane is within rounding of the threshold, as with the built-in Triton kernels.
The generated module is written to ``$NEUROSYNTH_KERNEL_CACHE/triton/<hash>.py`` (Triton reads a kernel's source
from its file) and imported once per process. Kernels are decorated in interpreter mode when ``TRITON_INTERPRET=1``
is set or no CUDA device is present (then CPU tensors run through them: the tests).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import sys
import threading

import torch

from .codegen import Triton, lower
from .tracing import Captured, CaptureError

try:  # optional (the `gpu` extra)
    import triton
except ImportError:  # pragma: no cover - exercised where triton is missing
    triton = None

_lock = threading.Lock()
_modules: dict[str, object] = {}


def _env_interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() not in ("", "0", "false", "no", "off")


def interpreting() -> bool:
    """The kernels run in the Triton interpreter (CPU tensors) rather than compiled for CUDA."""
    return triton is not None and (_env_interpret() or not torch.cuda.is_available())


def usable(x: torch.Tensor) -> str | None:
    """``None`` when a generated Triton kernel can run on ``x``, else why not."""
    if triton is None:
        return "triton is not installed (the `gpu` extra)"
    if x.dtype != torch.float32:
        return f"dtype {x.dtype} (the generated Triton kernels run float32)"
    want = "cpu" if interpreting() else "cuda"
    if x.device.type != want:
        return f"Triton kernels run on {want} tensors here, not {x.device.type}"
    return None


@contextlib.contextmanager
def _interpret_env():
    if not interpreting() or _env_interpret():
        yield
        return
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        yield
    finally:
        os.environ.pop("TRITON_INTERPRET", None)


_HELPERS = '''
@triton.jit
def _tanh(x):
    return 1.0 - tl.div_rn(2.0, tl.exp(2.0 * x) + 1.0)


@triton.jit
def _expm1(x):
    return tl.exp(x) - 1.0


@triton.jit
def _log1p(x):
    return tl.log(1.0 + x)
'''


class _TritonDialect(Triton):
    @staticmethod
    def fn(name, *args):
        if name == "pow":
            raise CaptureError("pow with a general exponent (no generated Triton kernel)")
        return Triton.fn(name, *args)


def _block_const(expr: str) -> str:
    """A loop-carried or stored value must be a block of ACC: a bare constant becomes one."""
    try:
        float(expr.replace("float(", "").replace(")", "").strip("'"))
    except ValueError:
        if expr in ("True", "False"):
            return f"tl.full([BLOCK], {1.0 if expr == 'True' else 0.0}, ACC)"
        return f"({expr}).to(ACC)"
    return f"tl.full([BLOCK], {expr}, ACC)"


def source(cap: Captured) -> str:
    """The Python source of the module holding ``cap``'s two Triton kernels."""
    if cap.dtype != torch.float32:
        raise CaptureError(f"dtype {cap.dtype} (the generated Triton kernels run float32)")
    k, n_p, g = len(cap.state_vars), len(cap.param_names), len(cap.grad_params)
    reads_x, reads_st = cap.bwd_reads()
    pn = [f"p{j}" for j in range(n_p)]
    ind = " " * 8

    f_lines, f_out = lower(cap.fwd, _TritonDialect, ["a_x"] + [f"a_s{q}" for q in range(k)] + [f"a_{p}" for p in pn],
                           cap.dtype, "f")
    sv = [q for q in range(k) if reads_st[q]]
    fwd_args = ["x_ptr"] + [f"{p}_ptr" for p in pn] + [f"st{q}_ptr" for q in range(k)] + [f"sv{q}_ptr" for q in sv] + \
        ["s_ptr", "h_ptr", "T", "M", "SAVE: tl.constexpr", "BLOCK: tl.constexpr", "ACC: tl.constexpr"]
    fwd = [f"@triton.jit\ndef fwd_kernel({', '.join(fwd_args)}):",
           "    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)",
           "    mask = offs < M",
           "    o = offs.to(tl.int64)"]
    fwd += [f"    a_{p} = tl.load({p}_ptr + offs, mask=mask, other=0.0).to(ACC)" for p in pn]
    fwd += [f"    a_s{q} = tl.load(st{q}_ptr + offs, mask=mask, other=0.0).to(ACC)" for q in range(k)]
    fwd += ["    for _t in range(0, T):",
            f"{ind}a_x = tl.load(x_ptr + o, mask=mask, other=0.0).to(ACC)"]
    fwd += [f"{ind}if SAVE:\n{ind}    tl.store(sv{q}_ptr + o, a_s{q}, mask=mask)" for q in sv]
    fwd += [ind + ln for ln in f_lines]
    fwd += [f"{ind}tl.store(s_ptr + o, {_block_const(f_out[0])}, mask=mask)",
            f"{ind}tl.store(h_ptr + o, {_block_const(f_out[1])}, mask=mask)"]
    fwd += [f"{ind}n_s{q} = {_block_const(f_out[2 + q])}" for q in range(k)]  # all new states from the old ones
    fwd += [f"{ind}a_s{q} = n_s{q}" for q in range(k)]
    fwd += [f"{ind}o += M"]
    fwd += [f"    tl.store(st{q}_ptr + offs, a_s{q}, mask=mask)" for q in range(k)]

    b_in = ["a_x" if reads_x else None] + [f"a_s{q}" if reads_st[q] else None for q in range(k)] + \
        [f"a_{p}" for p in pn] + ["a_gs", "a_gh"] + [f"a_g{q}" for q in range(k)]
    b_lines, b_out = lower(cap.bwd, _TritonDialect, b_in, cap.dtype, "b")
    bwd_args = (["x_ptr"] if reads_x else []) + [f"{p}_ptr" for p in pn] + [f"sv{q}_ptr" for q in sv] + \
        ["gs_ptr", "gh_ptr"] + [f"g{q}_ptr" for q in range(k)] + ["gx_ptr"] + [f"gp{j}_ptr" for j in range(g)] + \
        ["T", "M", "LAST", "HAS_GS: tl.constexpr", "HAS_GH: tl.constexpr", "BLOCK: tl.constexpr", "ACC: tl.constexpr"]
    bwd = [f"@triton.jit\ndef bwd_kernel({', '.join(bwd_args)}):",
           "    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)",
           "    mask = offs < M",
           "    o = offs.to(tl.int64) + LAST"]
    bwd += [f"    a_{p} = tl.load({p}_ptr + offs, mask=mask, other=0.0).to(ACC)" for p in pn]
    bwd += [f"    a_g{q} = tl.load(g{q}_ptr + offs, mask=mask, other=0.0).to(ACC)" for q in range(k)]
    bwd += [f"    acc{j} = tl.full([BLOCK], 0.0, ACC)" for j in range(g)]
    bwd += ["    for _t in range(0, T):"]
    if reads_x:
        bwd += [f"{ind}a_x = tl.load(x_ptr + o, mask=mask, other=0.0).to(ACC)"]
    bwd += [f"{ind}a_s{q} = tl.load(sv{q}_ptr + o, mask=mask, other=0.0).to(ACC)" for q in sv]
    bwd += [f"{ind}if HAS_GS:\n{ind}    a_gs = tl.load(gs_ptr + o, mask=mask, other=0.0).to(ACC)\n{ind}else:\n"
            f"{ind}    a_gs = tl.full([BLOCK], 0.0, ACC)",
            f"{ind}if HAS_GH:\n{ind}    a_gh = tl.load(gh_ptr + o, mask=mask, other=0.0).to(ACC)\n{ind}else:\n"
            f"{ind}    a_gh = tl.full([BLOCK], 0.0, ACC)"]
    bwd += [ind + ln for ln in b_lines]
    bwd += [f"{ind}tl.store(gx_ptr + o, {_block_const(b_out[0])}, mask=mask)"]
    bwd += [f"{ind}n_g{q} = {_block_const(b_out[1 + q])}" for q in range(k)]
    bwd += [f"{ind}a_g{q} = n_g{q}" for q in range(k)]
    bwd += [f"{ind}acc{j} = acc{j} + {_block_const(b_out[1 + k + j])}" for j in range(g)]
    bwd += [f"{ind}o -= M"]
    bwd += [f"    tl.store(g{q}_ptr + offs, a_g{q}, mask=mask)" for q in range(k)]
    bwd += [f"    tl.store(gp{j}_ptr + offs, acc{j}, mask=mask)" for j in range(g)]
    head = (f"# generated by neurosynth._ops.custom.triton for {cap.name}: states {cap.state_vars}, parameters "
            f"{cap.param_names}, learning {cap.grad_params}\nimport triton\nimport triton.language as tl\n")
    return head + _HELPERS + "\n\n" + "\n".join(fwd) + "\n\n\n" + "\n".join(bwd) + "\n"


def _load(src: str):
    from ...io import atomic_write
    from .cpu import cache_root

    key = hashlib.sha256((src + str(interpreting())).encode()).hexdigest()[:16]
    with _lock:
        if key in _modules:
            return _modules[key]
        path = cache_root() / "triton" / f"ns_custom_{key}.py"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path) as f:
                f.write(src)
        name = f"neurosynth_custom_triton_{key}"
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        with _interpret_env():
            try:
                spec.loader.exec_module(mod)
            except Exception as exc:  # noqa: BLE001 - a template Triton cannot compile: fall back, say why
                raise CaptureError(f"the generated Triton module failed to load ({type(exc).__name__}: {exc})") from exc
        sys.modules[name] = mod
        _modules[key] = mod
        return mod


def _block(m: int) -> int:
    if interpreting():
        return max(16, min(4096, triton.next_power_of_2(max(m, 1))))
    return 128


class TritonKernel:
    """A generated Triton kernel pair (the contract of :mod:`neurosynth._ops.custom.autograd`)."""

    device_type = "triton"

    def __init__(self, cap: Captured):
        if triton is None:
            raise CaptureError("triton is not installed")
        self.cap = cap
        self.src = source(cap)
        self.mod = _load(self.src)
        self.reads_x, self.reads_st = cap.bwd_reads()

    def _opts(self) -> dict:
        return {} if interpreting() else {"enable_fp_fusion": False}

    def forward(self, x, states, params, save: bool):
        T, M = x.shape
        s, h = torch.empty_like(x), torch.empty_like(x)
        saved = [torch.empty_like(x) if r else None for r in self.reads_st]
        if T and M:
            block = _block(M)
            sv = [t if save else x for t in saved if t is not None]  # a dummy pointer when not saving
            self.mod.fwd_kernel[(triton.cdiv(M, block),)](x, *params, *states, *sv, s, h, T, M, SAVE=save,
                                                          BLOCK=block, ACC=triton.language.float32, **self._opts())
        if not save:
            saved = [None for _ in saved]
        return s, h, saved

    def backward(self, T: int, x, saved, params, g_s, g_h, g_states):
        M = g_states[0].numel()
        dev, dtype = g_states[0].device, g_states[0].dtype
        g_x = torch.empty((T, M), dtype=dtype, device=dev)
        g_p = [torch.empty(M, dtype=dtype, device=dev) for _ in self.cap.grad_params]
        if T and M:
            block = _block(M)
            args = ([x] if self.reads_x else []) + list(params) + [t for t in saved if t is not None]
            args += [g_x if g_s is None else g_s, g_x if g_h is None else g_h, *g_states, g_x, *g_p]
            self.mod.bwd_kernel[(triton.cdiv(M, block),)](*args, T, M, (T - 1) * M, HAS_GS=g_s is not None, HAS_GH=g_h is not None,
                                                          BLOCK=block, ACC=triton.language.float32, **self._opts())
        else:
            for t in g_p:
                t.zero_()
        return g_x, g_p
