r"""Spiking neurons: pure step functions under thin ``nn.Module`` wrappers.

Every neuron is a :class:`NeuronModel`: a frozen-dataclass parameter set (``Params``), a NamedTuple state
(``State``) and a pure ``dynamics(x_t, state, params) -> (out_t, state, h_t)`` (the built-in neurons call the
functional core, :mod:`neurosynth.functional`) built from three overridable pieces:

- ``charge(x, state, p) -> state``: integrate the input; ``state.v`` becomes the pre-spike membrane ``h``;
- fire: ``s = Θ(h - threshold_of(state, p))`` with the neuron's surrogate gradient (strict ``>``);
- reset (``RESETS``: ``subtract``, ``zero``, ``none``) and ``after_fire(s, state, p) -> state``.

Modules take and return time-first tensors ``[T, B, ...]``; :mod:`neurosynth.timeloop` owns the reference time
loop and the fused whole-sequence kernels are reached through :mod:`neurosynth.functional` (``lif``, ``cubalif``,
``alif``). One step at a time (snnTorch style)::

    spk, state = neuron.step(x_t, state)      # state=None starts from rest
Parameters are ``nn.Parameter`` when learnable (``learn_beta=True``, ``learn=("beta",)``) and buffers
otherwise, so ``.to()``, ``state_dict()`` and export see them.

A custom neuron is one decorator and a ``charge`` method::

    @register_neuron("quadratic_lif")
    class QuadraticLIF(NeuronModel):
        defaults = {"beta": 0.9, "threshold": 1.0, "a": 0.05}

        def charge(self, x, state, p):
            return state._replace(v=p.beta * state.v + p.a * state.v ** 2 + x)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from . import functional as F
from . import timeloop
from .registry import Registry
from .surrogate import Surrogate, get_surrogate
from .utils import check_time_first

NEURONS: Registry[type[NeuronModel]] = Registry("neuron")
RESETS: Registry = Registry("reset")


@RESETS.register("subtract")
def reset_subtract(h: torch.Tensor, s: torch.Tensor, thr: torch.Tensor) -> torch.Tensor:
    """Reset by subtraction: ``v = h - threshold * s`` (keeps the residual charge)."""
    return h - thr * s


@RESETS.register("zero")
def reset_zero(h: torch.Tensor, s: torch.Tensor, thr: torch.Tensor) -> torch.Tensor:
    """Reset to zero: ``v = h * (1 - s)`` (Loihi's reset)."""
    return h * (1 - s)


@RESETS.register("none")
def reset_none(h: torch.Tensor, s: torch.Tensor, thr: torch.Tensor) -> torch.Tensor:
    """No reset: ``v = h``."""
    return h


def register_neuron(name: str):
    """Class decorator: register a :class:`NeuronModel` subclass under ``name`` (selectable everywhere by name)."""

    def deco(cls):
        cls.neuron_name = name.lower()
        return NEURONS.register(name)(cls)

    return deco


_OPEN_EPS = 1e-3  # how far inside an open lower bound (threshold > 0) the projection keeps a parameter


def _describe(t: torch.Tensor) -> str:
    flat = t.flatten().float()
    if flat.numel() == 1:
        return f"{flat.item()}"
    return f"values from {flat.min().item()} to {flat.max().item()} ({int((~torch.isfinite(flat)).sum())} non-finite)"


def _learn_names(learn: Any) -> set[str]:
    """``learn`` as a set of parameter names; a bool or a bare string is a clear error or one name."""
    if isinstance(learn, bool) or learn is None:
        raise ValueError(f"learn= takes the names of the parameters to train, e.g. learn=('beta',) or "
                         f"learn_beta=True; got learn={learn!r}")
    if isinstance(learn, str):
        return {learn}
    try:
        return set(learn)
    except TypeError:
        raise ValueError(f"learn= takes a list of parameter names, e.g. learn=('beta',); got {learn!r}") from None


def _as_tensor(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().clone().float()
    return torch.as_tensor(value, dtype=torch.float32)


class NeuronModel(nn.Module):
    """Base class of every neuron. Subclasses set ``defaults`` (and ``state_vars`` if more than ``v``)
    and override ``charge``; optionally ``threshold_of`` and ``after_fire``.

    Args:
        shape: per-neuron feature shape (e.g. ``128`` or ``(16, 8, 8)``); parameters are expanded to it.
            ``None`` keeps scalar (shared) parameters.
        reset: ``"subtract"``, ``"zero"`` or ``"none"`` (see :data:`RESETS`).
        surrogate: a name, dict or :class:`~neurosynth.surrogate.Surrogate`.
        learn: names of parameters to train; ``learn_<name>=True`` is the same.
        detach_reset: stop gradients through the reset (default, as snnTorch).
        backend: ``"auto"`` (fused where the neuron supports it), ``"fused"`` or ``"python"``.
        **params: values for the entries of ``defaults`` (scalars, lists or tensors).
    """

    defaults: ClassVar[dict[str, float]] = {"beta": 0.9, "threshold": 1.0}
    state_vars: ClassVar[tuple[str, ...]] = ("v",)
    default_reset: ClassVar[str] = "subtract"
    spiking: ClassVar[bool] = True
    neuron_name: ClassVar[str] = "custom"
    #: the parameter that is the membrane decay per step (what ``--beta`` of ``neurosynth train`` sets): ``beta`` for
    #: LIF-like neurons, ``alpha`` for the adaptive LIF family, whose ``beta`` is the adaptation decay (the paper's)
    membrane_decay: ClassVar[str] = "beta"
    Params: ClassVar[type]
    State: ClassVar[type]

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if "Params" not in cls.__dict__:
            cls.Params = dataclasses.make_dataclass(
                f"{cls.__name__}Params", [(k, Any) for k in cls.defaults], frozen=True
            )
        if "State" not in cls.__dict__:
            cls.State = NamedTuple(f"{cls.__name__}State", [(k, torch.Tensor) for k in cls.state_vars])

    def __init__(
        self,
        *,
        shape: int | tuple[int, ...] | None = None,
        reset: str | None = None,
        surrogate: str | dict | Surrogate | None = "atan",
        learn: tuple[str, ...] | list[str] = (),
        detach_reset: bool = True,
        backend: str = "auto",
        **params: Any,
    ):
        super().__init__()
        learn = _learn_names(learn)
        for key in list(params):
            if key.startswith("learn_"):
                if params.pop(key):
                    learn.add(key[len("learn_"):])
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no parameter(s) {sorted(unknown)}; its parameters are "
                f"{sorted(self.defaults)} (plus shape, reset, surrogate, learn, detach_reset, backend)"
            )
        bad_learn = learn - set(self.defaults)
        if bad_learn:
            raise ValueError(f"cannot learn {sorted(bad_learn)}: {type(self).__name__} parameters are {sorted(self.defaults)}")
        if isinstance(shape, int):
            shape = (shape,)
        self.shape = tuple(shape) if shape is not None else None
        self.reset = (reset or self.default_reset).lower()
        self._reset_fn = RESETS.get(self.reset)
        self.surrogate = get_surrogate(surrogate)
        self.detach_reset = bool(detach_reset)
        if backend not in ("auto", "fused", "python"):
            raise ValueError(f"backend must be 'auto', 'fused' or 'python'; got {backend!r}")
        self.backend = backend
        self.learn = tuple(sorted(learn))
        for name, default in self.defaults.items():
            value = _as_tensor(params.get(name, default))
            if self.shape is not None and value.dim() == 0:
                value = value.expand(self.shape).clone()
            if name in learn:
                setattr(self, name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)
        self._validate()

    # ----------------------------------------------------------------- parameters
    #: valid ranges ``name: (low, high, low_open)`` of the parameters a neuron has (checked by ``_validate``, kept
    #: during training by ``clamp_params_``). Decays are in [0, 1]; thresholds positive and finite. A subclass
    #: extends it: ``param_ranges = {**NeuronModel.param_ranges, "a": (0.0, 1.0, False)}``.
    param_ranges: ClassVar[dict[str, tuple[float, float, bool]]] = {
        "beta": (0.0, 1.0, False), "alpha": (0.0, 1.0, False), "adapt_decay": (0.0, 1.0, False),
        "threshold": (0.0, math.inf, True), "adapt_scale": (0.0, math.inf, False),
    }

    def _validate(self) -> None:
        """Check every parameter is finite and inside ``param_ranges`` (raise ValueError naming it).
        Subclasses add checks by overriding this and calling ``super()._validate()``."""
        for name in self.defaults:
            t = getattr(self, name).detach()
            if not t.is_floating_point():
                continue
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"{type(self).__name__}: {name} must be finite; got {_describe(t)}")
            rng = self.param_ranges.get(name)
            if rng is None:
                continue
            lo, hi, lo_open = rng
            bad = (t <= lo) if lo_open else (t < lo)
            bad = bad | (t > hi)
            if bool(bad.any()):
                interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if math.isinf(hi) else ']'}"
                hint = " (a decay per step, exp(-dt/tau))" if hi == 1.0 else ""
                raise ValueError(f"{type(self).__name__}: {name} must lie in {interval}{hint}; got {_describe(t)}")

    @torch.no_grad()
    def clamp_params_(self) -> NeuronModel:
        """Project the learnable parameters back into ``param_ranges`` (in place). Training loops call this after
        every optimiser step (``neurosynth.training.clamp_params_(model)``), so a trained model stays loadable."""
        for name in self.learn:
            rng = self.param_ranges.get(name)
            if rng is None:
                continue
            lo, hi, lo_open = rng
            t = getattr(self, name)
            low = lo + _OPEN_EPS if lo_open else lo
            t.nan_to_num_(nan=low).clamp_(low, hi if math.isfinite(hi) else None)
        return self

    def params(self) -> Any:
        """The parameters as a frozen dataclass of tensors (what the pure step function takes)."""
        return self.Params(**{k: getattr(self, k) for k in self.defaults})

    @classmethod
    def from_tau(cls, tau: float, dt: float = 1.0, **kw) -> NeuronModel:
        """Build from a membrane time constant: ``beta = exp(-dt / tau)`` (same units for ``tau`` and ``dt``)."""
        if tau <= 0 or dt <= 0:
            raise ValueError(f"tau and dt must be positive; got tau={tau}, dt={dt}")
        return cls(beta=math.exp(-dt / tau), **kw)

    # ----------------------------------------------------------------- dynamics (pure)
    def charge(self, x: torch.Tensor, state, p):
        """Integrate input ``x`` into the state; return the state with ``v`` = pre-spike membrane ``h``."""
        raise NotImplementedError(f"{type(self).__name__} must implement charge(x, state, p)")

    def threshold_of(self, state, p) -> torch.Tensor:
        return p.threshold

    def after_fire(self, s: torch.Tensor, state, p):
        return state

    @classmethod
    def uses_generic_dynamics(cls) -> bool:
        """True when this class steps through the generic composition of :meth:`NeuronModel.dynamics` (charge ->
        fire -> reset -> after_fire): no ``dynamics`` of its own, or a built-in's ``dynamics`` that hands a subclass
        with other hooks to it. What a kernel generated from the hooks (:func:`neurosynth.functional.custom`) runs."""
        if cls.dynamics is NeuronModel.dynamics:
            return True
        if cls.dynamics is LIF.dynamics:
            return cls.charge is not LIF.charge
        if cls.dynamics is CubaLIF.dynamics:
            return cls.charge is not CubaLIF.charge
        if cls.dynamics is ALIF.dynamics:
            return (cls.charge is not ALIF.charge or cls.threshold_of is not ALIF.threshold_of
                    or cls.after_fire is not ALIF.after_fire)
        return False

    def dynamics(self, x: torch.Tensor, state, p):
        """One time step: ``(out, new_state, h)``. Pure given ``p`` (no module state is touched); what the
        reference loop (:func:`neurosynth.timeloop.scan`) and the recurrent layer iterate."""
        state = self.charge(x, state, p)
        h = state.v
        if not self.spiking:
            return h, state, h
        thr = self.threshold_of(state, p)
        s = self.surrogate(h - thr)
        s_r = s.detach() if self.detach_reset else s
        v = self._reset_fn(h, s_r, thr)
        state = self.after_fire(s, state._replace(v=v), p)
        return s, state, h

    def initial_state(self, x0: torch.Tensor):
        """Zero state shaped like one time step of input ``x0 [B, ...]``."""
        return self.State(*(torch.zeros_like(x0) for _ in self.state_vars))

    def step(self, x: torch.Tensor, state=None):
        """One time step, snnTorch style: ``spk, state = neuron.step(x_t, state)`` (``state=None``: from rest).

        Returns the spikes (the membrane for non-spiking neurons) and the new state (a NamedTuple with the
        fields ``state_vars``). Differentiable; equal to :meth:`run` over the same steps."""
        if state is None:
            state = self.initial_state(x)
        out, state, _ = self.dynamics(x, state, self.params())
        return out, state

    # ----------------------------------------------------------------- execution
    def _use_fused(self, state) -> bool:
        return False

    def run(self, x: torch.Tensor, state=None):
        """Run over a sequence. Returns ``(out [T, B, ...], final_state, trace [T, B, ...])`` where ``out`` is the
        spike train (membrane for non-spiking neurons) and ``trace`` the pre-reset membrane."""
        check_time_first(x, f"{type(self).__name__} input")
        if self.shape is not None and tuple(x.shape[2:]) != self.shape:
            raise ValueError(
                f"{type(self).__name__} was built for feature shape {self.shape} (layout [T, B, "
                f"{', '.join(map(str, self.shape))}]) but got input of shape {tuple(x.shape)}"
            )
        if state is None:
            state = self.initial_state(x[0])
        p = self.params()
        if self._use_fused(state):
            return self._run_fused(x, state, p)
        if self.backend != "python":  # a custom neuron: a kernel generated from its hooks, when one can be
            out = F.custom(self, x, state, p)
            if out is not None:
                return out
        return timeloop.scan(self, x, state, p)

    def forward(self, x: torch.Tensor, state=None) -> torch.Tensor:
        return self.run(x, state)[0]

    # ----------------------------------------------------------------- serialisation
    def config(self) -> dict:
        """JSON-serialisable constructor arguments (the ArchSpec ``neuron`` entry)."""
        def val(t: torch.Tensor):
            t = t.detach().cpu()
            if t.dim() == 0:
                return float(t)
            flat = t.flatten()
            if bool((flat == flat[0]).all()):
                return float(flat[0])
            return t.tolist()

        cfg = {
            "neuron": self.neuron_name,
            "params": {k: val(getattr(self, k)) for k in self.defaults},
            "reset": self.reset,
            "surrogate": self.surrogate.to_dict(),
            "learn": list(self.learn),
            "detach_reset": self.detach_reset,
        }
        if self.shape is not None:
            cfg["shape"] = list(self.shape)
        return cfg

    def extra_repr(self) -> str:
        ps = ", ".join(f"{k}={self.config()['params'][k]}" for k in self.defaults)
        return f"{ps}, reset={self.reset!r}, surrogate={self.surrogate.name}, shape={self.shape}"


def build_neuron(name: str, **config: Any) -> NeuronModel:
    """Build a registered neuron by name, from a :meth:`NeuronModel.config` dict or keyword arguments."""
    cls = NEURONS.get(name)
    config = dict(config)
    params = config.pop("params", {}) or {}
    config.pop("neuron", None)
    if isinstance(config.get("shape"), (list, tuple)):
        config["shape"] = tuple(config["shape"])
    return cls(**config, **params)


# ===================================================================== built-in neurons


@register_neuron("lif")
class LIF(NeuronModel):
    r"""Leaky integrate-and-fire: :math:`h_t = \beta v_{t-1} + x_t`, spike if :math:`h_t > \vartheta`, then reset.

    ``reset_delay=True`` reproduces snnTorch ``Leaky``'s convention for ``reset='subtract'``: the threshold is
    subtracted on the step after the spike and is not decayed
    (:math:`h_t = \beta h_{t-1} + x_t - \vartheta s_{t-1}`). For ``reset='zero'`` both conventions coincide.
    SpikingJelly ``LIFNode(tau, decay_input, v_threshold, v_reset)`` maps to ``beta = 1 - 1/tau`` with the
    input scaled by ``1/tau`` when ``decay_input=True`` (see :func:`from_spikingjelly`).
    """

    defaults = {"beta": 0.9, "threshold": 1.0}

    def __init__(self, beta=0.9, threshold=1.0, *, reset_delay: bool = False, **kw):
        self.reset_delay = bool(reset_delay)
        super().__init__(beta=beta, threshold=threshold, **kw)
        if self.reset_delay and self.reset == "subtract" and not self.detach_reset:
            raise ValueError("reset_delay=True (snnTorch convention) requires detach_reset=True")

    def _validate(self):
        super()._validate()  # beta in [0, 1], threshold > 0, all finite (param_ranges)

    def charge(self, x, state, p):
        return state._replace(v=p.beta * state.v + x)

    def dynamics(self, x, state, p):
        if type(self).charge is not LIF.charge:  # a subclass with its own charge: the generic composition
            return super().dynamics(x, state, p)
        s, v, h = F.lif_step(x, state.v, p.beta, p.threshold, reset_mode=self.reset, detach_reset=self.detach_reset,
                             surrogate=self.surrogate, reset_delay=self.reset_delay)
        return s, state._replace(v=v), h

    def _use_fused(self, state) -> bool:
        # the fused kernel implements exactly LIF.charge/dynamics; subclasses that change them run the reference loop
        if (self.backend == "python" or type(self).charge is not LIF.charge or type(self).dynamics is not LIF.dynamics
                or type(self).threshold_of is not NeuronModel.threshold_of
                or type(self).after_fire is not NeuronModel.after_fire):
            return False
        # the delayed (snnTorch) reset carries a pending subtraction in a supra-threshold initial state, which the
        # kernel's first step does not model: such a continuation runs the reference loop
        return not (self._fused_mode() == "subtract_delayed" and bool((state.v > self.threshold.detach()).any()))

    def _fused_mode(self) -> str:
        if self.reset_delay and self.reset == "subtract":
            return "subtract_delayed"
        return self.reset

    def _run_fused(self, x, state, p):
        s, h, v = F.lif(x, state.v, p.beta, p.threshold, reset_mode=self.reset, detach_reset=self.detach_reset,
                        surrogate=self.surrogate, reset_delay=self.reset_delay)
        return s, state._replace(v=v), h

    def config(self):
        cfg = super().config()
        if self.reset_delay:
            cfg["reset_delay"] = True
        return cfg


def from_spikingjelly(tau: float = 2.0, v_threshold: float = 1.0, v_reset: float | None = 0.0,
                      decay_input: bool = True, **kw) -> tuple[LIF, float]:
    """Map SpikingJelly ``LIFNode(tau, decay_input, v_threshold, v_reset)`` (``v_reset=None``: soft reset) onto
    :class:`LIF`. Returns ``(neuron, input_scale)``: feed ``input_scale * x`` to reproduce SpikingJelly exactly
    (``input_scale = 1/tau`` when ``decay_input`` else 1). Only ``v_reset`` in ``{None, 0}`` maps exactly.

    Spike trains are identical except when a membrane lands exactly on the threshold: SpikingJelly fires on
    ``h >= threshold``, NeuroSynth (like snnTorch and Lava) on ``h > threshold``."""
    if v_reset not in (None, 0, 0.0):
        raise ValueError("only v_reset=None (subtract) or v_reset=0 (zero) map onto LIF")
    neuron = LIF(beta=1 - 1 / tau, threshold=v_threshold, reset="subtract" if v_reset is None else "zero", **kw)
    return neuron, (1 / tau if decay_input else 1.0)


@register_neuron("if")
class IF(LIF):
    r"""Integrate-and-fire (no leak, :math:`\beta = 1`); reset by subtraction by default (ANN→SNN conversion)."""

    defaults = {"beta": 1.0, "threshold": 1.0}

    def __init__(self, threshold=1.0, **kw):
        kw.setdefault("beta", 1.0)
        super().__init__(threshold=threshold, **kw)


@register_neuron("cubalif")
class CubaLIF(NeuronModel):
    r"""Current-based LIF (Loihi's neuron): :math:`i_t = \alpha i_{t-1} + x_t`, :math:`h_t = \beta v_{t-1} + i_t`,
    spike if :math:`h_t > \vartheta`, reset ``v`` to zero (``i`` is not reset).

    Lava's ``LIF`` process with ``du = 1 - alpha`` and ``dv = 1 - beta`` computes exactly this (floating point).
    """

    defaults = {"alpha": 0.8, "beta": 0.9, "threshold": 1.0}
    state_vars = ("i", "v")
    default_reset = "zero"

    def __init__(self, alpha=0.8, beta=0.9, threshold=1.0, **kw):
        super().__init__(alpha=alpha, beta=beta, threshold=threshold, **kw)

    def charge(self, x, state, p):
        i = p.alpha * state.i + x
        return state._replace(i=i, v=p.beta * state.v + i)

    def dynamics(self, x, state, p):
        if type(self).charge is not CubaLIF.charge:
            return super().dynamics(x, state, p)
        s, i, v, h = F.cubalif_step(x, state.i, state.v, p.alpha, p.beta, p.threshold, reset_mode=self.reset,
                                    detach_reset=self.detach_reset, surrogate=self.surrogate)
        return s, state._replace(i=i, v=v), h

    def _use_fused(self, state) -> bool:
        return (self.backend != "python" and type(self).charge is CubaLIF.charge
                and type(self).dynamics is CubaLIF.dynamics and type(self).threshold_of is NeuronModel.threshold_of
                and type(self).after_fire is NeuronModel.after_fire)

    def _run_fused(self, x, state, p):
        s, h, i, v = F.cubalif(x, state.i, state.v, p.alpha, p.beta, p.threshold, reset_mode=self.reset,
                               detach_reset=self.detach_reset, surrogate=self.surrogate)
        return s, state._replace(i=i, v=v), h


@register_neuron("alif")
class ALIF(NeuronModel):
    r"""Adaptive-threshold LIF (Bellec et al. 2018): :math:`h_t = \beta v_{t-1} + x_t`, threshold
    :math:`\vartheta + b\,a_{t-1}`, adaptation :math:`a_t = \rho\,a_{t-1} + s_t` (``adapt_decay`` = ρ,
    ``adapt_scale`` = b)."""

    defaults = {"beta": 0.9, "threshold": 1.0, "adapt_decay": 0.95, "adapt_scale": 0.2}
    state_vars = ("v", "a")

    def __init__(self, beta=0.9, threshold=1.0, adapt_decay=0.95, adapt_scale=0.2, **kw):
        super().__init__(beta=beta, threshold=threshold, adapt_decay=adapt_decay, adapt_scale=adapt_scale, **kw)

    def charge(self, x, state, p):
        return state._replace(v=p.beta * state.v + x)

    def threshold_of(self, state, p):
        return p.threshold + p.adapt_scale * state.a

    def after_fire(self, s, state, p):
        return state._replace(a=p.adapt_decay * state.a + s)

    def dynamics(self, x, state, p):
        if (type(self).charge is not ALIF.charge or type(self).threshold_of is not ALIF.threshold_of
                or type(self).after_fire is not ALIF.after_fire):
            return super().dynamics(x, state, p)
        s, v, a, h = F.alif_step(x, state.v, state.a, p.beta, p.threshold, p.adapt_decay, p.adapt_scale,
                                 reset_mode=self.reset, detach_reset=self.detach_reset, surrogate=self.surrogate)
        return s, state._replace(v=v, a=a), h

    def _use_fused(self, state) -> bool:
        return (self.backend != "python" and type(self).charge is ALIF.charge and type(self).dynamics is ALIF.dynamics
                and type(self).threshold_of is ALIF.threshold_of and type(self).after_fire is ALIF.after_fire)

    def _run_fused(self, x, state, p):
        s, h, v, a = F.alif(x, state.v, state.a, p.beta, p.threshold, p.adapt_decay, p.adapt_scale,
                            reset_mode=self.reset, detach_reset=self.detach_reset, surrogate=self.surrogate)
        return s, state._replace(v=v, a=a), h


@register_neuron("li")
class LI(NeuronModel):
    r"""Leaky integrator (non-spiking readout): :math:`v_t = \beta v_{t-1} + x_t`; outputs the membrane."""

    defaults = {"beta": 0.9}
    spiking = False
    default_reset = "none"

    def __init__(self, beta=0.9, **kw):
        kw.setdefault("surrogate", None)
        super().__init__(beta=beta, **kw)

    def charge(self, x, state, p):
        return state._replace(v=p.beta * state.v + x)


# ----------------------------------------------------------------------------- adaptive LIF (adLIF, SE-adLIF)
def _f32(value: float) -> float:
    """``value`` rounded to float32 (the parameters' dtype), so a range bound built from a time constant admits
    the parameter built from the same time constant."""
    return float(torch.tensor(value, dtype=torch.float32))


def _decay_range(tau_range: Any, what: str) -> tuple[float, float]:
    """``(exp(-1/tau_lo), exp(-1/tau_hi))`` for a time-constant range in steps, checked."""
    try:
        lo, hi = (float(t) for t in tau_range)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be two time constants in steps (low, high); got {tau_range!r}") from None
    if not (0 < lo <= hi < math.inf):
        raise ValueError(f"{what} must satisfy 0 < low <= high < inf (time constants in steps); got {tau_range!r}")
    return _f32(math.exp(-1.0 / lo)), _f32(math.exp(-1.0 / hi))


class _AdaptiveLIF(NeuronModel):
    """The shared part of :class:`AdLIF` and :class:`SEAdLIF`: time-constant parametrisation, the published
    ranges (instance ``param_ranges``, applied by a clamp on every forward in :meth:`params` and by
    ``clamp_params_`` after each optimiser step) and the default learnable set ``alpha, beta, a, b``."""

    default_tau_u: ClassVar[float] = 10.0
    default_tau_w: ClassVar[float] = 60.0
    default_tau_u_range: ClassVar[tuple[float, float]] = (5.0, 25.0)
    default_tau_w_range: ClassVar[tuple[float, float]] = (30.0, 120.0)
    a_range: ClassVar[tuple[float, float]] = (-1.0, 1.0)
    b_range: ClassVar[tuple[float, float]] = (0.0, 2.0)
    default_learn: ClassVar[tuple[str, ...]] = ("alpha", "beta", "a", "b")
    membrane_decay: ClassVar[str] = "alpha"
    clamped: ClassVar[tuple[str, ...]] = ("alpha", "beta", "a", "b")

    def __init__(self, *, alpha=None, beta=None, tau_u=None, tau_w=None, dt: float = 1.0,
                 tau_u_range=None, tau_w_range=None, learn=None, **kw):
        self.tau_u_range = tuple(float(t) for t in (tau_u_range or self.default_tau_u_range))
        self.tau_w_range = tuple(float(t) for t in (tau_w_range or self.default_tau_w_range))
        a_lo, a_hi = _decay_range(self.tau_u_range, "tau_u_range")
        b_lo, b_hi = _decay_range(self.tau_w_range, "tau_w_range")
        self.param_ranges = {**NeuronModel.param_ranges, "alpha": (a_lo, a_hi, False), "beta": (b_lo, b_hi, False),
                             "a": (*self.a_range, False), "b": (*self.b_range, False), "q": (0.0, math.inf, False)}
        if dt <= 0 or not math.isfinite(dt):
            raise ValueError(f"dt must be positive and finite; got {dt}")
        kw["alpha"] = self._decay("alpha", alpha, "tau_u", tau_u, self.default_tau_u, dt)
        kw["beta"] = self._decay("beta", beta, "tau_w", tau_w, self.default_tau_w, dt)
        has_flags = any(k.startswith("learn_") for k in kw)
        if learn is None:
            learn = () if has_flags else self.default_learn
        super().__init__(learn=learn, **kw)

    @staticmethod
    def _decay(name: str, value, tau_name: str, tau, default_tau: float, dt: float):
        if value is not None and tau is not None:
            raise ValueError(f"give {name} (a decay per step) or {tau_name} (a time constant), not both")
        if value is not None:
            return value
        tau = default_tau if tau is None else tau
        t = _as_tensor(tau).double()
        if not bool(torch.isfinite(t).all()) or bool((t <= 0).any()):
            raise ValueError(f"{tau_name} must be positive and finite; got {_describe(t)}")
        return torch.exp(-dt / t).float()

    def _validate(self) -> None:
        for name, tau_name, rng in (("alpha", "tau_u", self.tau_u_range), ("beta", "tau_w", self.tau_w_range)):
            t = getattr(self, name).detach()
            lo, hi, _ = self.param_ranges[name]
            if bool(torch.isfinite(t).all()) and bool(((t < lo) | (t > hi)).any()):
                raise ValueError(
                    f"{type(self).__name__}: {name} must lie in [{lo:.6g}, {hi:.6g}] ({tau_name} from {rng[0]:g} to "
                    f"{rng[1]:g} steps, {name} = exp(-dt/{tau_name})); got {_describe(t)}. Widen the range with "
                    f"{tau_name}_range=(low, high)")
        super()._validate()

    @classmethod
    def from_tau(cls, tau_u: float, tau_w: float | None = None, dt: float = 1.0, **kw) -> NeuronModel:
        """Build from the membrane and adaptation time constants (same units as ``dt``):
        ``alpha = exp(-dt/tau_u)``, ``beta = exp(-dt/tau_w)``."""
        return cls(tau_u=tau_u, tau_w=tau_w, dt=dt, **kw)

    def params(self) -> Any:
        """The parameters, ``alpha``, ``beta``, ``a``, ``b`` clamped into their ranges (sparch clamps on every
        forward; the gradient is zero for a parameter pushed beyond its bound)."""
        vals = {k: getattr(self, k) for k in self.defaults}
        for name in self.clamped:
            lo, hi, _ = self.param_ranges[name]
            vals[name] = vals[name].clamp(lo, hi)
        return self.Params(**vals)

    @torch.no_grad()
    def init_uniform_(self, generator: torch.Generator) -> _AdaptiveLIF:
        """sparch's initialisation: ``alpha``, ``beta``, ``a``, ``b`` drawn uniformly in their ranges, one value per
        neuron (needs ``shape``), from ``generator``."""
        if self.shape is None:
            raise ValueError(f"{type(self).__name__}.init_uniform_ draws one value per neuron: build it with shape=N")
        for name in self.clamped:
            lo, hi, _ = self.param_ranges[name]
            t = getattr(self, name)
            u = torch.rand(t.shape, generator=generator, dtype=torch.float64, device="cpu")
            t.copy_((lo + (hi - lo) * u).to(t.dtype))
        return self

    @classmethod
    def uses_generic_dynamics(cls) -> bool:
        # the hooks compose to exactly this class's dynamics (tests/core/test_adlif.py checks it)
        return cls.dynamics is cls._own_dynamics() or cls.dynamics is NeuronModel.dynamics

    @classmethod
    def _own_dynamics(cls):
        raise NotImplementedError

    def _hooks_are_own(self) -> bool:
        base = type(self)._hook_owner()
        t = type(self)
        return t.charge is base.charge and t.threshold_of is base.threshold_of and t.after_fire is base.after_fire

    def config(self) -> dict:
        cfg = super().config()
        if self.tau_u_range != tuple(self.default_tau_u_range):
            cfg["tau_u_range"] = list(self.tau_u_range)
        if self.tau_w_range != tuple(self.default_tau_w_range):
            cfg["tau_w_range"] = list(self.tau_w_range)
        return cfg


@register_neuron("adlif")
class AdLIF(_AdaptiveLIF):
    r"""Adaptive LIF (adLIF, Bittar & Garner 2022; the equations of sparch's ``adLIFLayer``), from a zero state:

    .. math::
        w_t &= \beta w_{t-1} + a u_{t-1} + b s_{t-1} \\
        u_t &= \alpha (u_{t-1} - \vartheta s_{t-1}) + (1 - \alpha)(x_t - w_t) \\
        s_t &= 1[u_t > \vartheta]

    (``reset="subtract"``, sparch's; ``"zero"`` uses :math:`\alpha u_{t-1}(1 - s_{t-1})`). Per-neuron learnable
    (by default) ``alpha = exp(-dt/tau_u)``, ``beta = exp(-dt/tau_w)``, ``a``, ``b``, clamped on every forward to
    ``tau_u`` in [5, 25] steps, ``tau_w`` in [30, 120] steps (``tau_u_range`` / ``tau_w_range`` change them),
    ``a`` in [-1, 1], ``b`` in [0, 2]. Build with ``AdLIF(tau_u=10, tau_w=60, shape=N)`` or ``alpha=, beta=``.

    The state is ``(v, w, s)``: ``v`` is the paper's membrane ``u`` *before* the reset (the reset is applied at
    the start of the next step, which needs the last spike ``s``), so the trace equals ``v``. Runs through a kernel
    generated from the hooks (:func:`neurosynth.functional.custom`); the step is
    :func:`neurosynth.functional.adlif_step`. Not deployable to Loihi 2 (no open Lava/netx model) nor NIR (no
    adaptive primitive)."""

    defaults = {"alpha": 0.9, "beta": 0.98, "a": 0.5, "b": 1.0, "threshold": 1.0}
    state_vars = ("v", "w", "s")
    default_reset = "subtract"

    def __init__(self, alpha=None, beta=None, a=0.5, b=1.0, threshold=1.0, **kw):
        super().__init__(alpha=alpha, beta=beta, a=a, b=b, threshold=threshold, **kw)
        # the reset acts inside charge() (on the previous step's spike); the generic composition must not reset again
        self._reset_fn = reset_none

    @classmethod
    def _own_dynamics(cls):
        return AdLIF.dynamics

    @classmethod
    def _hook_owner(cls):
        return AdLIF

    def charge(self, x, state, p):
        v, w = F.adlif_charge(x, state.v, state.w, state.s, p.alpha, p.beta, p.a, p.b, p.threshold,
                              reset_mode=self.reset, detach_reset=self.detach_reset)
        return state._replace(v=v, w=w)

    def after_fire(self, s, state, p):
        return state._replace(s=s)

    def dynamics(self, x, state, p):
        if not self._hooks_are_own():
            return super().dynamics(x, state, p)
        s, v, w = F.adlif_step(x, state.v, state.w, state.s, p.alpha, p.beta, p.a, p.b, p.threshold,
                               reset_mode=self.reset, detach_reset=self.detach_reset, surrogate=self.surrogate)
        return s, state._replace(v=v, w=w, s=s), v


@register_neuron("se_adlif")
class SEAdLIF(_AdaptiveLIF):
    r"""SE-adLIF (Baronig et al. 2025): adLIF discretised with symplectic Euler, zero reset by default:

    .. math::
        h_t &= \alpha u_{t-1} + (1 - \alpha)(x_t - w_{t-1}),\quad s_t = 1[h_t > \vartheta],\quad
        u_t = h_t (1 - s_t) \\
        w_t &= \beta w_{t-1} + (1 - \beta)\, q\, (a u_t + b s_t)

    Ranges (their SHD configuration): ``tau_u`` in [5, 25], ``tau_w`` in [60, 300] steps, ``a`` in [0, 1], ``b`` in
    [0, 2]; ``q = 120`` (fixed unless learnt). State ``(v, w)``: ``v`` is ``u`` after the reset, the trace is ``h``."""

    defaults = {"alpha": 0.9, "beta": 0.99, "a": 0.5, "b": 1.0, "q": 120.0, "threshold": 1.0}
    state_vars = ("v", "w")
    default_reset = "zero"
    default_tau_w: ClassVar[float] = 150.0
    default_tau_w_range: ClassVar[tuple[float, float]] = (60.0, 300.0)
    a_range: ClassVar[tuple[float, float]] = (0.0, 1.0)

    def __init__(self, alpha=None, beta=None, a=0.5, b=1.0, q=120.0, threshold=1.0, **kw):
        super().__init__(alpha=alpha, beta=beta, a=a, b=b, q=q, threshold=threshold, **kw)

    @classmethod
    def _own_dynamics(cls):
        return SEAdLIF.dynamics

    @classmethod
    def _hook_owner(cls):
        return SEAdLIF

    def charge(self, x, state, p):
        return state._replace(v=p.alpha * state.v + (1 - p.alpha) * (x - state.w))

    def after_fire(self, s, state, p):
        return state._replace(w=p.beta * state.w + (1 - p.beta) * p.q * (p.a * state.v + p.b * s))

    def dynamics(self, x, state, p):
        if not self._hooks_are_own():
            return super().dynamics(x, state, p)
        s, v, w, h = F.se_adlif_step(x, state.v, state.w, p.alpha, p.beta, p.a, p.b, p.q, p.threshold,
                                     reset_mode=self.reset, detach_reset=self.detach_reset, surrogate=self.surrogate)
        return s, state._replace(v=v, w=w), h
