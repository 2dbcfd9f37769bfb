r"""A safe default on CUDA until the built-in Triton kernels are proven there: check each op once per device.

The first time the dispatcher (:func:`neurosynth._ops.implementation`) would send an op to its Triton kernels on a
device, :func:`verified` runs that op once on a small input (``T=6, B=2``, 16 neurons, forward and backward,
milliseconds; the op's autograd function on fixed parameters, no module) with the Triton implementation and with the reference implementation and compares them:
spikes may differ only where rounding decided (at the first flipped step the reference membrane is within ``1e-5``
relative of the threshold), and when no spike flipped the membranes and input gradients must agree
within ``rtol=1e-3, atol=1e-4``. On a mismatch (or an exception in the
kernel) it warns once and the op runs its reference implementation on that device for the rest of the process.

:func:`paths` records which implementation each op took on each device (``{"lif@cuda:0": "triton", ...}``);
:func:`neurosynth.functional.kernel_record` joins them with the custom neurons' generated kernels
(:func:`neurosynth._ops.custom.paths`), and the run manifests (:func:`neurosynth.rundir.manifest`) store it as
``"kernels"``. Custom neurons' generated kernels have
their own first-use check (:func:`neurosynth._ops.custom.self_check`).
"""

from __future__ import annotations

import threading
import warnings

import torch

_lock = threading.Lock()
_results: dict[tuple[str, str], str | None] = {}  # (op, device) -> None (passed) | why it failed
_paths: dict[str, str] = {}
T, B, N = 6, 2, 16
THRESHOLD, ADAPT_DECAY, ADAPT_SCALE = 1.0, 0.9, 1.8  # the fixed case's threshold and ALIF adaptation


def _case(op: str, device) -> tuple:
    """The op's fixed small case: ``(args before x, args after x)`` for its autograd function (no module, no RNG)."""
    f = dict(device=device, dtype=torch.float32)
    zeros = torch.zeros(B, N, **f)
    beta, thr = torch.tensor(0.9, **f), torch.tensor(THRESHOLD, **f)
    if op == "lif":
        return (), (zeros, beta, thr, "subtract")
    if op == "cubalif":
        return (), (zeros, zeros, torch.tensor(0.7, **f), beta, thr, "zero")
    if op == "alif":
        return (), (zeros, zeros, beta, thr, torch.tensor(ADAPT_DECAY, **f), torch.tensor(ADAPT_SCALE, **f),
                                   "subtract")
    if op == "recurrent":
        w = torch.linspace(-0.3, 0.3, N * N, **f).reshape(N, N).roll(3, 1)
        return ("lif",), (w, None, zeros, [zeros], [beta, thr], "subtract")
    raise ValueError(f"no self-check for op {op!r}")


def _threshold_at(op: str, s_ref: torch.Tensor, t0: int):
    """The firing threshold of the fixed case at step ``t0``, from the reference spikes before it (ALIF's adaptive
    threshold ``threshold + adapt_scale * a``, ``a = adapt_decay * a + s`` after every step; the others: 1.0)."""
    if op != "alif":
        return THRESHOLD
    a = torch.zeros_like(s_ref[0])
    for t in range(t0):
        a = ADAPT_DECAY * a + s_ref[t]
    return THRESHOLD + ADAPT_SCALE * a


def _run(op: str, x: torch.Tensor, impl: str):
    """``(spikes, pre-reset membrane h, d loss / d x)`` of op ``op`` on ``x`` through implementation ``impl``."""
    import importlib

    from ..surrogate import ATan
    from . import forced

    fn = getattr(importlib.import_module(f".{op}.autograd", __package__), op)
    before, after = _case(op, x.device)
    xi = x.clone().requires_grad_(True)
    with forced(impl), torch.enable_grad():
        out = fn(*before, xi, *after, True, ATan())
        s, h = out[0], out[1]
        g = torch.autograd.grad((s * torch.linspace(-1, 1, s.numel(), device=s.device).view_as(s)).sum(), xi)[0]
    return s.detach(), h.detach(), g


def check(op: str, device: torch.device, impl: str = "triton") -> str | None:
    """Compare op ``op``'s implementation ``impl`` with its reference on ``device``; ``None`` if they agree, else why not."""
    x = (torch.linspace(-1.0, 2.5, T * B * N).reshape(T, B, N).roll(5, -1) * 1.2).to(device)
    try:
        s, h, g = _run(op, x, impl)
    except Exception as exc:  # noqa: BLE001 - a kernel that fails on this device is a failed check
        return f"{impl} kernel failed ({type(exc).__name__}: {str(exc)[:160]})"
    s_r, h_r, g_r = _run(op, x, "reference")
    flips = s != s_r
    if bool(flips.any()):
        # a rounding flip, not a bug: at the first flipped step the reference membrane sits on the threshold
        t0 = int(flips.flatten(1).any(1).nonzero()[0])
        thr = _threshold_at(op, s_r, t0)
        near = (h_r[t0] - thr).abs() <= 1e-5 * (1 + torch.as_tensor(thr).abs())
        if not bool(near.expand_as(flips[t0])[flips[t0]].all()):
            return f"{int(flips.sum())} of {s.numel()} spikes differ from the reference"
        return None  # after a flip the runs diverge: nothing more to compare
    if not torch.allclose(h, h_r, rtol=1e-3, atol=1e-4):
        return f"membranes differ from the reference (max {float((h - h_r).abs().max()):.2e})"
    if not torch.allclose(g, g_r, rtol=1e-3, atol=1e-4):
        return f"gradients differ from the reference (max {float((g - g_r).abs().max()):.2e})"
    return None


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


def reset() -> None:
    """Forget every check (tests)."""
    with _lock:
        _results.clear()
        _paths.clear()
