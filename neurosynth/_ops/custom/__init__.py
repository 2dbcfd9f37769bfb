r"""Generated fused kernels for custom neurons: from the hooks to a whole-sequence forward and a reverse-time backward.

A custom neuron (``charge`` / ``threshold_of`` / ``after_fire`` on NamedTuple states) used to run the reference
loop everywhere. :func:`run` instead

1. captures one step of the neuron (:mod:`.tracing`: ``make_fx`` on fake tensors, the hooks' vector-Jacobian
   product from ``torch.func.vjp``): two flat elementwise graphs, independent of the sequence length ``T``;
2. lowers them to code (:mod:`.codegen`) inside a kernel template with the time loop inside: C++ for CPU tensors
   (:mod:`.cpu`, compiled once, about a second, cached on disk) or Triton for CUDA tensors (:mod:`.triton`);
3. checks the kernel once per configuration and device against the reference loop on a small slice of the first
   input (forward exactly on the CPU; gradients within tolerance), and
4. runs the whole sequence through one ``autograd.Function`` (:mod:`.autograd`).

Whenever a step cannot be captured (a reduction or a data-dependent Python branch in a hook, a non-spiking
neuron, an unsupported dtype or device, no compiler) or the check fails, :func:`run` returns ``None`` and the
caller runs the reference loop; a :class:`RuntimeWarning` says why, once per neuron class and reason.
:func:`paths` records which path every custom neuron class took in this process (run manifests include it).
``NEUROSYNTH_NO_CEXT=1`` (never compile), ``backend="python"`` on the neuron, a non-spiking neuron and tracing by
``torch.compile`` (which then fuses the reference loop itself) keep the reference loop silently.
"""

from __future__ import annotations

import threading
import warnings
import weakref

import torch

from .tracing import CaptureError, capture, generic_dynamics, why_not

_lock = threading.RLock()
_kernels: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # neuron -> {key: kernel | reason}
_checked: dict[tuple, str | None] = {}  # (source, device) -> None (passed) | reason (failed)
_warned: set[tuple[str, str]] = set()
_paths: dict[str, str] = {}  # neuron class -> "generated-cpu" | "generated-triton" | "reference: <why>"
_local = threading.local()
CHECK_T, CHECK_B = 8, 2  # the first-use check's slice of the input


def paths() -> dict[str, str]:
    """Which path each custom neuron class ran in this process (``{"QuadraticLIF": "generated-cpu", ...}``)."""
    with _lock:
        return dict(_paths)


def _record(neuron, path: str) -> None:
    with _lock:
        _paths[type(neuron).__name__] = path


def _fallback(neuron, reason: str) -> None:
    name = type(neuron).__name__
    _record(neuron, f"reference: {reason}")
    with _lock:
        if (name, reason) in _warned:
            return
        _warned.add((name, reason))
    warnings.warn(f"neurosynth: custom neuron {name} runs the reference loop (slower): {reason}", RuntimeWarning,
                  stacklevel=4)


def _env_disabled() -> bool:
    import os

    return os.environ.get("NEUROSYNTH_NO_CEXT", "").strip().lower() not in ("", "0", "false", "no")


def _build(neuron, dtype, device_type, grad_params):
    cap = capture(neuron, dtype, grad_params)
    if device_type == "cpu":
        from .cpu import CpuKernel

        return CpuKernel(cap)
    from .triton import TritonKernel

    return TritonKernel(cap)


def kernel_for(neuron, x: torch.Tensor, p, *, check: bool = True):
    """The generated kernel for ``neuron`` on ``x``'s device and dtype, or a string saying why there is none."""
    params = [getattr(p, n) for n in neuron.defaults]
    grad_params = tuple(n for n, t in zip(neuron.defaults, params) if isinstance(t, torch.Tensor)
                        and t.requires_grad and torch.is_grad_enabled())
    dev = x.device.type
    if dev == "cuda" or (dev == "cpu" and _triton_forced()):
        from .triton import usable

        why = usable(x)
        if why is not None:
            return why
        device_type = "triton"
    elif dev == "cpu":
        if x.dtype not in (torch.float32, torch.float64):
            return f"dtype {x.dtype} (the CPU kernels run float32 and float64)"
        device_type = "cpu"
    else:
        return f"no generated kernel for device {dev!r}"
    for name, t in zip(neuron.defaults, params):
        if not isinstance(t, torch.Tensor) or t.dtype != x.dtype:
            what = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
            return f"parameter {name!r} is {what} while the input is {x.dtype}"
    key = (x.dtype, device_type, grad_params, neuron.reset, neuron.detach_reset, neuron.surrogate)
    with _lock:
        table = _kernels.setdefault(neuron, {})
        if not grad_params and key not in table:  # no gradients needed: any kernel of this configuration will do
            key = next((k for k, v in table.items() if k[:2] == key[:2] and k[3:] == key[3:]
                        and not isinstance(v, str)), key)
        if key not in table:
            try:
                table[key] = _build(neuron, x.dtype, device_type, grad_params)
            except CaptureError as exc:
                table[key] = str(exc)
        kernel = table[key]
    if isinstance(kernel, str) or not check:
        return kernel
    ckey = (kernel.src, str(x.device))
    with _lock:
        known = ckey in _checked
    if not known:
        why = self_check(neuron, kernel, x, p)
        with _lock:
            _checked[ckey] = why
    with _lock:
        why = _checked[ckey]
    return kernel if why is None else why


def _triton_forced() -> bool:
    return bool(getattr(_local, "triton", False))


class force_triton:
    """Within this block (this thread) CPU tensors go to the Triton kernels (tests, with ``TRITON_INTERPRET=1``)."""

    def __enter__(self):
        self.prev = _triton_forced()
        _local.triton = True
        return self

    def __exit__(self, *exc):
        _local.triton = self.prev


def _states_list(neuron, state) -> list[torch.Tensor]:
    return [getattr(state, n) for n in neuron.state_vars]


def _usable_kernel(neuron, x: torch.Tensor, p):
    """The generated kernel for ``neuron`` on ``x``, or ``None`` when the reference loop must run (a warning says
    why, once, unless the reason is deliberate)."""
    if _env_disabled() and x.device.type == "cpu" and not _triton_forced():
        return None
    if not neuron.spiking or not generic_dynamics(neuron):
        return None  # a built-in's own dynamics (its fused op declined deliberately) or a non-spiking readout
    if torch.compiler.is_compiling():
        return None  # torch.compile traces (and fuses) the reference loop, as before; the kernel is opaque to it
    why = why_not(neuron)
    if why is None:
        kernel = kernel_for(neuron, x, p)
        if isinstance(kernel, str):
            why = kernel
    if why is not None:
        _fallback(neuron, why)
        return None
    return kernel


def run_recurrent(neuron, x: torch.Tensor, weight: torch.Tensor, bias, s0: torch.Tensor, state, p):
    """A recurrent layer of ``neuron`` (``x[t] + s[t-1] W^T + b`` into it, :mod:`.recurrent`) over ``x [T, B, N]``
    through its generated kernel: ``(spikes, final_state, trace)``, or ``None`` when the python loop must run."""
    kernel = _usable_kernel(neuron, x, p)
    if kernel is None:
        return None
    from .recurrent import apply

    states0 = [t.expand(x.shape[1:]) if t.dim() < x.dim() - 1 else t for t in _states_list(neuron, state)]
    s, h, finals = apply(kernel, x, weight, bias, s0, states0, [getattr(p, n) for n in neuron.defaults])
    _record(neuron, f"generated-{kernel.device_type}")
    return s, neuron.State(*finals), h


def run(neuron, x: torch.Tensor, state, p):
    """``(out, final_state, trace)`` of ``neuron`` over ``x [T, B, ...]`` through a generated kernel, or ``None``
    when the reference loop must run (a warning says why, once, unless the reason is deliberate)."""
    kernel = _usable_kernel(neuron, x, p)
    if kernel is None:
        return None
    from .autograd import apply

    states0 = [t.expand(x.shape[1:]) if t.dim() < x.dim() - 1 else t for t in _states_list(neuron, state)]
    s, h, finals = apply(kernel, x, states0, [getattr(p, n) for n in neuron.defaults])
    _record(neuron, f"generated-{kernel.device_type}")
    return s, neuron.State(*finals), h


def reference_loop(neuron, x: torch.Tensor, state, p):
    """The reference loop over ``neuron.dynamics`` (what the package's time loop ``scan`` runs):
    ``(out [T, ...], final state, trace [T, ...])``."""
    outs, trace = [], []
    for t in range(x.shape[0]):
        out, state, h = neuron.dynamics(x[t], state, p)
        outs.append(out)
        trace.append(h)
    return torch.stack(outs), state, torch.stack(trace)


def self_check(neuron, kernel, x: torch.Tensor, p) -> str | None:
    """Compare ``kernel`` with the reference loop on a slice of ``x`` (``T <= 8``, ``B <= 2``; forward and
    backward, from rest). ``None`` when they agree, else what differed. CPU: spikes, membranes and states
    identical, gradients within 1e-4. CUDA, and a CPU step with an op torch does not round correctly (``sqrt``,
    ``exp``...): spike flips only where the reference membrane sits on the threshold, membranes within 1e-4."""
    from .autograd import apply

    gen = torch.Generator(device="cpu").manual_seed(0)
    xs = x.detach()[:CHECK_T, :CHECK_B].clone()
    T = xs.shape[0]
    if T == 0 or xs.numel() == 0:
        return None
    names = tuple(neuron.defaults)
    pd = [getattr(p, n).detach().clone().requires_grad_(n in kernel.cap.grad_params) for n in names]
    pp = neuron.Params(**dict(zip(names, pd)))
    st0 = neuron.initial_state(xs[0])
    st0 = [t.detach().clone().requires_grad_(True) for t in _states_list(neuron, st0)]
    xr = xs.clone().requires_grad_(True)
    xk = xs.clone().requires_grad_(True)
    g_s = torch.randn(xs.shape, generator=gen).to(xs)
    exact = xs.device.type == "cpu" and kernel.device_type == "cpu" and not kernel.cap.inexact_ops
    with torch.enable_grad():
        out_r, fin_r, h_r = reference_loop(neuron, xr, neuron.State(*st0), pp)
        ref_in = [xr, *st0, *[t for t in pd if t.requires_grad]]
        grads_r = torch.autograd.grad((out_r * g_s).sum() + (h_r * 0.5 * g_s).sum(), ref_in, allow_unused=True)
        st0k = [t.detach().clone().requires_grad_(True) for t in st0]
        pk = [t.detach().clone().requires_grad_(t.requires_grad) for t in pd]
        try:  # a kernel that fails to compile or launch on this device fails the check
            s_k, h_k, fin_k = apply(kernel, xk, st0k, pk)
            kern_in = [xk, *st0k, *[t for t in pk if t.requires_grad]]
            grads_k = torch.autograd.grad((s_k * g_s).sum() + (h_k * 0.5 * g_s).sum(), kern_in, allow_unused=True)
        except Exception as exc:  # noqa: BLE001
            return f"the generated {kernel.device_type} kernel failed ({type(exc).__name__}: {str(exc)[:160]})"
    fin_r = _states_list(neuron, fin_r)
    if exact:
        if not torch.equal(out_r.detach(), s_k.detach()):
            return f"the generated kernel's spikes differ from the reference loop ({kernel.device_type})"
        if not torch.equal(h_r.detach(), h_k.detach()):
            return f"the generated kernel's membrane differs from the reference loop ({kernel.device_type})"
        for a, b, n in zip(fin_r, fin_k, neuron.state_vars):
            if not torch.equal(a.detach().expand_as(b), b.detach()):
                return f"the generated kernel's final state {n!r} differs from the reference loop"
    else:
        flips = out_r.detach() != s_k.detach()
        if bool(flips.any()):  # tolerated only where rounding decided: the membrane sat on the threshold

            if not rounding_flips(neuron, xs, flips):
                return f"the generated kernel's spikes differ from the reference loop ({kernel.device_type})"
            return None  # a flip changes everything after it: nothing more to compare
        if not torch.allclose(h_r.detach(), h_k.detach(), rtol=1e-4, atol=1e-5):
            return f"the generated kernel's membrane differs from the reference loop ({kernel.device_type})"
    for a, b in zip(grads_r, grads_k):
        a = torch.zeros_like(b) if a is None else a
        b = torch.zeros_like(a) if b is None else b
        if not torch.allclose(a, b, rtol=1e-3, atol=1e-4):
            err = float((a - b).abs().max())
            return f"the generated kernel's gradients differ from the reference loop (max abs error {err:.2e})"
    return None


def rounding_flips(neuron, x: torch.Tensor, flips: torch.Tensor, tol: float = 1e-5) -> bool:
    """True when the first step with flipped spikes flipped only where the reference membrane sits on the
    threshold (``|h - threshold_of(state)| <= tol * (1 + |threshold|)``): a rounding difference, not a bug. The
    reference state before that step comes from the neuron's pure step (``dynamics``)."""
    t0 = int(flips.flatten(1).any(1).nonzero()[0])
    p = neuron.params()
    with torch.no_grad():
        state = neuron.initial_state(x[0])
        for t in range(t0):
            _, state, _ = neuron.dynamics(x[t], state, p)
        st1 = neuron.charge(x[t0], state, p)
        thr = neuron.threshold_of(st1, p)
        margin = (st1.v - thr).abs() <= tol * (1 + torch.as_tensor(thr).abs())
    return bool(margin.expand_as(flips[t0])[flips[t0]].all())
