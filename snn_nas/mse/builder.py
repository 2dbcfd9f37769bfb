"""Build an MSE-NAS ArchSpec (``"kind": "mse"``) into a spiking network; registered in ``ARCH_KINDS``.

``neurosynth.arch.build(spec)`` imports this module (the spec's ``"plugin"``) and calls :func:`build_mse`.

Network (time-first ``[T, B, ...]`` throughout):

* stem: conv 3x3 (conv mode) or linear (dense mode), batch norm, a spiking neuron;
* cells in order; output ``k`` is the stem (``k = 0``) or cell ``k-1``. Cell ``i``'s input (motif node 0) is
  ``sum_{j in inputs} adapt_j(out_j)``, where ``adapt_j`` is identity when shapes agree, else a 1x1 conv /
  linear + batch norm (trained with the network) after 2x2 average pooling down to the cell's resolution;
  ``downsample`` pools the cell input by 2;
* motif nodes ``1..n``: ``s_d = neuron_d( sum_{(s, d, ff|lat)} sign * relu(BN(W * x_s)) + sum_{(s, d, skip)} x_s )``
  where ``sign = +1`` for an excitatory source (``-1`` inhibitory, and always ``-1`` on a ``lat`` edge);
  then, in order of the source node, within-step feedback ``x_d <- x_d + sign_s * relu(BN(W * s_s))`` for each
  ``(s, d, fb)``; the cell output is ``sum_{o in outputs} x_o``;
* head: global average pooling (conv), linear to ``num_classes``, then an ``LI`` membrane readout
  (``readout: "li"``, train with ``mean_membrane_ce``) or a spiking LIF (``"spiking"``, ``rate_ce``).

``forward(x, record=True)`` returns ``(out, records)`` with every spiking layer's spike train
(``stem``, ``cell{i}.n{j}``), which the training-free fitness reads.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from neurosynth.arch import ARCH_KINDS
from neurosynth.layers import apply_flat
from neurosynth.neurons import build_neuron
from neurosynth.utils import check_time_first

from .spec import CHAIN_KIND, validate_chain_spec, validate_spec


def _shape_after(spec: dict) -> list[tuple[int, int]]:
    """(width, spatial side) of every output k (0 = stem, k = cell k-1); side 0 in dense mode."""
    shape = spec["input_shape"]
    conv = len(shape) == 3
    sides = [(shape[1], shape[2])] if conv else [(0, 0)]
    out = [(spec["stem"]["width"], sides[0])]
    cur = sides[0]
    for cell in spec["cells"]:
        if conv and cell["downsample"]:
            cur = (cur[0] // 2, cur[1] // 2)
        out.append((cell["width"], cur))
    return out


class EdgeOp(nn.Module):
    """Synapse ``sign * relu(BN(W x))`` (conv k x k or linear); ``sign`` fixed at build time."""

    def __init__(self, conv: bool, cin: int, cout: int, kernel: int, sign: float):
        super().__init__()
        if conv:
            self.w = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False)
            self.bn = nn.BatchNorm2d(cout)
        else:
            self.w = nn.Linear(cin, cout, bias=False)
            self.bn = nn.BatchNorm1d(cout)
        self.sign = float(sign)

    def forward(self, x):
        y = torch.relu(self.bn(self.w(x)))
        return y if self.sign > 0 else -y


class Adapter(nn.Module):
    """Bring an earlier output to this cell's width / resolution (identity when they already agree)."""

    def __init__(self, conv: bool, cin: int, cout: int, pool: int):
        super().__init__()
        self.pool = nn.AvgPool2d(pool) if conv and pool > 1 else None
        self.proj = None
        if cin != cout:
            self.proj = (nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)) if conv
                         else nn.Sequential(nn.Linear(cin, cout, bias=False), nn.BatchNorm1d(cout)))

    def forward(self, x):
        if self.pool is not None:
            x = self.pool(x)
        if self.proj is not None:
            x = self.proj(x)
        return x


class MotifCell(nn.Module):
    def __init__(self, conv: bool, width: int, motif: dict):
        super().__init__()
        self.motif = copy.deepcopy(motif)
        nodes = motif["nodes"]
        self.neurons = nn.ModuleList([build_neuron(nd["neuron"]) for nd in nodes])
        self.ops = nn.ModuleDict()
        self.edges = []
        for s, d, t in motif["edges"]:
            key = f"{s}_{d}_{t}"
            if t != "skip":
                src_sign = 1.0 if s == 0 or nodes[s - 1]["sign"] == "exc" else -1.0
                sign = -1.0 if t == "lat" else src_sign
                kernel = nodes[d - 1]["kernel"] if t != "fb" else nodes[s - 1]["kernel"]
                self.ops[key] = EdgeOp(conv, width, width, kernel if conv else 1, sign)
            self.edges.append((s, d, t, key))
        self.outputs = list(motif["outputs"])

    def forward(self, x0, records: dict | None, prefix: str):
        xs = {0: x0}
        n = len(self.neurons)
        for d in range(1, n + 1):
            cur = None
            for s, dd, t, key in self.edges:
                if dd != d or t == "fb":
                    continue
                y = xs[s] if t == "skip" else apply_flat(self.ops[key], xs[s])
                cur = y if cur is None else cur + y
            spikes = self.neurons[d - 1](cur)
            if records is not None:
                records[f"{prefix}.n{d}"] = spikes
            xs[d] = spikes
            for s, dd, t, key in self.edges:  # within-step feedback from the node just computed
                if t == "fb" and s == d:
                    xs[dd] = xs[dd] + apply_flat(self.ops[key], spikes)
        out = xs[self.outputs[0]]
        for o in self.outputs[1:]:
            out = out + xs[o]
        return out


class MSENet(nn.Module):
    """The network an MSE spec describes (see module docstring)."""

    records_spikes = True  # forward(x, record=True) returns (out, records)

    def __init__(self, spec: dict):
        super().__init__()
        validate_spec(spec)
        self.spec = copy.deepcopy(spec)
        shape = spec["input_shape"]
        self.conv = len(shape) == 3
        sw = spec["stem"]["width"]
        if self.conv:
            self.stem = nn.Sequential(nn.Conv2d(shape[0], sw, 3, padding=1, bias=False), nn.BatchNorm2d(sw))
        else:
            self.stem = nn.Sequential(nn.Linear(shape[0], sw, bias=False), nn.BatchNorm1d(sw))
        self.stem_neuron = build_neuron(spec["stem"].get("neuron", "lif"))
        shapes = _shape_after(spec)
        self.adapters = nn.ModuleList()
        self.cells = nn.ModuleList()
        for i, cell in enumerate(spec["cells"]):
            w, side = shapes[i + 1]
            ad = nn.ModuleDict()
            for j in cell["inputs"]:
                wj, sj = shapes[j]
                pool = (sj[0] // side[0]) if self.conv else 1
                ad[str(j)] = Adapter(self.conv, wj, w, pool)
            self.adapters.append(ad)
            self.cells.append(MotifCell(self.conv, w, cell["motif"]))
        wl = shapes[-1][0]
        self.head = nn.Linear(wl, spec["num_classes"])
        self.readout = (build_neuron("li", params={"beta": 0.9}) if spec.get("readout", "li") == "li"
                        else build_neuron("lif"))
        self.arch_spec = copy.deepcopy(spec)

    def forward(self, x: torch.Tensor, record: bool = False):
        check_time_first(x, "MSENet input", min_rank=3)
        want = tuple(self.spec["input_shape"])
        if tuple(x.shape[2:]) != want:
            raise ValueError(f"MSENet expects input [T, B, {', '.join(map(str, want))}]; got {tuple(x.shape)}")
        records: dict[str, torch.Tensor] | None = {} if record else None
        s = self.stem_neuron(apply_flat(self.stem, x))
        if records is not None:
            records["stem"] = s
        outs = [s]
        for i, (ad, cell) in enumerate(zip(self.adapters, self.cells)):
            inp = None
            for j, a in ad.items():
                y = apply_flat(a, outs[int(j)])
                inp = y if inp is None else inp + y
            outs.append(cell(inp, records, f"cell{i}"))
        z = outs[-1]
        if self.conv:
            z = z.mean(dim=(-1, -2))
        out = self.readout(apply_flat(self.head, z))
        return (out, records) if record else out

    def to_spec(self) -> dict:
        return copy.deepcopy(self.spec)


def build_mse(spec: dict) -> nn.Module:
    """ArchSpec builder for ``"kind": "mse"``: an :class:`MSENet`, or, for a deployment target
    (a target with a lowering, e.g. ``"target": "loihi"``), the plain sequential :class:`neurosynth.SNN` of
    :func:`lowered`."""
    from .targets import get_target

    if get_target(spec.get("target", "float")).lowers:
        from neurosynth.arch import build

        return deploy_init(build(lowered(spec)))
    return MSENet(spec)


DEPLOY_INIT_GAIN = 3.0


def deploy_init(model: nn.Module, gain: float = DEPLOY_INIT_GAIN) -> nn.Module:
    """Initialise the synapses of a deployable (binary-spike, no batch norm) network: ``N(0, gain^2/fan_in)``.

    Without batch norm, the default ``kaiming_uniform`` leaves rate-coded inputs under threshold and the
    deeper layers silent; ``gain = 3`` keeps 5-30 % of the neurons of 1-3-cell digits networks firing at
    threshold 1 (measured on 8 random candidates). Draws from torch's global RNG (seeded by the caller).
    """
    import math

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                nn.init.normal_(m.weight, 0.0, gain / math.sqrt(fan_in)).clamp_(-3.9, 3.9)
    return model


def lowered(spec: dict) -> dict:
    """The sequential ArchSpec a deployable spec lowers to (:func:`snn_nas.mse.targets.lower`); validated."""
    from .targets import lower

    validate_spec(spec)
    return lower(spec, spec["target"])


ARCH_KINDS.register("mse", overwrite=True)(build_mse)


# ---------------------------------------------------------------------------------------------------------
# The chain family ("kind": "chain"): the hand-written conv / recurrent networks as one family of the search
# ---------------------------------------------------------------------------------------------------------
def neuron_params(name: str, beta: float) -> dict:
    """The ``params`` of a chain layer's neuron: its membrane decay ``beta`` and threshold 1 (each only when the
    neuron has that parameter), as the recipes write them (``apps/recipes/csnn.py``: ``{"beta", "threshold"}``).

    The decay goes to the parameter the neuron names as its membrane decay (``NeuronModel.membrane_decay``: adLIF's
    is ``alpha``) and is snapped into that parameter's range (adLIF: tau_u of 5-25 steps), so every point of the
    space builds."""
    from neurosynth.neurons import NEURONS

    cls = NEURONS.get(name)
    key = getattr(cls, "membrane_decay", "beta")
    value = float(beta)
    rng = cls().param_ranges.get(key)
    if rng is not None:
        value = min(max(value, float(rng[0])), float(rng[1]))
    return {k: v for k, v in ((key, value), ("threshold", 1.0)) if k in cls.defaults}


def expand_chain(spec: dict) -> dict:
    """The plain sequential ArchSpec of a chain spec (validated).

    Per conv block ``conv2d(k x k, same padding, no bias under batch norm) -> batchnorm2d -> neuron -> 2x2
    {max|avg}pool2d`` (no pool for ``"none"``); ``flatten``; per hidden layer ``linear -> neuron`` or, when
    ``recurrent``, ``linear -> recurrent`` (``x[t] + W_rec s[t-1]`` into the neuron); then ``linear`` to the
    classes and an ``li`` readout (``readout_beta``; train with ``mean_membrane_ce``) or a spiking LIF readout
    (zero reset; ``rate_ce``). With the same fields this is exactly :func:`neurosynth.arch.csnn_spec` (the
    Fashion-MNIST recipe's network is one chain spec: ``tests/snn_nas/test_chain_space.py``)."""
    from neurosynth.arch import FORMAT

    validate_chain_spec(spec)
    shape = [int(v) for v in spec["input_shape"]]
    bn = bool(spec.get("batchnorm", True))
    sur = spec.get("surrogate", "atan")

    def neuron(nd: dict) -> dict:
        return {"type": "neuron", "neuron": nd["neuron"], "params": neuron_params(nd["neuron"], nd["beta"]),
                "surrogate": sur}

    layers: list[dict] = []
    if len(shape) == 3:
        c, h, w = shape
        for b in spec["blocks"]:
            k, ch = int(b["kernel"]), int(b["width"])
            layers.append({"type": "conv2d", "in_channels": c, "out_channels": ch, "kernel_size": k,
                           "padding": k // 2, "bias": not bn})
            if bn:
                layers.append({"type": "batchnorm2d", "num_features": ch})
            layers.append(neuron(b))
            if b["pool"] != "none":
                layers.append({"type": f"{b['pool']}pool2d", "kernel_size": 2})
                h, w = h // 2, w // 2
            c = ch
        layers.append({"type": "flatten"})
        n = c * h * w
    else:
        n = shape[0]
    for hd in spec["hidden"]:
        layers.append({"type": "linear", "in_features": n, "out_features": int(hd["width"])})
        if hd["recurrent"]:
            nd = neuron(hd)
            del nd["type"]
            layers.append({"type": "recurrent", "size": int(hd["width"]), "bias": False, **nd})
        else:
            layers.append(neuron(hd))
        n = int(hd["width"])
    layers.append({"type": "linear", "in_features": n, "out_features": int(spec["num_classes"])})
    rb = float(spec["readout_beta"])
    if spec.get("readout", "li") == "li":
        layers.append({"type": "neuron", "neuron": "li", "params": {"beta": rb}})
    else:
        layers.append({"type": "neuron", "neuron": "lif", "params": {"beta": rb, "threshold": 1.0}, "reset": "zero",
                       "surrogate": sur})
    return {"format": FORMAT, "kind": "sequential", "input_shape": [int(v) for v in spec["input_shape"]],
            "layers": layers}


def build_chain(spec: dict) -> nn.Module:
    """ArchSpec builder for ``"kind": "chain"``: the sequential :class:`neurosynth.SNN` of :func:`expand_chain`."""
    from neurosynth.arch import build

    return build(expand_chain(spec))


ARCH_KINDS.register(CHAIN_KIND, overwrite=True)(build_chain)
