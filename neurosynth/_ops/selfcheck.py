r"""A safe default on CUDA until the built-in Triton kernels are proven there: check each op once per device.

The first time the dispatcher (:func:`neurosynth._ops.implementation`) would send an op to its Triton kernels on a
device, :func:`verified` runs that op once on a small input (``T=6, B=2``, 16 neurons, forward and backward,
milliseconds) with the Triton implementation and with the reference implementation and compares them:
spikes may differ only where rounding decided (at the first flipped step the reference membrane is within
``1e-5`` relative of the threshold), and when no spike flipped the membranes and input gradients must agree
within ``rtol=1e-3, atol=1e-4``. On a mismatch (or an exception in the
kernel) it warns once and the op runs its reference implementation on that device for the rest of the process.

:func:`paths` records which implementation each op took on each device (``{"lif@cuda:0": "triton", ...}``);
:func:`kernel_record` adds the custom neurons' generated kernels (:func:`neurosynth._ops.custom.paths`), and the run
manifests (:func:`neurosynth.rundir.manifest`) store it as ``"kernels"``. Custom neurons' generated kernels have
their own first-use check (:func:`neurosynth._ops.custom.self_check`).
"""

from __future__ import annotations

import copy
import threading
import warnings

import torch

_lock = threading.Lock()
_results: dict[tuple[str, str], str | None] = {}  # (op, device) -> None (passed) | why it failed
_paths: dict[str, str] = {}
T, B, N = 6, 2, 16


def _module_for(op: str):
    from .. import layers, neurons

    if op == "lif":
        return neurons.LIF(beta=0.9, threshold=1.0)
    if op == "cubalif":
        return neurons.CubaLIF(alpha=0.7, beta=0.9, threshold=1.0)
    if op == "alif":
        return neurons.ALIF(beta=0.9, threshold=1.0)
    if op == "recurrent":
        rec = layers.Recurrent(N, neurons.LIF(beta=0.9, threshold=1.0))
        with torch.no_grad():  # fixed weights (no global RNG)
            w = torch.linspace(-0.3, 0.3, N * N).reshape(N, N)
            rec.rec.weight.copy_(w.roll(3, 1))
        return rec
    raise ValueError(f"no self-check for op {op!r}")


def _run(module, x, impl: str):
    from . import forced

    xi = x.clone().requires_grad_(True)
    with forced(impl), torch.enable_grad():
        if hasattr(module, "run"):
            s, _, h = module.run(xi)
        else:
            s = module(xi)
            h = None
        g = torch.autograd.grad((s * torch.linspace(-1, 1, s.numel(), device=s.device).view_as(s)).sum(), xi)[0]
    return s.detach(), (None if h is None else h.detach()), g


def check(op: str, device: torch.device, impl: str = "triton") -> str | None:
    """Compare op ``op``'s implementation ``impl`` with its reference on ``device``; ``None`` if they agree, else why not."""
    x = (torch.linspace(-1.0, 2.5, T * B * N).reshape(T, B, N).roll(5, -1) * 1.2).to(device)
    module = _module_for(op).to(device)
    ref_module = copy.deepcopy(module)
    try:
        s, h, g = _run(module, x, impl)
    except Exception as exc:  # noqa: BLE001 - a kernel that fails on this device is a failed check
        return f"{impl} kernel failed ({type(exc).__name__}: {str(exc)[:160]})"
    s_r, h_r, g_r = _run(ref_module, x, "reference")
    flips = s != s_r
    if bool(flips.any()):
        if not hasattr(module, "run") or not rounding_flips(module, x, flips):
            return f"{int(flips.sum())} of {s.numel()} spikes differ from the reference"
        return None  # after a flip the runs diverge: nothing more to compare
    if h is not None and not torch.allclose(h, h_r, rtol=1e-3, atol=1e-4):
        return f"membranes differ from the reference (max {float((h - h_r).abs().max()):.2e})"
    if not torch.allclose(g, g_r, rtol=1e-3, atol=1e-4):
        return f"gradients differ from the reference (max {float((g - g_r).abs().max()):.2e})"
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


def verified(op: str, x: torch.Tensor, impl: str = "triton") -> bool:
    """True when ``impl`` may run ``op`` on ``x``'s device (checked once per op and device; a failure warns once)."""
    dev = str(x.device)
    key = (op, dev)
    with _lock:
        known = key in _results
    if not known:
        if _tracing(x):
            return True  # no real data while torch.compile traces: the eager run checks
        why = check(op, x.device, impl)
        with _lock:
            first = key not in _results
            _results[key] = why
            _paths[f"{op}@{dev}"] = impl if why is None else f"reference: {why}"
        if why is not None and first:
            warnings.warn(f"neurosynth: the {impl} kernel of {op!r} disagrees with the reference on {dev} ({why}); "
                          f"{op!r} runs its reference implementation there", RuntimeWarning, stacklevel=3)
    with _lock:
        return _results[key] is None


def _tracing(x: torch.Tensor) -> bool:
    try:
        from torch._subclasses.fake_tensor import FakeTensor

        if isinstance(x, FakeTensor):
            return True
    except ImportError:  # pragma: no cover
        pass
    return bool(torch.compiler.is_compiling())


def paths() -> dict[str, str]:
    with _lock:
        return dict(_paths)


def kernel_record() -> dict:
    """What ran in this process: ``{"fused": {op@device: impl}, "custom": {neuron class: path}}`` (manifests)."""
    from . import custom

    return {"fused": paths(), "custom": custom.paths()}


def reset() -> None:
    """Forget every check (tests)."""
    with _lock:
        _results.clear()
        _paths.clear()
