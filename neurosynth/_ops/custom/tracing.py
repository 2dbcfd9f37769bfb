r"""Capture a custom neuron's hooks as two flat elementwise graphs: one forward step and one backward step.

A custom neuron (:class:`neurosynth.neurons.NeuronModel` with its own ``charge`` / ``threshold_of`` /
``after_fire``) runs the generic composition of :meth:`NeuronModel.dynamics`::

    state1 = charge(x, state0, p);  h = state1.v;  thr = threshold_of(state1, p)
    s      = (h - thr > 0)                                  # surrogate gradient sigma'(h - thr) backward
    state2 = after_fire(s, state1._replace(v=reset(h, s_r, thr)), p)   # s_r = s.detach() if detach_reset

:func:`capture` traces that step with ``make_fx`` on fake tensors (no data: a Python branch on tensor values
cannot be captured and is reported as such) in which every input -- the input, each state variable and each
parameter -- is one flat vector of the same length, so every node is elementwise and broadcasting needs no
reduction. It returns

- ``fwd``: ``(x, *state0, *params) -> (s, h, *state2)``;
- ``bwd``: ``(x, *state0, *params, g_s, g_h, *g_state2) -> (g_x, *g_state0, *g_params_that_learn)``, the
  vector-Jacobian product of that step (the hooks' own derivative formulas from ``torch.func.vjp``, the fire as
  ``g_s * surrogate.grad(h - thr)`` exactly as the reference's spike function), recomputing what it needs from
  the step's inputs. So what the backward has to keep is the state entering every step (and ``x`` when the
  hooks' derivatives read it).

Both graphs then go through :mod:`neurosynth._ops.custom.codegen` (C++ for CPU tensors, Triton for CUDA).
Anything that is not elementwise (a reduction, a view that changes the shape, an in-place op, an integer
tensor, a tensor constant) raises :class:`CaptureError` naming it; the caller then runs the reference loop.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import fx

#: length of the flat vectors the hooks are traced on (odd, so a stray broadcast shows up as a wrong shape)
TRACE_LEN = 7


#: ATen ops whose float results are not bit-reproducible between torch's CPU kernels and the generated code
INEXACT = frozenset({"exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "sin", "cos", "expm1", "log1p", "pow"})


class CaptureError(Exception):
    """A hook that cannot be turned into a fused kernel; ``str(exc)`` says why (shown in the fallback warning)."""


@dataclasses.dataclass(frozen=True)
class Captured:
    """The traced step of one neuron configuration (see the module docstring for the graphs' signatures)."""

    name: str  # the neuron class
    state_vars: tuple[str, ...]
    param_names: tuple[str, ...]
    grad_params: tuple[str, ...]  # the parameters whose gradients ``bwd`` returns, in ``param_names`` order
    fwd: fx.GraphModule
    bwd: fx.GraphModule
    dtype: torch.dtype

    @property
    def inexact_ops(self) -> tuple[str, ...]:
        """The forward step's ops whose eager CPU kernels are not correctly rounded (torch's vectorised ``sqrt``,
        ``exp``, ... differ from the C library in the last bit): with any of them the forward is compared with
        a tolerance rather than bit for bit."""
        names = set()
        for n in self.fwd.graph.nodes:
            if n.op != "call_function":
                continue
            name = getattr(getattr(n.target, "overloadpacket", None), "__name__", "")
            if name == "pow" and len(n.args) > 1 and n.args[1] in (0, 1, 2, 3, -1):
                continue  # x*x, x*x*x, 1/x: correctly rounded like torch's
            names.add(name)
        return tuple(sorted(names & INEXACT))

    @property
    def n_in(self) -> int:
        return 1 + len(self.state_vars) + len(self.param_names)

    def bwd_reads(self) -> tuple[bool, tuple[bool, ...]]:
        """``(reads x, reads state k for every k)``: which forward inputs the backward graph uses."""
        ph = [n for n in self.bwd.graph.nodes if n.op == "placeholder"]
        used = [len(n.users) > 0 for n in ph]
        k = len(self.state_vars)
        return used[0], tuple(used[1:1 + k])


def generic_dynamics(neuron) -> bool:
    """True when ``neuron`` steps through the generic composition charge -> fire -> reset -> after_fire (the one
    this module captures). The neuron says so itself (``NeuronModel.uses_generic_dynamics``): the kernel machinery
    does not know the neuron classes."""
    return bool(neuron.uses_generic_dynamics())


def why_not(neuron) -> str | None:
    """Why ``neuron``'s multi-step run cannot be generated at all (before any tracing), or ``None``."""
    from ...surrogate import Surrogate

    if not neuron.spiking:
        return "a non-spiking neuron (its output is the membrane) has no generated kernel"
    if not generic_dynamics(neuron):
        return f"{type(neuron).__name__} overrides dynamics(); only charge/threshold_of/after_fire are captured"
    if "v" not in neuron.state_vars:
        return "the state has no 'v' (the membrane compared with the threshold)"
    if type(neuron.surrogate).__call__ is not Surrogate.__call__:
        return f"the surrogate {type(neuron.surrogate).__name__} overrides __call__ (its forward is not the step)"
    return None


def _step_parts(neuron, n_state: int):
    """The pure pieces of one step on flat tuples: ``f1(x, st0, p) -> (st1, thr)`` and
    ``f2(s_reset, s_fire, st1, thr, p) -> st2``."""
    State, Params = neuron.State, neuron.Params
    names = tuple(neuron.defaults)

    def params_of(p):
        return Params(**dict(zip(names, p)))

    def f1(x, st0, p):
        pp = params_of(p)
        st1 = neuron.charge(x, State(*st0), pp)
        thr = neuron.threshold_of(st1, pp)
        return tuple(st1), thr

    def f2(s_reset, s_fire, st1, thr, p):
        st1 = State(*st1)
        v = neuron._reset_fn(st1.v, s_reset, thr)
        st2 = neuron.after_fire(s_fire, st1._replace(v=v), params_of(p))
        return tuple(st2)

    return f1, f2


def _as_flat(t: Any, like: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise CaptureError(f"{what} returned {type(t).__name__}, not a tensor")
    if t.dtype != like.dtype:
        raise CaptureError(f"{what} returned dtype {t.dtype}, the input is {like.dtype}")
    if tuple(t.shape) not in ((TRACE_LEN,), ()):
        raise CaptureError(f"{what} is not elementwise (shape {tuple(t.shape)} from inputs of shape {tuple(like.shape)})")
    return t.expand_as(like) if t.dim() == 0 else t


def capture(neuron, dtype: torch.dtype, grad_params: tuple[str, ...]) -> Captured:
    """Trace ``neuron``'s step for inputs of ``dtype``; ``grad_params`` are the parameters that learn."""
    reason = why_not(neuron)
    if reason is not None:
        raise CaptureError(reason)
    from torch.fx.experimental.proxy_tensor import make_fx

    state_vars = tuple(neuron.state_vars)
    names = tuple(neuron.defaults)
    k, n_p = len(state_vars), len(names)
    iv = state_vars.index("v")
    f1, f2 = _step_parts(neuron, k)
    sur, detach = neuron.surrogate, neuron.detach_reset
    grad_idx = [names.index(g) for g in grad_params]

    def step(x, *rest):
        st0, p = rest[:k], rest[k:]
        st1, thr = f1(x, st0, p)
        st1 = tuple(_as_flat(t, x, f"charge() (state {n!r})") for t, n in zip(st1, state_vars))
        thr = _as_flat(thr, x, "threshold_of()")
        h = st1[iv]
        s = (h - thr > 0).to(x.dtype)
        s_r = s.detach() if detach else s
        st2 = tuple(_as_flat(t, x, f"after_fire() (state {n!r})") for t, n in zip(f2(s_r, s, st1, thr, p), state_vars))
        return (s, h, *st2)

    def backward(x, *rest):
        st0, p = rest[:k], rest[k:k + n_p]
        g_s_out, g_h_out, g_st2 = rest[k + n_p], rest[k + n_p + 1], rest[k + n_p + 2:]
        (st1, thr), vjp1 = torch.func.vjp(lambda a, b, c: f1(a, b, c), x, tuple(st0), tuple(p))
        h = st1[iv]
        u = h - thr
        s = (u > 0).to(x.dtype)
        st2, vjp2 = torch.func.vjp(f2, s, s, tuple(st1), thr, tuple(p))
        g_sr, g_sf, g_st1, g_thr, g_p2 = vjp2(tuple(g_st2))
        g_s = g_s_out + g_sf
        if not detach:
            g_s = g_s + g_sr
        g_u = g_s * sur.grad(u)
        g_st1 = list(g_st1)
        g_st1[iv] = g_st1[iv] + g_h_out + g_u
        g_x, g_st0, g_p1 = vjp1((tuple(g_st1), g_thr - g_u))
        g_p = [g_p1[i] + g_p2[i] for i in grad_idx]
        return (g_x, *g_st0, *g_p)

    example = [torch.zeros(TRACE_LEN, dtype=dtype) for _ in range(1 + k + n_p)]
    grads = [torch.zeros(TRACE_LEN, dtype=dtype) for _ in range(2 + k)]
    try:
        fwd = make_fx(step, tracing_mode="fake")(*example)
        bwd = make_fx(backward, tracing_mode="fake")(*example, *grads)
    except CaptureError:
        raise
    except Exception as exc:  # noqa: BLE001 - any tracing failure (data-dependent branch, unsupported op): fall back
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CaptureError(f"tracing the hooks failed ({type(exc).__name__}: {msg[:200]})") from exc
    for gm in (fwd, bwd):
        gm.graph.eliminate_dead_code()
        gm.recompile()
    return Captured(type(neuron).__name__, state_vars, names, tuple(grad_params), fwd, bwd, dtype)
