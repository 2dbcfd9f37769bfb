"""lava-dl ``netx`` HDF5 files: write a :class:`~.ir.LoihiNet`, read it back, check the schema.

The layout is the one ``lava.lib.dl.netx.hdf5.Network`` reads (lava-dl ``netx/hdf5.py`` / ``utils.py``;
``research/lava.md`` section 1). netx reads datasets only, never attributes::

    layer/<i>/type        (1,) S10 bytes: 'input' | 'flatten' | 'dense' | 'dense_rec' | 'conv'
    layer/<i>/shape       int: (N,) for input/dense, (C, H, W) for conv (netx reverses it to Lava's (W, H, C))
    layer/<i>/weight      int: dense (N_out, N_in); conv (C_out, C_in/groups, kH, kW)  (64 w, even, 8-bit)
    layer/<i>/weight_rec  int (N, N): dense_rec only, the recurrent weight (same grid)
    layer/<i>/delay       int (N_out, N_in) in 0..62: dense only, per-synapse delays (netx builds Lava's
                          ``DelayDense``: a spike sent at t arrives at t + 1 + d); refused on conv (netx ignores it)
                          and dense_rec (netx's delayed recurrent block is broken), see ``ir.check_delays``
    layer/<i>/bias        int (N,): dense/dense_rec only, per-neuron bias mantissas 64 b (netx: Lava bias_mant with
                          bias_exp 6, added to v every step; from qat.QBias, plain LIF only)
    layer/<i>/stride, padding, dilation   int (2,) as (y, x);  layer/<i>/groups  int   (conv only)
    layer/<i>/neuron/type    'CUBA' (variable-length string)
    layer/<i>/neuron/iDecay  int 1..4096   (Lava du = iDecay - 1)
    layer/<i>/neuron/vDecay  int 0..4095   (Lava dv)
    layer/<i>/neuron/vThMant int 1..131071 (Lava vth)
    layer/<i>/neuron/refDelay = 1, gradedSpike = False   (written by slayer, ignored by netx)

Layer 0 is an ``input`` layer without a neuron (netx then only records the input shape). NeuroSynth
adds file attributes (ignored by netx) naming the format version, the torch delay convention and the
``readout``: ``spikes`` (output spike counts) or ``voltage`` (the last layer's neurons have ``vThMant = 131071``,
never fire in a trained network, and are read by their ``v`` after the last step: with lava-dl, probe or ``get()``
the last block's ``neuron.v``).

``dense_rec`` (lava-dl >= PR #324) becomes netx's ``RecurrentDense`` block: ``Dense(weight)`` and
``Dense(weight_rec)`` (fed by the layer's own spikes) into one LIF. lava-dl gives *both* synapses the network's
``input_message_bits`` (lava-dl #372, fix PR #373 open): correct only for binary input, which is what we write
and verify (``Network(net_config=path)`` with the default ``input_message_bits=0``; see docs/hardware_lava.md).
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from ...errors import MissingExtraError
from ..targets import loihi_qat as qat
from .ir import MAX_DELAY, LoihiExportError, LoihiLayer, LoihiNet, NeuronParams, check_fixed

FORMAT = "neurosynth.netx/1"
NETX_TYPES = ("input", "flatten", "dense", "dense_rec", "conv")


def require_h5py():
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - h5py ships with the lava extra
        raise MissingExtraError("h5py", "lava", "netx HDF5 export") from e
    return h5py


def _type(g, name: str) -> None:
    g.create_dataset("type", (1,), "S10", [name.encode("ascii")])


def write_netx(net: LoihiNet, path: str | os.PathLike) -> Path:
    """Write ``net`` (already checked with :func:`check_fixed`) as a netx HDF5 file, atomically."""
    h5py = require_h5py()
    from neurosynth.io import atomic_path

    check_fixed(net)  # refuse before anything is written
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["input_shape"] = np.asarray(net.input_shape, dtype=np.int64)
        f.attrs["torch_delayed"] = np.asarray([int(s.delayed) for s in net.stages], dtype=np.int64)
        f.attrs["layer_names"] = np.asarray([s.name for s in net.layers], dtype=h5py.string_dtype())
        # how the network is read out: 'spikes' (output spike counts) or 'voltage' (the last layer's v after the last
        # step; its neurons carry vThMant = 131071 and never fire in float)
        f.attrs["readout"] = "voltage" if net.voltage_readout else "spikes"
        root = f.create_group("layer")
        g = root.create_group("0")
        _type(g, "input")
        g.create_dataset("shape", data=np.asarray(net.input_shape, dtype=np.int64))
        for i, layer in enumerate(net.layers, start=1):
            g = root.create_group(str(i))
            _type(g, "dense_rec" if layer.recurrent else layer.kind)
            if layer.kind == "flatten":
                continue
            g.create_dataset("shape", data=np.asarray(layer.out_shape, dtype=np.int64))
            g.create_dataset("weight", data=layer.int_weight().astype(np.int64))
            if layer.recurrent:
                g.create_dataset("weight_rec", data=layer.int_weight_rec().astype(np.int64))
            if layer.delays is not None:
                g.create_dataset("delay", data=np.asarray(layer.delays, dtype=np.int64))
            if layer.bias is not None:  # netx: the neuron's bias_mant (bias_exp 6), one per neuron
                g.create_dataset("bias", data=layer.int_bias())
            if layer.kind == "dense":  # (also dense_rec)
                g.create_dataset("inFeatures", data=int(np.prod(layer.in_shape)))
                g.create_dataset("outFeatures", data=int(layer.out_shape[0]))
            else:
                g.create_dataset("inChannels", data=int(layer.in_shape[0]))
                g.create_dataset("outChannels", data=int(layer.out_shape[0]))
                g.create_dataset("kernelSize", data=np.asarray(layer.weight.shape[2:], dtype=np.int64))
                g.create_dataset("stride", data=np.asarray(layer.stride, dtype=np.int64))
                g.create_dataset("padding", data=np.asarray(layer.padding, dtype=np.int64))
                g.create_dataset("dilation", data=np.asarray(layer.dilation, dtype=np.int64))
                g.create_dataset("groups", data=int(layer.groups))
            n = g.create_group("neuron")
            p = layer.neuron
            n.create_dataset("type", data="CUBA", dtype=h5py.string_dtype())
            n.create_dataset("iDecay", data=int(p.i_decay))
            n.create_dataset("vDecay", data=int(p.v_decay))
            n.create_dataset("vThMant", data=int(p.vth_mant))
            n.create_dataset("refDelay", data=1)
            n.create_dataset("gradedSpike", data=False)
    return path


def _str(ds) -> str:
    v = ds[()]
    if isinstance(v, np.ndarray):
        v = v.reshape(-1)[0]
    return v.decode("ascii") if isinstance(v, bytes) else str(v)


def validate_netx(path: str | os.PathLike) -> list[str]:
    """Check a file against the netx layout; return the problems found (empty list: valid)."""
    h5py = require_h5py()
    problems: list[str] = []
    with h5py.File(path, "r") as f:
        if "layer" not in f:
            return ["no 'layer' group"]
        keys = sorted(f["layer"].keys(), key=lambda k: int(k) if k.isdigit() else -1)
        if keys != [str(i) for i in range(len(keys))]:
            problems.append(f"layer keys must be '0'..'{len(keys) - 1}'; got {keys}")
        for k in keys:
            g = f["layer"][k]
            if "type" not in g or not isinstance(g["type"], h5py.Dataset):
                problems.append(f"layer/{k}: 'type' dataset missing")
                continue
            t = _str(g["type"])
            if t not in NETX_TYPES:
                problems.append(f"layer/{k}: type {t!r} is not one netx builds ({NETX_TYPES})")
            if t in ("input", "dense", "dense_rec", "conv") and "shape" not in g:
                problems.append(f"layer/{k}: 'shape' missing")
            if t == "dense_rec":
                wr = g.get("weight_rec")
                n_out = int(np.prod(g["shape"][()])) if "shape" in g else -1
                if wr is None:
                    problems.append(f"layer/{k}: dense_rec needs 'weight_rec'")
                else:
                    wr = wr[()]
                    if not np.issubdtype(wr.dtype, np.integer):
                        problems.append(f"layer/{k}: weight_rec must be integers; got {wr.dtype}")
                    elif wr.size and (wr.min() < qat.W_MIN or wr.max() > qat.W_MAX):
                        problems.append(f"layer/{k}: weight_rec outside [{qat.W_MIN}, {qat.W_MAX}]")
                    if wr.shape != (n_out, n_out):
                        problems.append(f"layer/{k}: weight_rec {wr.shape} must be ({n_out}, {n_out})")
            if t in ("dense", "dense_rec", "conv"):
                w = g.get("weight")
                if w is None:
                    problems.append(f"layer/{k}: 'weight' missing")
                else:
                    w = w[()]
                    if not np.issubdtype(w.dtype, np.integer):
                        problems.append(f"layer/{k}: weights must be integers (netx truncates floats); got {w.dtype}")
                    elif w.min() < qat.W_MIN or w.max() > qat.W_MAX:
                        problems.append(f"layer/{k}: weights outside [{qat.W_MIN}, {qat.W_MAX}]")
                    if t in ("dense", "dense_rec") and (w.ndim != 2 or w.shape[0] != int(np.prod(g["shape"][()]))):
                        problems.append(f"layer/{k}: dense weight {w.shape} does not match shape {g['shape'][()]}")
                    if t == "conv" and w.ndim != 4:
                        problems.append(f"layer/{k}: conv weight must be (C_out, C_in, kH, kW); got {w.shape}")
                n = g.get("neuron")
                if n is None:
                    problems.append(f"layer/{k}: 'neuron' group missing")
                else:
                    for key in ("type", "iDecay", "vDecay", "vThMant"):
                        if key not in n:
                            problems.append(f"layer/{k}/neuron: {key!r} missing")
                    if "type" in n and _str(n["type"]) not in ("CUBA", "LOIHI"):
                        problems.append(f"layer/{k}/neuron: type must be CUBA")
                if "delay" in g:
                    d = np.asarray(g["delay"][()])
                    n_out = int(np.prod(g["shape"][()])) if "shape" in g else -1
                    n_in = w.shape[1] if w is not None and w.ndim == 2 else -1
                    if t != "dense":
                        problems.append(f"layer/{k}: 'delay' on a {t} layer; netx runs per-synapse delays on "
                                        f"dense layers only (it ignores conv delays; dense_rec + delay is broken)")
                    elif not np.issubdtype(d.dtype, np.integer):
                        problems.append(f"layer/{k}: delay must be integers; got {d.dtype}")
                    elif full_delays(d, n_out, n_in) is None:
                        problems.append(f"layer/{k}: delay {d.shape} must be ({n_out}, {n_in}), one per synapse "
                                        f"(or a scalar, ({n_out},) per output or ({n_in},) per input, as netx reads)")
                    elif d.size and (d.min() < 0 or d.max() > MAX_DELAY):
                        problems.append(f"layer/{k}: delays outside 0..{MAX_DELAY}")
                if t == "conv":
                    for key in ("stride", "padding", "dilation", "groups"):
                        if key not in g:
                            problems.append(f"layer/{k}: conv needs {key!r}")
    return problems


def full_delays(d: np.ndarray, n_out: int, n_in: int) -> np.ndarray | None:
    """A netx ``delay`` as the full ``(n_out, n_in)`` matrix, the way lava-dl's ``create_dense`` reads it: a scalar
    (every synapse), a vector of ``n_out`` (per output neuron: slayer's axonal delays; checked first, so a square
    layer's vector is per output), a vector of ``n_in`` (per input) or the matrix itself; ``None`` for any other
    shape."""
    d = np.asarray(d)
    if d.ndim == 0:
        return np.full((n_out, n_in), int(d), dtype=np.int64)
    if d.ndim == 1 and d.size == n_out:
        return np.repeat(d.reshape(-1, 1), n_in, axis=1).astype(np.int64)
    if d.ndim == 1 and d.size == n_in:
        return np.repeat(d.reshape(1, -1), n_out, axis=0).astype(np.int64)
    if d.shape == (n_out, n_in):
        return d.astype(np.int64)
    return None


def _pair(g, key: str) -> tuple[int, int]:
    return tuple(int(v) for v in np.broadcast_to(np.atleast_1d(g[key][()]), (2,)))


def read_netx(path: str | os.PathLike) -> LoihiNet:
    """Rebuild the :class:`LoihiNet` stored in a netx file (weights ``w = W_int / 64``, ``alpha = 1 -
    iDecay/4096``, ``beta = 1 - vDecay/4096``, ``threshold = vThMant / 64``: exact on Loihi's grids)."""
    h5py = require_h5py()
    problems = validate_netx(path)
    if problems:
        raise LoihiExportError(f"{path} is not a netx file NeuroSynth can run: " + "; ".join(problems))
    with h5py.File(path, "r") as f:
        delayed = list(f.attrs.get("torch_delayed", []))
        readout = f.attrs.get("readout", "spikes")
        readout = readout.decode() if isinstance(readout, bytes) else str(readout)
        if readout not in ("spikes", "voltage"):
            raise LoihiExportError(f"{path}: readout attribute {readout!r} is neither 'spikes' nor 'voltage'")
        names = [str(n.decode() if isinstance(n, bytes) else n) for n in f.attrs.get("layer_names", [])]
        keys = sorted(f["layer"].keys(), key=int)
        layers: list[LoihiLayer] = []
        shape: tuple[int, ...] | None = None
        input_shape = None
        stage = 0
        for idx, k in enumerate(keys):
            g = f["layer"][k]
            t = _str(g["type"])
            name = names[idx - 1] if 0 < idx <= len(names) else f"layer{k}"
            if t == "input":
                shape = tuple(int(s) for s in np.atleast_1d(g["shape"][()]))
                input_shape = shape
                continue
            if shape is None:  # file starting without an input layer: infer from the first weight
                w = g["weight"][()]
                shape = (w.shape[1],) if t in ("dense", "dense_rec") else None
                if shape is None:
                    raise LoihiExportError(f"{path}: a conv network needs an 'input' layer with its shape")
                input_shape = shape
            if t == "flatten":
                new = (int(np.prod(shape)),)
                layers.append(LoihiLayer("flatten", name, shape, new))
                shape = new
                continue
            n = g["neuron"]
            neuron = NeuronParams(alpha=1 - int(n["iDecay"][()]) / qat.DECAY_UNITY,
                                  beta=1 - int(n["vDecay"][()]) / qat.DECAY_UNITY,
                                  threshold=int(n["vThMant"][()]) / qat.TH_SCALE)
            w = g["weight"][()].astype(np.float64) / qat.W_SCALE
            out_shape = tuple(int(s) for s in np.atleast_1d(g["shape"][()]))
            is_delayed = bool(delayed[stage]) if stage < len(delayed) else True
            if t in ("dense", "dense_rec"):
                if w.ndim == 1:
                    w = w.reshape(out_shape[0], -1)
                w_rec = g["weight_rec"][()].astype(np.float64) / qat.W_SCALE if t == "dense_rec" else None
                in_shape = shape if len(shape) == 1 else (int(np.prod(shape)),)
                delays = full_delays(g["delay"][()], w.shape[0], w.shape[1]) if "delay" in g else None
                bias = None
                if "bias" in g:  # a scalar or one per neuron (what netx broadcasts), mantissas of 64 b
                    bias = np.broadcast_to(np.asarray(g["bias"][()], dtype=np.float64), out_shape) / qat.BIAS_SCALE
                layers.append(LoihiLayer("dense", name, in_shape, out_shape, weight=w, neuron=neuron, delayed=is_delayed,
                                         weight_rec=w_rec, delays=delays, bias=None if bias is None else bias.copy()))
            else:
                layers.append(LoihiLayer("conv", name, shape, out_shape, weight=w, neuron=neuron, delayed=is_delayed,
                                         stride=_pair(g, "stride"), padding=_pair(g, "padding"),
                                         dilation=_pair(g, "dilation"),
                                         groups=int(np.atleast_1d(g["groups"][()])[0])))
            shape = out_shape
            stage += 1
    if readout == "voltage":  # the last stage is read by its membrane: an infinite threshold (NeuronParams.voltage)
        last = max(i for i, layer in enumerate(layers) if layer.kind != "flatten")
        if layers[last].neuron.vth_mant != qat.VTH_MAX:
            raise LoihiExportError(f"{path}: a voltage readout needs vThMant = {qat.VTH_MAX} on its last layer; got "
                                   f"{layers[last].neuron.vth_mant}")
        layers[last] = replace(layers[last], neuron=replace(layers[last].neuron, threshold=math.inf))
    return LoihiNet(input_shape=tuple(input_shape), layers=tuple(layers))
