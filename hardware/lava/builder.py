"""Build and run the Lava process graph of a trained model in Lava's CPU simulator (``Loihi2SimCfg``).

The graph is ``RingBuffer`` (input spikes) -> ``Dense``/``Conv`` -> ``LIF`` -> ... with a sink recording
the spikes of every LIF layer: our :class:`~.recorder.SpikeRecorder` (a memmap, read back in one piece),
because Lava 0.10 reads a sink ``RingBuffer``'s ``data`` back one element per inter-process message, which
made a run of the pooled conv net 15-20 times slower per step (``benchmarks/lava_run.py``;
``sink="ringbuffer"`` keeps Lava's sink). ``mode='float'`` selects Lava's floating-point process models (``select_tag='floating_pt'``) with the model's float weights; ``mode='fixed'`` the
bit-accurate Loihi models (``'fixed_pt'``) with the exported integers (``64 w``, ``vThMant``,
``iDecay - 1``, ``vDecay``).

Batches: a Lava network has one state and Lava's Python simulator costs milliseconds per step, so
:func:`run_lava` packs a batch into few runs without changing the process types:

- ``copies`` replicas of the network side by side (:func:`replicate`: block-diagonal ``Dense``
  weights, ``Conv`` with ``groups * copies``), i.e. ``copies`` samples per step; Lava's ``Conv`` stores
  ``groups`` as int8, so ``groups * copies`` must stay <= 127 (:func:`_check_lava_limits` refuses more);
- ``slots`` groups of samples one after the other, every stage a ``LIFReset``: slot ``k`` occupies steps
  ``k P + 1 .. k P + T`` with ``P = T + c_L + 1`` and stage ``l`` resets at step ``k P + T + c_l + 1``, where
  ``c_l = sum_{m <= l} (1 + D_m)`` is the latency from the input to stage ``l`` (``D_m`` the largest per-synapse
  delay of stage ``m``, 0 without delays, so ``c_l = l``), when nothing of the previous slot is still in flight towards it, so every sample
  starts from the zero state exactly as in the torch model (tests compare against single-sample runs).
  Networks with a recurrent (``dense_rec``) stage use one slot per run: such a layer can keep itself firing
  after its input stops, and ``LIFReset`` integrates its reset step's input (the layer's own last spikes).

A recurrent stage is ``Dense`` (feed-forward) and ``Dense`` (recurrent, ``lif.s_out -> rec.s_in``, ``rec.a_out
-> lif.a_in``), both with ``num_message_bits=0`` (binary spikes), as netx's ``RecurrentDense`` block builds it
when the network input is binary.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from .compat import import_lava
from .ir import LoihiLayer, LoihiNet, check_fixed, extract

MODES = {"float": "floating_pt", "fixed": "fixed_pt"}


def _lava_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Torch ``(C, H, W)`` -> Lava ``(W, H, C)``; ``(N,)`` unchanged."""
    return tuple(shape[::-1])


def _to_lava_order(x: np.ndarray) -> np.ndarray:
    """``[T, *torch_shape]`` -> ``[*lava_shape, T]``."""
    return np.transpose(x, tuple(range(x.ndim - 1, -1, -1)))


def _from_lava_order(x: np.ndarray) -> np.ndarray:
    return np.transpose(x, tuple(range(x.ndim - 1, -1, -1)))


def lava_conv_weight(w: np.ndarray) -> np.ndarray:
    """Torch ``(C_out, C_in, kH, kW)`` cross-correlation kernel -> Lava ``(C_out, kW, kH, C_in)``, spatially
    flipped because Lava's ``Conv`` performs a true convolution."""
    return np.ascontiguousarray(np.transpose(w, (0, 3, 2, 1))[:, ::-1, ::-1])


@dataclass
class LavaGraph:
    """The Lava processes of one network (keep a reference while it runs)."""

    net: LoihiNet
    mode: str
    num_steps: int
    source: Any
    synapses: list = field(default_factory=list)
    neurons: list = field(default_factory=list)
    sinks: list = field(default_factory=list)
    recurrent: list = field(default_factory=list)  # the recurrent Dense of every dense_rec stage
    record_dir: str | None = None  # sink="file": the folder of the recorders' memmaps (removed by run())
    #: after :meth:`run`, for a voltage readout (``net.voltage_readout``): the last stage's ``v`` after the last step,
    #: torch order (read from the LIF process before Lava stops)
    final_v: np.ndarray | None = None

    def run(self) -> list[np.ndarray]:
        """Run ``num_steps`` steps; return per stage the spikes ``[num_steps, *out_shape]`` (torch order)."""
        import shutil

        import_lava()
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg

        proc = self.neurons[-1]
        models = {}
        if self.record_dir is not None:
            from .recorder import MODELS

            models = {s: MODELS[self.mode] for s in self.sinks}  # by instance: no ProcessModel directory search
        try:
            try:
                proc.run(condition=RunSteps(num_steps=self.num_steps),
                         run_cfg=Loihi2SimCfg(select_tag=MODES[self.mode], exception_proc_model_map=models))
                if self.record_dir is None:  # Lava's RingBuffer sink: Var.get() moves one element per message
                    out = [_from_lava_order(np.asarray(s.data.get())) > 0 for s in self.sinks]
                if self.net.voltage_readout:  # the readout's membrane, while the runtime still holds it
                    self.final_v = _from_lava_order(np.asarray(self.neurons[-1].v.get(), dtype=np.float64))
            except BaseException:
                # Lava's stop() after a failed run waits forever for the dead process model (lava-nc 0.10):
                # terminate the OS processes instead and re-raise
                _abort(proc)
                raise
            proc.stop()
            # after a clean stop only: collecting a runtime torn down by _abort can crash the interpreter
            _forget([self.source, *self.synapses, *self.neurons, *self.sinks, *self.recurrent])
            if self.record_dir is not None:
                out = []
                for s in self.sinks:
                    p = s.proc_params
                    mm = np.memmap(p["path"], dtype=np.uint8, mode="r", shape=(p["steps"], *p["shape"]))
                    out.append(_from_lava_order(np.moveaxis(np.array(mm), 0, -1)) > 0)
                    del mm
        finally:
            if self.record_dir is not None:
                shutil.rmtree(self.record_dir, ignore_errors=True)
        return out


def _forget(procs) -> None:
    """Drop ``procs`` (and their Vars) from Lava's global ``ProcessServer``/``VarServer`` registries.

    lava-nc 0.10 appends every process and Var ever created to these singletons and never removes them, so a
    long verification (one freshly built graph per run) kept every run's processes alive. Ids come from a
    counter, not from the lists, so removing finished processes is safe. Measured on 20 copies of a 700-128
    recurrent net, one Lava run per 20 samples: the parent process grew by ~340 MB per run without this (a Lava
    process of a 480-sample check reached 16 GB), and stays flat with it."""
    import gc

    from lava.magma.core.process.process import ProcessServer
    from lava.magma.core.process.variable import VarServer

    ours = {id(p) for p in procs if p is not None}
    server = ProcessServer()
    server.processes = [p for p in server.processes if id(p) not in ours]
    var_server = VarServer()
    var_server.vars = [v for v in var_server.vars if id(getattr(v, "process", None)) not in ours]
    gc.collect()  # Lava's processes, ports and runtimes form cycles: free the previous runs' weights now


def _abort(proc) -> None:
    """Tear down the Lava runtime of ``proc`` after a failed run without ``proc.stop()``, which (lava-nc 0.10.0)
    sends STOP to every process model and waits for answers that a crashed model never gives."""
    runtime = getattr(proc, "_runtime", None)
    infra = getattr(runtime, "_messaging_infrastructure", None)
    actors = list(getattr(infra, "actors", []) or [])
    for actor in actors:
        try:
            if actor.is_alive():
                actor.terminate()
        except (OSError, ValueError, AssertionError):
            pass
    try:
        if infra is not None:
            infra.stop()  # joins the (now terminated) actors and shuts the shared-memory manager down
        watchdog = getattr(runtime, "_watchdog_manager", None)
        if watchdog is not None:
            watchdog.stop()
    except Exception:  # noqa: BLE001 - best effort: the original error is what the caller needs
        pass


def _synapse_process(layer: LoihiLayer, mode: str, in_shape_lava, recurrent: bool = False):
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import DelayDense, Dense

    if layer.kind == "dense" and layer.delays is not None and not recurrent:
        w = layer.weight.astype(np.float64) if mode == "float" else layer.int_weight()
        kw = {} if mode == "float" else {"num_weight_bits": 8, "weight_exp": 0}
        # Lava 0.10 DelayDense checks `delays.dtype == int`, which is int64 on Linux (int32 is refused), and takes
        # max_delay (the buffer length - 1) as a Python int
        return DelayDense(weights=w, delays=np.asarray(layer.delays, dtype=np.int64), max_delay=int(layer.max_delay),
                          num_message_bits=0, name=f"delay_dense:{layer.name}", **kw)
    if layer.kind == "dense":
        if recurrent:
            w = layer.weight_rec.astype(np.float64) if mode == "float" else layer.int_weight_rec()
        else:
            w = layer.weight.astype(np.float64) if mode == "float" else layer.int_weight()
        kw = {} if mode == "float" else {"num_weight_bits": 8, "weight_exp": 0}
        # binary spikes on both connections: num_message_bits=0, also on the recurrent one (lava-dl #372)
        return Dense(weights=w, num_message_bits=0, name=f"{'dense_rec' if recurrent else 'dense'}:{layer.name}",
                     **kw)
    w = layer.weight if mode == "float" else layer.int_weight()
    return Conv(weight=lava_conv_weight(w), input_shape=in_shape_lava, padding=layer.padding[::-1],
                stride=layer.stride[::-1], dilation=layer.dilation[::-1], groups=layer.groups, weight_exp=0,
                num_weight_bits=8, num_message_bits=0, name=f"conv:{layer.name}")


def _neuron_process(layer: LoihiLayer, mode: str, reset: tuple[int, int] | None):
    from lava.proc.lif.process import LIF, LIFReset

    p = layer.neuron
    kw = p.lava_float() if mode == "float" else p.lava_fixed()
    shape = _lava_shape(layer.out_shape)
    # the neuron bias (qat.QBias): Lava's float LIF adds bias_mant itself, the bit-accurate one bias_mant << bias_exp
    if layer.bias is None:
        bias = {"bias_mant": 0, "bias_exp": 0}
    elif mode == "float":
        bias = {"bias_mant": _to_lava_order(layer.bias.astype(np.float64)), "bias_exp": 0}
    else:
        bias = {"bias_mant": _to_lava_order(layer.int_bias()).astype(np.int32), "bias_exp": 6}
    if reset is None:
        return LIF(shape=shape, name=f"lif:{layer.name}", **bias, **kw)
    return LIFReset(shape=shape, reset_interval=reset[0], reset_offset=reset[1], name=f"lif:{layer.name}", **bias,
                    **kw)


def build_graph(net: LoihiNet, data: np.ndarray, mode: str = "fixed", *,
                reset_interval: int | None = None, window: int | None = None, sink: str = "file") -> LavaGraph:
    """Build the processes of ``net`` fed with ``data [num_steps, *input_shape]`` (torch order, binary).

    With ``reset_interval=P`` and ``window=T`` every stage is a ``LIFReset`` that clears stage ``l``
    (1-based) at steps ``k P + T + c_l + 1`` (see the module docstring). ``sink``: how every stage's spikes are
    recorded: ``"file"`` (default) a :class:`~.recorder.SpikeRecorder` per stage writing a memmap, read back in
    one piece; ``"ringbuffer"`` Lava's sink ``RingBuffer``, read with ``Var.get()``, which Lava 0.10 transfers
    one element per inter-process message (slow for big layers; kept for comparison, see
    ``benchmarks/lava_run.py``).
    """
    import_lava()
    from lava.proc.io.sink import RingBuffer
    from lava.proc.io.source import RingBuffer as Source

    if mode not in MODES:
        raise ValueError(f"mode must be 'float' or 'fixed'; got {mode!r}")
    if sink not in ("file", "ringbuffer"):
        raise ValueError(f"sink must be 'file' or 'ringbuffer'; got {sink!r}")
    _check_lava_limits(net)
    steps = int(data.shape[0])
    source = Source(data=_to_lava_order(data.astype(np.float64 if mode == "float" else np.int32)))
    graph = LavaGraph(net=net, mode=mode, num_steps=steps, source=source)
    if sink == "file":
        import shutil
        import tempfile
        import weakref

        from .recorder import SpikeRecorder

        graph.record_dir = tempfile.mkdtemp(prefix="neurosynth-lava-")
        # run() removes the folder; a graph that is built but never run (to_lava) removes it when collected
        weakref.finalize(graph, shutil.rmtree, graph.record_dir, True)

        def Sink(shape, buffer, name):  # noqa: N802 - a process factory
            path = f"{graph.record_dir}/{len(graph.sinks)}.u8"
            np.zeros((buffer, *shape), dtype=np.uint8).tofile(path)
            return SpikeRecorder(shape=shape, path=path, steps=buffer, name=name)
    else:
        def Sink(shape, buffer, name):  # noqa: N802
            return RingBuffer(shape=shape, buffer=buffer)
    port, shape = source.s_out, tuple(net.input_shape)
    stage = latency = 0
    for layer in net.layers:
        if layer.kind == "flatten":
            if len(shape) > 1:
                port = port.transpose(list(range(len(shape) - 1, -1, -1))).flatten()
            shape = layer.out_shape
            continue
        stage += 1
        latency += 1 + layer.max_delay
        if layer.kind == "dense" and len(shape) > 1:  # implicit flatten in torch order
            port = port.transpose(list(range(len(shape) - 1, -1, -1))).flatten()
        syn = _synapse_process(layer, mode, _lava_shape(shape))
        reset = None
        if reset_interval is not None:
            reset = (reset_interval, (window + latency + 1) % reset_interval)
        lif = _neuron_process(layer, mode, reset)
        port.connect(syn.s_in)
        syn.a_out.connect(lif.a_in)
        if layer.recurrent:  # netx dense_rec: the layer's own spikes through a second Dense (one-step delay)
            rec = _synapse_process(layer, mode, None, recurrent=True)
            lif.s_out.connect(rec.s_in)
            rec.a_out.connect(lif.a_in)
            graph.recurrent.append(rec)
        recorder = Sink(_lava_shape(layer.out_shape), steps, f"sink:{layer.name}")
        lif.s_out.connect(recorder.a_in)
        graph.synapses.append(syn)
        graph.neurons.append(lif)
        graph.sinks.append(recorder)
        port, shape = lif.s_out, layer.out_shape
    return graph


CONV_INT8_MAX = 127  # Lava 0.10 Conv models store kernel_size/stride/padding/dilation/groups as int8 Vars


def latency(net: LoihiNet) -> int:
    """Steps from an input spike to the last stage's neurons at the longest: one per synapse plus its largest
    per-synapse delay."""
    return sum(1 + layer.max_delay for layer in net.stages)


def _check_lava_limits(net: LoihiNet) -> None:
    """Refuse what Lava's Python ``Conv`` models would silently corrupt: they keep ``kernel_size``, ``stride``,
    ``padding``, ``dilation`` and ``groups`` in ``int8`` Vars, so a value above 127 wraps around (e.g. 128
    groups become -128) and the model raises inside its Lava process, where the run then hangs instead of
    failing. :func:`replicate` multiplies ``groups`` by the number of copies, which is how 11 copies of a
    network with a 16-channel pooling layer (176 groups) stalled a Lava run; :func:`auto_copies` stays below."""
    for layer in net.stages:
        if layer.kind != "conv":
            continue
        kh, kw = layer.weight.shape[2:]
        for what, values in (("groups", (layer.groups,)), ("kernel size", (kh, kw)), ("stride", layer.stride),
                             ("padding", layer.padding), ("dilation", layer.dilation)):
            if max(int(v) for v in values) > CONV_INT8_MAX:
                raise ValueError(
                    f"conv layer {layer.name}: {what} {tuple(int(v) for v in values)} exceeds {CONV_INT8_MAX}, the "
                    f"largest value Lava 0.10's Conv model stores (int8); with replicate(net, copies) the groups are "
                    f"multiplied by copies: use fewer copies (run_lava(copies=...))")


def _as_net(model, input_shape=None, mode: str = "fixed") -> LoihiNet:
    net = model if isinstance(model, LoihiNet) else extract(model, input_shape)
    if mode == "fixed":
        check_fixed(net)
    return net


def to_lava(model: nn.Module | LoihiNet, inputs=None, *, mode: str = "fixed", input_shape=None,
            num_steps: int | None = None) -> LavaGraph:
    """Build the Lava process graph of ``model`` (a torch model or a :class:`LoihiNet`).

    ``inputs``: one sample's spikes ``[T, *input_shape]`` (torch order) for the source ``RingBuffer``;
    without it the source plays ``num_steps`` (default 1) silent steps. Refuses models Loihi cannot run
    (:class:`~.ir.LoihiExportError`).
    """
    net = _as_net(model, input_shape, mode)
    if inputs is None:
        data = np.zeros((num_steps or 1, *net.input_shape))
    else:
        data = inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)
    return build_graph(net, data, mode)


@dataclass(frozen=True)
class LavaResult:
    spikes: tuple[np.ndarray, ...]  # per stage [T, B, *out_shape] bool, aligned with the torch time axis
    #: a voltage readout's membrane after the last step ``[B, *out_shape]`` (None for a spiking readout)
    v_out: np.ndarray | None = None

    @property
    def output(self) -> np.ndarray:
        return self.spikes[-1]

    def counts(self) -> np.ndarray:
        """Output spike counts ``[B, n_out]``."""
        return self.output.sum(0).reshape(self.output.shape[1], -1)

    def scores(self, start: int = 0, steps: int | None = None) -> np.ndarray:
        """Class scores ``[B, n_out]``: spike counts over ``start .. start + steps``, or the voltage readout's ``v``."""
        from .reference import output_scores

        return output_scores(self.output, self.v_out, self.v_out is not None, start, steps)

    def predictions(self, start: int = 0, steps: int | None = None) -> np.ndarray:
        return self.scores(start, steps).argmax(-1)


def _block_diag(w: np.ndarray, copies: int) -> np.ndarray:
    n_out, n_in = w.shape
    out = np.zeros((copies * n_out, copies * n_in), dtype=w.dtype)
    for r in range(copies):
        out[r * n_out:(r + 1) * n_out, r * n_in:(r + 1) * n_in] = w
    return out


def replicate(net: LoihiNet, copies: int) -> LoihiNet:
    """``copies`` independent copies of ``net`` side by side in one network of the same layer types:
    block-diagonal ``Dense`` weights, ``Conv`` with ``groups * copies`` (copies stacked along channels), so one
    Lava run advances ``copies`` samples per step. Copy ``r`` owns features ``r*N .. (r+1)*N - 1`` (channels
    ``r*C .. (r+1)*C - 1``) of every layer; nothing connects different copies."""
    if copies == 1:
        return net

    def rep(shape):
        return (shape[0] * copies, *shape[1:])

    layers = []
    for layer in net.layers:
        if layer.kind == "dense":
            w_rec = _block_diag(layer.weight_rec, copies) if layer.recurrent else None
            delays = _block_diag(layer.delays, copies) if layer.delays is not None else None  # 0 where no synapse
            bias = np.tile(layer.bias, copies) if layer.bias is not None else None
            layers.append(replace(layer, in_shape=rep(layer.in_shape), out_shape=rep(layer.out_shape),
                                  weight=_block_diag(layer.weight, copies), weight_rec=w_rec, delays=delays,
                                  bias=bias))
        elif layer.kind == "conv":
            layers.append(replace(layer, in_shape=rep(layer.in_shape), out_shape=rep(layer.out_shape),
                                  weight=np.concatenate([layer.weight] * copies, 0), groups=layer.groups * copies))
        else:
            layers.append(replace(layer, in_shape=rep(layer.in_shape), out_shape=rep(layer.out_shape)))
    return LoihiNet(input_shape=rep(net.input_shape), layers=tuple(layers))


def auto_copies(net: LoihiNet, batch: int, max_weights: int = 2_000_000) -> int:
    """How many copies :func:`replicate` may stack: the largest block-diagonal dense matrix stays below
    ``max_weights`` entries (at most 64 copies, at most ``batch``)."""
    biggest = max([layer.weight.size for layer in net.stages if layer.kind == "dense"] + [1])
    if any(layer.recurrent for layer in net.stages):  # one slot per run (see run_lava): allow more copies
        max_weights *= 8
    convs = [layer for layer in net.stages if layer.kind == "conv"]
    if convs:
        # Lava's Conv keeps groups in an int8 Var (see _check_lava_limits): groups * copies <= 127. Beyond 4
        # copies Lava's scipy Conv kernel (one convolve2d per output/input channel pair, all copies in one OS
        # process) dominates the step: on the 16x16 pooled net (channels 8/16) a simulated step cost 19 ms per
        # sample with 1 copy, 12 ms with 4 and 24 ms with 7 (benchmarks/lava_run.py, shared 2-core machine)
        cap = CONV_INT8_MAX // max(layer.groups for layer in convs)
        return int(max(1, min(batch, 4, cap, int(np.sqrt(max_weights / biggest)))))
    return int(max(1, min(batch, 64, int(np.sqrt(max_weights / biggest)))))


def run_lava(model: nn.Module | LoihiNet, inputs, mode: str = "fixed", *, input_shape=None,
             copies: int | None = None, slots: int = 16, progress: bool = False) -> LavaResult:
    """Run ``model`` in Lava's simulator on binary spikes ``inputs [T, B, *input_shape]``.

    Returns the spikes of every LIF stage as Lava produced them (Lava's per-synapse delay included:
    compare with a torch model without :class:`~neurosynth.layers.Delay` after shifting, see
    :meth:`LoihiNet.torch_shifts`). Every sample starts from the zero state. Batching: each Lava run holds
    ``copies`` replicas of the network side by side (:func:`replicate`; default :func:`auto_copies`) and
    plays ``slots`` groups of samples one after the other, separated by ``LIFReset`` resets (module docstring).
    For a voltage readout (:attr:`LoihiNet.voltage_readout`) the result also holds the last stage's ``v`` after
    the last step (:attr:`LavaResult.v_out`; one sample per copy and run).
    """
    net = _as_net(model, input_shape, mode)
    x = inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)
    if x.ndim < 3 or tuple(x.shape[2:]) != tuple(net.input_shape):
        raise ValueError(f"inputs must be [T, B, {', '.join(map(str, net.input_shape))}]; got {x.shape}")
    if not np.isin(x, (0, 1)).all():
        raise ValueError("Loihi inputs must be binary spikes (0/1); encode the data first (e.g. rate coding)")
    T, B = x.shape[:2]
    if any(layer.recurrent or layer.bias is not None for layer in net.stages) or net.voltage_readout:
        # a recurrent layer can keep itself firing after its input stops, and LIFReset integrates the input of
        # its reset step (here: its own spikes of the step before), so samples cannot share a run one after
        # the other: every run holds one sample per copy, from a freshly built network. A voltage readout is
        # read once, after the run's last step, and a biased layer integrates its bias between slots: also one
        # sample per copy
        slots = 1
    R = copies or auto_copies(net, B)
    big = replicate(net, R)
    L = len(net.stages)
    per_run = R * max(1, slots)
    per_stage: list[list[np.ndarray]] = [[] for _ in range(L)]
    v_out: list[np.ndarray] = []
    starts = range(0, B, per_run)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc=f"lava {mode}", unit="run")
    for b0 in starts:
        xb = x[:, b0:b0 + per_run]
        nb = xb.shape[1]
        S = -(-nb // R)  # sequential slots in this run
        if nb < S * R:  # pad with silent samples
            xb = np.concatenate([xb, np.zeros((T, S * R - nb, *net.input_shape), dtype=xb.dtype)], 1)
        P = T if S == 1 else T + latency(net) + 1
        data = np.zeros((S * P, *big.input_shape), dtype=x.dtype)
        for k in range(S):
            group = xb[:, k * R:(k + 1) * R]  # [T, R, *in]
            data[k * P:k * P + T] = group.reshape(T, R * net.input_shape[0], *net.input_shape[1:])
        graph = build_graph(big, data, mode) if S == 1 else build_graph(big, data, mode, reset_interval=P, window=T)
        for i, (s, layer) in enumerate(zip(graph.run(), net.stages)):
            s = s.reshape(S, P, R, *layer.out_shape)[:, :T]  # [S, T, R, ...]
            s = np.moveaxis(s, 1, 0).reshape(T, S * R, *layer.out_shape)[:, :nb]
            per_stage[i].append(s)
        if net.voltage_readout:  # copy r owns outputs r*N .. (r+1)*N - 1 (replicate)
            v_out.append(graph.final_v.reshape(R, *net.output_shape)[:nb])
    return LavaResult(spikes=tuple(np.concatenate(p, axis=1) for p in per_stage),
                      v_out=np.concatenate(v_out, axis=0) if net.voltage_readout else None)
