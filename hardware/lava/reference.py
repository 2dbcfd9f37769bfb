r"""Our own reference of what Lava (and Loihi) compute for a :class:`~.ir.LoihiNet`, batched in numpy.

Both modes reproduce Lava 0.10.0's process models step for step, including the one-step delay of every
``Dense``/``Conv`` (the synaptic output computed at step ``t`` reaches the neurons at ``t + 1``):

``float`` (``PyLifModelFloat``, ``PyDenseModelFloat``), per step::

    a_t = W s_{t-1}            (binary input spikes; a recurrent stage adds W_rec z_{t-1}, its own spikes;
                                with per-synapse delays D (DelayDense): a_t = sum_k (W [D == k]) s_{t-1-k})
    u_t = u_{t-1} (1 - du) + a_t           du = 1 - alpha
    v_t = v_{t-1} (1 - dv) + u_t + b       dv = 1 - beta; b the layer's bias (QBias), 0 without
    s_t = v_t > vth;  v_t[s_t] = 0

``fixed`` (``PyLifModelBitAcc``, ``PyDenseModelBitAcc``, ``PyConvModelFixed``), integers::

    a_t = W_int s_{t-1} (+ W_rec_int z_{t-1})               W_int = 64 w (even, 8-bit)
    u_t = wrap24( sgn(u) (|u (4096 - iDecay)| >> 12) + (a_t << 6) )
    v_t = clip24( sgn(v) (|v (4096 - vDecay)| >> 12) + u_t + (bias_mant << 6) )    bias_mant = 64 b
    s_t = v_t > (vThMant << 6);  v_t[s_t] = 0

A voltage readout (the last stage of an ``LI`` network, :attr:`~.ir.NeuronParams.voltage`) runs the same
equations with an infinite threshold (float) or ``vThMant = 131071`` (fixed); its score is ``v`` after the last
step (:meth:`RefResult.scores`).

Inputs are binary spike trains ``[T, B, *input_shape]`` (torch order). The result lists, per
dense/conv stage, the spikes ``[T, B, *out_shape]`` (bool) and the final-step ``v``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .ir import LoihiLayer, LoihiNet

UV_MAX = 1 << 23  # 24-bit state


@dataclass(frozen=True)
class RefResult:
    spikes: tuple[np.ndarray, ...]  # per stage [T, B, *out_shape] bool
    v: tuple[np.ndarray, ...]  # per stage, membrane after the last step [B, *out_shape]
    voltage_readout: bool = False  # score by the last stage's final v, not by its spike counts

    @property
    def output(self) -> np.ndarray:
        return self.spikes[-1]

    def scores(self, start: int = 0, steps: int | None = None) -> np.ndarray:
        """Class scores ``[B, n_out]``: the output spike counts over steps ``start .. start + steps`` (all by
        default), or, for a voltage readout, the last stage's ``v`` after the last simulated step."""
        return output_scores(self.spikes[-1], self.v[-1], self.voltage_readout, start, steps)

    def predictions(self, start: int = 0, steps: int | None = None) -> np.ndarray:
        return self.scores(start, steps).argmax(-1)


def output_scores(spikes: np.ndarray, v_final: np.ndarray | None, voltage: bool, start: int = 0,
                  steps: int | None = None) -> np.ndarray:
    """The class scores of a network's last stage ``[B, n_out]``: spike counts over ``spikes[start:start+steps]``
    (``[T, B, ...]``), or ``v_final`` (``[B, ...]``) for a voltage readout. Shared by the reference and the Lava
    runs, so both read a network out the same way."""
    if voltage:
        return np.asarray(v_final).reshape(np.asarray(v_final).shape[0], -1)
    end = None if steps is None else start + steps
    out = spikes[start:end]
    return out.sum(0).reshape(out.shape[1], -1)


def hw_dense_weights(w_int: np.ndarray) -> np.ndarray:
    """Lava ``PyDenseModelBitAcc``'s clip + truncation of 8-bit weights (sign mode from the weights)."""
    w = w_int.astype(np.int64)
    if w.min() >= 0:  # excitatory: [0, 255], no truncation at 8 bits
        return np.clip(w, 0, 255)
    if w.max() <= 0:  # inhibitory: [-255, 0]
        return np.clip(w, -255, 0)
    return (np.clip(w, -256, 255) >> 1) << 1  # mixed: one LSB truncated


def _synapse(layer: LoihiLayer, s: np.ndarray, w: np.ndarray, dtype) -> np.ndarray:
    """Synaptic input of all steps at once: ``[T, B, *in] -> [T, B, *out]`` (per-synapse delays applied, the
    synapse's one-step delay not yet)."""
    T, B = s.shape[:2]
    if layer.kind == "dense" and layer.delays is not None:
        x = s.reshape(T, B, -1).astype(dtype)
        out = np.zeros((T, B, w.shape[0]), dtype=dtype)
        for d in np.unique(layer.delays):  # Lava's DelayDense: the weights of delay d arrive d steps later
            d = int(d)
            if d < T:
                out[d:] += x[:T - d] @ np.where(layer.delays == d, w, 0).T.astype(dtype)
        return out
    if layer.kind == "dense":
        return s.reshape(T, B, -1).astype(dtype) @ w.T.astype(dtype)
    x = torch.from_numpy(s.reshape(T * B, *layer.in_shape).astype(np.float64))
    out = F.conv2d(x, torch.from_numpy(w.astype(np.float64)), stride=layer.stride, padding=layer.padding,
                   dilation=layer.dilation, groups=layer.groups).numpy()
    out = out.reshape(T, B, *layer.out_shape)
    return np.rint(out).astype(np.int64) if dtype == np.int64 else out


def _delay(a: np.ndarray) -> np.ndarray:
    out = np.zeros_like(a)
    out[1:] = a[:-1]
    return out


def _trunc_decay(x: np.ndarray, decay: int) -> np.ndarray:
    prod = x.astype(np.int64) * (4096 - decay)
    return np.sign(prod) * (np.abs(prod) >> 12)


def simulate(net: LoihiNet, x, mode: str = "fixed") -> RefResult:
    """Run ``net`` on binary spikes ``x [T, B, *input_shape]`` as Lava does (``mode`` 'float' or 'fixed')."""
    if mode not in ("float", "fixed"):
        raise ValueError(f"mode must be 'float' or 'fixed'; got {mode!r}")
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim < 3 or tuple(x.shape[2:]) != tuple(net.input_shape):
        raise ValueError(f"input must be [T, B, {', '.join(map(str, net.input_shape))}]; got {x.shape}")
    if not np.isin(x, (0, 1)).all():
        raise ValueError("Loihi inputs must be binary spikes (0/1); encode the data first (e.g. rate coding)")
    s = x.astype(bool)
    spikes, vs = [], []
    for layer in net.layers:
        if layer.kind == "flatten":
            s = s.reshape(s.shape[0], s.shape[1], -1)
            continue
        p = layer.neuron
        if mode == "float":
            a = _delay(_synapse(layer, s, layer.weight, np.float64))
            f = p.lava_float()
            ku, kv, vth = 1 - f["du"], 1 - f["dv"], f["vth"]
            u = np.zeros(a.shape[1:])
            v = np.zeros(a.shape[1:])
            out = np.zeros(a.shape, dtype=bool)
            st = np.zeros(a.shape[1:], dtype=bool)
            bias = 0.0 if layer.bias is None else layer.bias
            for t in range(a.shape[0]):
                a_t = a[t] + st @ layer.weight_rec.T if layer.recurrent else a[t]
                u = u * ku + a_t
                v = v * kv + u + bias
                st = v > vth
                v[st] = 0
                out[t] = st
        else:
            w = layer.int_weight()
            if layer.kind == "dense":
                w = hw_dense_weights(w)
            a = _synapse(layer, s, w, np.int64)
            if layer.kind == "conv":  # PyConvModelFixed saturates the synaptic sum to 24 bits
                a = np.clip(a, -(UV_MAX - 1), UV_MAX - 1)
            a = _delay(a)
            di, dv, vth = p.i_decay, p.v_decay, p.vth_mant << 6
            u = np.zeros(a.shape[1:], dtype=np.int64)
            v = np.zeros(a.shape[1:], dtype=np.int64)
            out = np.zeros(a.shape, dtype=bool)
            st = np.zeros(a.shape[1:], dtype=bool)
            w_rec = hw_dense_weights(layer.int_weight_rec()).T if layer.recurrent else None
            bias = 0 if layer.bias is None else layer.int_bias() << 6  # Lava: bias_mant << bias_exp (netx: 6)
            for t in range(a.shape[0]):
                a_t = a[t] + st.astype(np.int64) @ w_rec if layer.recurrent else a[t]
                u = _trunc_decay(u, di) + (a_t << 6)
                u = np.where(u > UV_MAX, u - 2 * UV_MAX, u)
                u = np.where(u <= -UV_MAX, u + 2 * UV_MAX, u)
                v = np.clip(_trunc_decay(v, dv) + u + bias, -(UV_MAX - 1), UV_MAX - 1)
                st = v > vth
                v[st] = 0
                out[t] = st
        spikes.append(out)
        vs.append(v)
        s = out
    return RefResult(spikes=tuple(spikes), v=tuple(vs), voltage_readout=net.voltage_readout)


def torch_layer_spikes(model: torch.nn.Module, x: torch.Tensor, dtype=torch.float64) -> list[np.ndarray]:
    """Spikes of every neuron layer of a sequential torch model, ``[T, B, ...]`` each (evaluated in
    ``dtype`` on a copy, so the float comparison with Lava's float64 models is exact)."""
    import copy

    from neurosynth.layers import Recurrent
    from neurosynth.neurons import NeuronModel

    from .ir import _leaves

    m = copy.deepcopy(model).to(dtype).eval()
    outs: list[np.ndarray] = []
    hooks = [mod.register_forward_hook(lambda _m, _i, o: outs.append(o.detach().cpu().numpy() > 0))
             for _, mod in _leaves(m) if isinstance(mod, (NeuronModel, Recurrent))]
    try:
        with torch.no_grad():
            m(x.to(dtype))
    finally:
        for h in hooks:
            h.remove()
    return outs


def torch_predictions(out: torch.Tensor, voltage: bool) -> np.ndarray:
    """A torch model's class predictions read out as Loihi reads the network (:func:`output_scores`): the argmax of
    the output spike counts over time, or, for a voltage readout, of the last step's membrane. ``out [T, B, n]``."""
    score = out[-1] if voltage else out.sum(0)
    return score.argmax(-1).detach().cpu().numpy()


def torch_final_membrane(model: torch.nn.Module, x: torch.Tensor, dtype=torch.float64) -> np.ndarray:
    """The output of a torch model with a voltage (``LI``) readout after the last step, ``[B, n_out]``, evaluated
    in ``dtype`` on a copy (float64: what Lava's float models compute)."""
    import copy

    m = copy.deepcopy(model).to(dtype).eval()
    with torch.no_grad():
        out = m(x.to(dtype))
    return out[-1].detach().cpu().numpy().reshape(out.shape[1], -1)
