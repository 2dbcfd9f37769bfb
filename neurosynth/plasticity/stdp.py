r"""Spike-timing-dependent plasticity as pure functions on traces.

Every rule is a step function ``step(pre_spikes, post_spikes, state, w, params, connection) -> (dw, state)``
that returns the weight change of one time step (before the learning rate) and the new trace state; nothing
is modified in place and nothing is tracked by autograd (callers run it under ``torch.no_grad()``).
:func:`apply_update` adds ``lr * dw`` and clips to the weight bounds.

Order of operations inside one step of length ``dt`` (the same for all rules):

1. decay every trace by ``exp(-dt / tau)``;
2. compute the weight change from the decayed traces (which hold only *earlier* spikes) and the current
   spikes: LTP at each post-synaptic spike, LTD at each pre-synaptic spike;
3. add the current spikes to the traces (``trace="all"``: ``x += s``, all-to-all pairing;
   ``trace="nearest"``: ``x = 1`` where ``s`` spikes, nearest-spike pairing).

So a single pre spike at ``t_pre`` and post spike at ``t_post`` with :math:`\Delta t = t_{post} - t_{pre}`
give the classic window (Bi & Poo 1998; Song, Miller & Abbott 2000)

.. math::
    \Delta w = \begin{cases} A_+ f_+(w)\, e^{-\Delta t/\tau_+} & \Delta t > 0 \text{ (LTP)}\\
                             -A_- f_-(w)\, e^{\Delta t/\tau_-} & \Delta t < 0 \text{ (LTD)}\\
                             0 & \Delta t = 0 \end{cases}

with ``weight_dependence="additive"``: :math:`f_\pm = 1` plus hard clipping to ``[w_min, w_max]``, or
``"multiplicative"`` (soft bounds, van Rossum et al. 2000; Gütig et al. 2003):
:math:`f_+ = (w_{max} - w)^\mu`, :math:`f_- = (w - w_{min})^\mu`.

Triplet STDP (Pfister & Gerstner 2006) adds slow traces ``r2`` (pre, :math:`\tau_x`) and ``o2`` (post,
:math:`\tau_y`): LTP at a post spike is :math:`r_1 (A_2^+ + A_3^+ o_2)`, LTD at a pre spike
:math:`o_1 (A_2^- + A_3^- r_2)`, with ``o2``/``r2`` read before the current spike is added. For an isolated
pair the triplet terms vanish and the window is the pair window with :math:`A_2^\pm`.

Reward-modulated STDP (Izhikevich 2007; Florian 2007) accumulates the pair update in an eligibility trace
:math:`e \leftarrow e\, e^{-dt/\tau_e} + \Delta w_{STDP}` and changes the weight by :math:`r(t)\, e(t)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor

from ..registry import Registry
from .connections import Connection, Dense

_WEIGHT_DEPENDENCE = ("additive", "multiplicative")
_TRACE = ("all", "nearest")


def _check_common(p) -> None:
    for name in ("tau_plus", "tau_minus", "dt"):
        if not getattr(p, name) > 0:
            raise ValueError(f"{name} must be > 0, got {getattr(p, name)}")
    if not p.w_max > p.w_min:
        raise ValueError(f"w_max ({p.w_max}) must be larger than w_min ({p.w_min})")
    if p.weight_dependence not in _WEIGHT_DEPENDENCE:
        raise ValueError(f"weight_dependence must be one of {_WEIGHT_DEPENDENCE}, got {p.weight_dependence!r}")
    if p.trace not in _TRACE:
        raise ValueError(f"trace must be one of {_TRACE}, got {p.trace!r}")
    if p.mu < 0:
        raise ValueError(f"mu must be >= 0, got {p.mu}")


@dataclass(frozen=True)
class STDPParams:
    """Pair STDP. Times (``tau_*``, ``dt``) share one unit (e.g. ms); amplitudes are per pair."""

    a_plus: float = 0.01
    a_minus: float = 0.012
    tau_plus: float = 20.0
    tau_minus: float = 20.0
    w_min: float = 0.0
    w_max: float = 1.0
    weight_dependence: str = "additive"  # "additive" (hard bounds) | "multiplicative" (soft bounds)
    mu: float = 1.0  # exponent of the soft bound
    trace: str = "all"  # "all" (all-to-all pairing) | "nearest"
    dt: float = 1.0

    def __post_init__(self) -> None:
        _check_common(self)

    def window(self, delta_t: float, w: float | None = None) -> float:
        """Analytic weight change of one isolated pair at ``delta_t = t_post - t_pre``."""
        return pair_window(delta_t, self.a_plus, self.a_minus, self.tau_plus, self.tau_minus, self, w)


@dataclass(frozen=True)
class TripletParams:
    """Triplet STDP (Pfister & Gerstner 2006). The defaults are illustrative magnitudes, not a fitted set."""

    a2_plus: float = 5e-3
    a3_plus: float = 6e-3
    a2_minus: float = 7e-3
    a3_minus: float = 2e-4
    tau_plus: float = 16.8
    tau_minus: float = 33.7
    tau_x: float = 101.0
    tau_y: float = 125.0
    w_min: float = 0.0
    w_max: float = 1.0
    weight_dependence: str = "additive"
    mu: float = 1.0
    trace: str = "all"
    dt: float = 1.0

    def __post_init__(self) -> None:
        _check_common(self)
        for name in ("tau_x", "tau_y"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    def window(self, delta_t: float, w: float | None = None) -> float:
        """Analytic weight change of one isolated pair (the triplet terms are zero for a single pair)."""
        return pair_window(delta_t, self.a2_plus, self.a2_minus, self.tau_plus, self.tau_minus, self, w)


@dataclass(frozen=True)
class RSTDPParams:
    """Reward-modulated STDP: a pair rule feeding an eligibility trace with time constant ``tau_e``."""

    stdp: STDPParams = field(default_factory=STDPParams)
    tau_e: float = 200.0

    def __post_init__(self) -> None:
        if not self.tau_e > 0:
            raise ValueError(f"tau_e must be > 0, got {self.tau_e}")

    @property
    def w_min(self) -> float:
        return self.stdp.w_min

    @property
    def w_max(self) -> float:
        return self.stdp.w_max

    @property
    def dt(self) -> float:
        return self.stdp.dt

    def window(self, delta_t: float, w: float | None = None, reward: float = 1.0, delay: float = 0.0) -> float:
        """Weight change for one pair followed by one reward ``reward`` arriving ``delay`` after the later spike."""
        return reward * self.stdp.window(delta_t, w) * math.exp(-delay / self.tau_e)


def pair_window(delta_t: float, a_plus: float, a_minus: float, tau_plus: float, tau_minus: float,
                p, w: float | None = None) -> float:
    """The analytic STDP window (see module docstring) for ``delta_t = t_post - t_pre``."""
    if p.weight_dependence == "multiplicative":
        if w is None:
            raise ValueError("the multiplicative window depends on the weight; pass w")
        f_plus, f_minus = (p.w_max - w) ** p.mu, (w - p.w_min) ** p.mu
    else:
        f_plus = f_minus = 1.0
    if delta_t > 0:
        return a_plus * f_plus * math.exp(-delta_t / tau_plus)
    if delta_t < 0:
        return -a_minus * f_minus * math.exp(delta_t / tau_minus)
    return 0.0


# ----------------------------------------------------------------------------------------------- states
class STDPState(NamedTuple):
    """Pair STDP traces: ``pre`` shaped like the pre-synaptic spikes, ``post`` like the post-synaptic ones."""

    pre: Tensor
    post: Tensor


class TripletState(NamedTuple):
    r1: Tensor  # pre, tau_plus
    r2: Tensor  # pre, tau_x
    o1: Tensor  # post, tau_minus
    o2: Tensor  # post, tau_y


class RSTDPState(NamedTuple):
    traces: STDPState
    eligibility: Tensor  # shaped like the weight


def stdp_init(pre: Tensor, post: Tensor) -> STDPState:
    """Zero traces shaped like one time step of pre- and post-synaptic spikes."""
    return STDPState(torch.zeros_like(pre), torch.zeros_like(post))


def triplet_init(pre: Tensor, post: Tensor) -> TripletState:
    return TripletState(torch.zeros_like(pre), torch.zeros_like(pre), torch.zeros_like(post), torch.zeros_like(post))


def rstdp_init(pre: Tensor, post: Tensor, w: Tensor) -> RSTDPState:
    return RSTDPState(stdp_init(pre, post), torch.zeros_like(w))


# ------------------------------------------------------------------------------------------ primitives
def decay_factor(tau: float, dt: float) -> float:
    return math.exp(-dt / tau)


def add_spikes(trace: Tensor, spikes: Tensor, mode: str = "all") -> Tensor:
    """Add this step's spikes to an (already decayed) trace."""
    if mode == "all":
        return trace + spikes
    if mode == "nearest":
        return torch.where(spikes > 0, torch.ones_like(trace), trace)
    raise ValueError(f"trace must be one of {_TRACE}, got {mode!r}")


def soft_bound_factors(w: Tensor, p) -> tuple[Tensor | float, Tensor | float]:
    """``(f_plus, f_minus)``: 1 for additive rules, ``((w_max-w)^mu, (w-w_min)^mu)`` for multiplicative."""
    if p.weight_dependence == "multiplicative":
        f_plus = (p.w_max - w).clamp_min(0.0)
        f_minus = (w - p.w_min).clamp_min(0.0)
        if p.mu != 1.0:
            f_plus, f_minus = f_plus**p.mu, f_minus**p.mu
        return f_plus, f_minus
    return 1.0, 1.0


def _check_spikes(pre: Tensor, post: Tensor, state_pre: Tensor, state_post: Tensor) -> None:
    if pre.shape != state_pre.shape or post.shape != state_post.shape:
        raise ValueError(
            f"spike shapes pre {tuple(pre.shape)} / post {tuple(post.shape)} do not match the trace state "
            f"{tuple(state_pre.shape)} / {tuple(state_post.shape)}; build the state from one time step "
            "of the same batch (stdp_init(pre[0], post[0]))"
        )


# ------------------------------------------------------------------------------------------------ rules
def stdp_step(pre: Tensor, post: Tensor, state: STDPState, w: Tensor, p: STDPParams,
              connection: Connection = Dense()) -> tuple[Tensor, STDPState]:
    """One step of pair STDP. ``pre``/``post``: spikes of this step; returns ``(dw, new_state)``."""
    _check_spikes(pre, post, state.pre, state.post)
    x_pre = state.pre * decay_factor(p.tau_plus, p.dt)
    x_post = state.post * decay_factor(p.tau_minus, p.dt)
    f_plus, f_minus = soft_bound_factors(w, p)
    ltp = connection.correlate(x_pre, post)
    ltd = connection.correlate(pre, x_post)
    dw = p.a_plus * f_plus * ltp - p.a_minus * f_minus * ltd
    return dw, STDPState(add_spikes(x_pre, pre, p.trace), add_spikes(x_post, post, p.trace))


def triplet_step(pre: Tensor, post: Tensor, state: TripletState, w: Tensor, p: TripletParams,
                 connection: Connection = Dense()) -> tuple[Tensor, TripletState]:
    """One step of triplet STDP; returns ``(dw, new_state)``."""
    _check_spikes(pre, post, state.r1, state.o1)
    r1 = state.r1 * decay_factor(p.tau_plus, p.dt)
    r2 = state.r2 * decay_factor(p.tau_x, p.dt)
    o1 = state.o1 * decay_factor(p.tau_minus, p.dt)
    o2 = state.o2 * decay_factor(p.tau_y, p.dt)
    f_plus, f_minus = soft_bound_factors(w, p)
    ltp = connection.correlate(r1, post * (p.a2_plus + p.a3_plus * o2))
    ltd = connection.correlate(pre * (p.a2_minus + p.a3_minus * r2), o1)
    dw = f_plus * ltp - f_minus * ltd
    new = TripletState(add_spikes(r1, pre, p.trace), add_spikes(r2, pre, p.trace),
                       add_spikes(o1, post, p.trace), add_spikes(o2, post, p.trace))
    return dw, new


def rstdp_step(pre: Tensor, post: Tensor, state: RSTDPState, w: Tensor, p: RSTDPParams,
               connection: Connection = Dense(), reward: Tensor | float = 0.0) -> tuple[Tensor, RSTDPState]:
    """One step of reward-modulated STDP; ``reward`` is a scalar (or 0-d tensor) for this step."""
    if isinstance(reward, Tensor) and reward.dim() != 0:
        raise ValueError(
            f"reward must be a scalar for the whole batch, got shape {tuple(reward.shape)}; "
            "average per-sample rewards (or use one learner per sample)"
        )
    dw_stdp, traces = stdp_step(pre, post, state.traces, w, p.stdp, connection)
    e = state.eligibility * decay_factor(p.tau_e, p.stdp.dt) + dw_stdp
    return reward * e, RSTDPState(traces, e)


def apply_update(w: Tensor, dw: Tensor, lr: float, p) -> Tensor:
    """``clip(w + lr * dw, w_min, w_max)`` (a new tensor)."""
    return (w + lr * dw).clamp(p.w_min, p.w_max)


# ----------------------------------------------------------------------------------- rule registry
@dataclass(frozen=True)
class PlasticityRule:
    """A local plasticity rule (a ``PLASTICITY_RULES`` entry: STDP, triplet STDP, R-STDP): its parameter class,
    state constructor and step function."""

    name: str
    params: type
    init: Callable[..., tuple]
    step: Callable[..., tuple[Tensor, tuple]]
    needs_reward: bool = False


PLASTICITY_RULES: Registry[PlasticityRule] = Registry("plasticity rule")
PLASTICITY_RULES.add("stdp", PlasticityRule("stdp", STDPParams, lambda pre, post, w: stdp_init(pre, post), stdp_step))
PLASTICITY_RULES.add("triplet", PlasticityRule("triplet", TripletParams, lambda pre, post, w: triplet_init(pre, post), triplet_step))
PLASTICITY_RULES.add("rstdp", PlasticityRule("rstdp", RSTDPParams, rstdp_init, rstdp_step, needs_reward=True))


def make_params(rule: str, **kw) -> STDPParams | TripletParams | RSTDPParams:
    """Build the parameter dataclass of a registered rule from keyword arguments (unknown keys -> error)."""
    r = PLASTICITY_RULES.get(rule)
    if r.params is RSTDPParams:
        tau_e = kw.pop("tau_e", RSTDPParams.tau_e)
        return RSTDPParams(stdp=_build(STDPParams, kw), tau_e=tau_e)
    return _build(r.params, kw)


def _build(cls, kw: dict):
    known = set(cls.__dataclass_fields__)
    bad = sorted(set(kw) - known)
    if bad:
        raise ValueError(f"unknown {cls.__name__} field(s) {bad}; known: {sorted(known)}")
    return cls(**kw)


__all__ = [
    "PLASTICITY_RULES", "PlasticityRule", "RSTDPParams", "RSTDPState", "STDPParams", "STDPState", "TripletParams", "TripletState",
    "add_spikes", "apply_update", "decay_factor", "make_params", "pair_window", "rstdp_init",
    "rstdp_step", "soft_bound_factors", "stdp_init", "stdp_step", "triplet_init", "triplet_step",
]
