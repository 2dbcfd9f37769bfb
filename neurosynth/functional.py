r"""The functional core: every built-in neuron's dynamics as pure functions of ``(x, state, params)``.

Two levels, both pure (no module state is read or written):

- **one step** (``*_step``): autograd-differentiable torch expressions, used by the python reference loop
  (:func:`neurosynth.timeloop.scan`), the modules' ``step`` API, the recurrent layer's reference path, plasticity
  and the Loihi reference; their arithmetic (order of every product and sum) is the contract the fused kernels
  reproduce bit for bit in float32;
- **a whole sequence** (:func:`lif`, :func:`cubalif`, :func:`alif`, and :func:`recurrent` for a recurrently
  connected layer): the fused operators of :mod:`neurosynth._ops` (C++ on CPU, Triton on CUDA, pure torch
  elsewhere, chosen by its one dispatcher) with hand-written backward. These are the one route into the kernels:
  the neuron modules (``_run_fused``) and :class:`neurosynth.layers.Recurrent` call them, no other module of
  the library imports ``neurosynth._ops`` (except :mod:`neurosynth._cext`, the operators' C++ half).

Conventions: time-first ``x [T, B, ...]`` for sequences, ``x [B, ...]`` for one step; spikes are
:math:`\mathbb{1}[h > \vartheta]` with the surrogate gradient of ``surrogate`` (an object from
:mod:`neurosynth.surrogate`); ``reset`` is ``"subtract"``, ``"zero"`` or ``"none"``; ``detach_reset`` stops the
gradient through the spike inside the reset.
"""

from __future__ import annotations

from torch import Tensor

from .surrogate import ATan, Surrogate

_ATAN = ATan()


def fire(h: Tensor, threshold: Tensor, surrogate: Surrogate = _ATAN) -> Tensor:
    """``s = 1[h > threshold]`` with the surrogate gradient (computed as ``surrogate(h - threshold)``)."""
    return surrogate(h - threshold)


def reset(h: Tensor, s: Tensor, threshold: Tensor, mode: str = "subtract") -> Tensor:
    """Membrane after the spike: ``h - threshold*s`` | ``h*(1 - s)`` | ``h`` for ``subtract`` | ``zero`` | ``none``."""
    if mode == "subtract":
        return h - threshold * s
    if mode == "zero":
        return h * (1 - s)
    if mode == "none":
        return h
    raise ValueError(f"reset must be 'subtract', 'zero' or 'none'; got {mode!r}")


def lif_step(x: Tensor, v: Tensor, beta: Tensor, threshold: Tensor, *, reset_mode: str = "subtract",
             detach_reset: bool = True, surrogate: Surrogate = _ATAN, reset_delay: bool = False):
    r"""One LIF step: ``(s, v_next, h)`` with :math:`h = \beta v + x`.

    ``reset_delay=True`` with ``reset_mode="subtract"`` is snnTorch's convention: ``v`` holds the un-reset
    membrane and the threshold is subtracted one step later, :math:`h = \beta v + x - \vartheta 1[v > \vartheta]`,
    and ``v_next = h``."""
    if reset_delay and reset_mode == "subtract":
        h = beta * v + x - threshold * (v > threshold).to(x.dtype)
        return fire(h, threshold, surrogate), h, h
    h = beta * v + x
    s = fire(h, threshold, surrogate)
    return s, reset(h, s.detach() if detach_reset else s, threshold, reset_mode), h


def cubalif_step(x: Tensor, i: Tensor, v: Tensor, alpha: Tensor, beta: Tensor, threshold: Tensor, *,
                 reset_mode: str = "zero", detach_reset: bool = True, surrogate: Surrogate = _ATAN):
    r"""One CubaLIF step: ``(s, i_next, v_next, h)`` with :math:`i' = \alpha i + x`, :math:`h = \beta v + i'`."""
    i = alpha * i + x
    h = beta * v + i
    s = fire(h, threshold, surrogate)
    return s, i, reset(h, s.detach() if detach_reset else s, threshold, reset_mode), h


def alif_step(x: Tensor, v: Tensor, a: Tensor, beta: Tensor, threshold: Tensor, adapt_decay: Tensor,
              adapt_scale: Tensor, *, reset_mode: str = "subtract", detach_reset: bool = True,
              surrogate: Surrogate = _ATAN):
    r"""One ALIF step: ``(s, v_next, a_next, h)``: :math:`h = \beta v + x`, threshold
    :math:`\vartheta + b a`, :math:`a' = \rho a + s` (the spike keeps its surrogate gradient in ``a``)."""
    h = beta * v + x
    thr = threshold + adapt_scale * a
    s = fire(h, thr, surrogate)
    v = reset(h, s.detach() if detach_reset else s, thr, reset_mode)
    return s, v, adapt_decay * a + s, h


def adlif_charge(x: Tensor, u: Tensor, w: Tensor, s: Tensor, alpha: Tensor, beta: Tensor, a: Tensor, b: Tensor,
                 threshold: Tensor, *, reset_mode: str = "subtract", detach_reset: bool = True):
    r"""The sub-threshold part of one adLIF step (Bittar & Garner 2022, sparch's ``adLIFLayer``): ``(u_t, w_t)``
    from the previous step's pre-reset membrane ``u``, adaptation ``w`` and spike ``s``:

    .. math:: w_t = \beta w_{t-1} + a u_{t-1} + b s_{t-1},\qquad
              u_t = \alpha\,\mathrm{reset}(u_{t-1}, s_{t-1}) + (1-\alpha)(x_t - w_t)

    where ``reset`` is :math:`u - \vartheta s` (``subtract``, sparch), :math:`u(1-s)` (``zero``) or :math:`u`
    (``none``); ``detach_reset`` stops the gradient through ``s`` inside the reset only (not in ``b s``)."""
    w = beta * w + a * u + b * s
    u = alpha * reset(u, s.detach() if detach_reset else s, threshold, reset_mode) + (1 - alpha) * (x - w)
    return u, w


def adlif_step(x: Tensor, u: Tensor, w: Tensor, s: Tensor, alpha: Tensor, beta: Tensor, a: Tensor, b: Tensor,
               threshold: Tensor, *, reset_mode: str = "subtract", detach_reset: bool = True,
               surrogate: Surrogate = _ATAN):
    r"""One adLIF step: ``(s_t, u_t, w_t)`` with :func:`adlif_charge` and :math:`s_t = 1[u_t > \vartheta]`.

    The state is the pre-reset membrane ``u`` (also the trace ``h``), the adaptation ``w`` and the last spike ``s``:
    the reset is applied at the start of the next step, as in sparch (so ``u`` is also what the trace shows)."""
    u, w = adlif_charge(x, u, w, s, alpha, beta, a, b, threshold, reset_mode=reset_mode, detach_reset=detach_reset)
    return fire(u, threshold, surrogate), u, w


def se_adlif_step(x: Tensor, u: Tensor, w: Tensor, alpha: Tensor, beta: Tensor, a: Tensor, b: Tensor, q: Tensor,
                  threshold: Tensor, *, reset_mode: str = "zero", detach_reset: bool = True,
                  surrogate: Surrogate = _ATAN):
    r"""One SE-adLIF step (Baronig et al. 2025, symplectic Euler): ``(s_t, u_t, w_t, h_t)``:

    .. math:: h_t = \alpha u_{t-1} + (1-\alpha)(x_t - w_{t-1}),\quad s_t = 1[h_t > \vartheta],\quad
              u_t = \mathrm{reset}(h_t, s_t),\quad w_t = \beta w_{t-1} + (1-\beta)\,q\,(a u_t + b s_t)

    (the adaptation reads the post-reset membrane; ``u`` in the state is post-reset, ``h`` the pre-reset trace)."""
    h = alpha * u + (1 - alpha) * (x - w)
    s = fire(h, threshold, surrogate)
    u = reset(h, s.detach() if detach_reset else s, threshold, reset_mode)
    return s, u, beta * w + (1 - beta) * q * (a * u + b * s), h


def li_step(x: Tensor, v: Tensor, beta: Tensor) -> Tensor:
    """One leaky-integrator step (non-spiking readout): ``beta * v + x``."""
    return beta * v + x


# ------------------------------------------------------------------------------- whole sequences (fused ops)
def lif(x: Tensor, v0: Tensor, beta: Tensor, threshold: Tensor, *, reset_mode: str = "subtract",
        detach_reset: bool = True, surrogate: Surrogate = _ATAN, reset_delay: bool = False):
    """LIF over ``x [T, ...]`` (fused op): ``(spikes, h [T, ...], v_final)``; ``h`` and ``v`` accumulate in float32
    (float64 for float64 input). Equal to looping :func:`lif_step` (spikes bit-identical in float32)."""
    from ._ops.lif.autograd import lif as op

    mode = "subtract_delayed" if (reset_delay and reset_mode == "subtract") else reset_mode
    return op(x, v0, beta, threshold, mode, detach_reset, surrogate)


def cubalif(x: Tensor, i0: Tensor, v0: Tensor, alpha: Tensor, beta: Tensor, threshold: Tensor, *,
            reset_mode: str = "zero", detach_reset: bool = True, surrogate: Surrogate = _ATAN):
    """CubaLIF over ``x [T, ...]`` (fused op): ``(spikes, h, i_final, v_final)``."""
    from ._ops.cubalif.autograd import cubalif as op

    s, h, _, i, v = op(x, i0, v0, alpha, beta, threshold, reset_mode, detach_reset, surrogate)
    return s, h, i, v


def alif(x: Tensor, v0: Tensor, a0: Tensor, beta: Tensor, threshold: Tensor, adapt_decay: Tensor,
         adapt_scale: Tensor, *, reset_mode: str = "subtract", detach_reset: bool = True,
         surrogate: Surrogate = _ATAN):
    """ALIF over ``x [T, ...]`` (fused op): ``(spikes, h, v_final, a_final)``."""
    from ._ops.alif.autograd import alif as op

    s, h, _, v, a = op(x, v0, a0, beta, threshold, adapt_decay, adapt_scale, reset_mode, detach_reset, surrogate)
    return s, h, v, a


def recurrent(neuron: str, x: Tensor, weight: Tensor, bias: Tensor | None, s0: Tensor, states0, params, *,
              reset_mode: str, detach_reset: bool = True, surrogate: Surrogate = _ATAN):
    r"""A recurrently connected layer over ``x [T, B, N]`` (fused op): the neuron ``neuron`` (``"lif"``,
    ``"cubalif"`` or ``"alif"``) is driven by :math:`x_t + W s_{t-1} + b`. ``states0`` are the neuron's initial
    state variables and ``params`` its parameters, in the order of the step function (``lif``: ``[v]``,
    ``[beta, threshold]``; ``cubalif``: ``[i, v]``, ``[alpha, beta, threshold]``; ``alif``: ``[v, a]``,
    ``[beta, threshold, adapt_decay, adapt_scale]``). Returns ``(spikes, h, final_states)`` (a tuple in the order
    of ``states0``). Equal to looping the neuron's ``*_step`` on ``x[t] + rec(s[t-1])`` (spikes bit-identical in
    float32); the delayed (snnTorch) reset is not supported."""
    from ._ops.recurrent.autograd import recurrent as op

    out = op(neuron, x, weight, bias, s0, states0, params, reset_mode, detach_reset, surrogate)
    return out[0], out[1], tuple(out[3:])


def custom(neuron, x: Tensor, state, params):
    """A custom neuron (``NeuronModel`` subclass with its own ``charge`` / ``threshold_of`` / ``after_fire``) over
    ``x [T, B, ...]`` through a kernel generated from its hooks (:mod:`neurosynth._ops.custom`: C++ on the CPU,
    Triton on CUDA): ``(out, final_state, trace)`` like :func:`neurosynth.timeloop.scan`, or ``None`` when the
    reference loop must run (a hook that cannot be captured: one warning says why)."""
    from ._ops.custom import run

    return run(neuron, x, state, params)


def kernel_record() -> dict:
    """Which kernel implementation ran in this process, for run manifests: ``{"fused": {op@device: impl},
    "custom": {neuron class: path}}`` (the first-use check of the fused ops, the generated custom kernels)."""
    from ._ops import custom, selfcheck

    return {"fused": selfcheck.paths(), "custom": custom.paths()}


__all__ = ["fire", "reset", "lif_step", "cubalif_step", "alif_step", "adlif_charge", "adlif_step", "se_adlif_step",
           "li_step", "lif", "cubalif", "alif",
           "recurrent", "custom", "kernel_record"]
