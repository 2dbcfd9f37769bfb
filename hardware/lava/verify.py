"""Check that Lava runs a model as trained: the evidence behind ``neurosynth export loihi --verify N``.

- **float**: Lava's floating-point models (``floating_pt``) must spike exactly like the torch model,
  layer by layer (torch evaluated in float64; Lava's spikes compared after the per-layer lag the torch
  model lacks, see :meth:`LoihiNet.torch_shifts`: zero for the Loihi family, which trains with
  :class:`~neurosynth.layers.Delay`).
- **fixed**: Lava's bit-accurate models (``fixed_pt``) must equal our integer reference
  (:func:`~.reference.simulate`) bit for bit, layer by layer.
- **accuracy** (with labels): spike-count argmax of the float torch model, of Lava float and of Lava
  fixed point on the same spike trains.

A **voltage readout** (an ``LI`` last layer, :attr:`~.ir.LoihiNet.voltage_readout`) never fires: its Lava spikes
must all be zero, and its membrane after the last step is compared instead, with the torch model's final
membrane in float (``float_readout_max_abs_diff``, at most ``1e-9`` relative: Lava computes ``v (1 - dv)`` where
torch computes ``beta v``, identical for the non-leaky ``beta = 1``) and with the integer reference bit for bit in
fixed point; the accuracies are the argmax of those membranes.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from .builder import run_lava
from .ir import LoihiNet, check_fixed, extract
from .reference import simulate, torch_final_membrane, torch_layer_spikes, torch_predictions


def _pad(x: np.ndarray, extra: int) -> np.ndarray:
    if extra == 0:
        return x
    return np.concatenate([x, np.zeros((extra, *x.shape[1:]), dtype=x.dtype)], axis=0)


def verify(model: nn.Module, inputs, labels=None, *, input_shape=None, net: LoihiNet | None = None,
           modes: tuple[str, ...] = ("float", "fixed"), copies: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Run ``inputs [T, B, ...]`` (binary spikes) through torch, our reference and Lava; return a report.

    ``net`` (optional) is the network Lava runs in fixed point, e.g. the one read back from the netx file
    (:func:`~.netx.read_netx`); by default it is extracted from ``model``. Keys: ``float_exact``,
    ``fixed_exact``, per-layer mismatch counts, ``accuracy_torch`` / ``accuracy_lava_float`` /
    ``accuracy_lava_fixed`` (with ``labels``), ``samples``, ``steps``.
    """
    model_net = extract(model, input_shape)
    net = net or model_net
    check_fixed(net)
    x = inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)
    T, B = x.shape[:2]
    shifts = model_net.torch_shifts()
    lag = max(shifts)
    xp = _pad(x, lag)  # run long enough for the last torch step to reach every Lava layer
    names = [s.name for s in model_net.stages]
    report: dict[str, Any] = {"samples": int(B), "steps": int(T), "layers": names, "lava_lag_steps": shifts}
    torch_spikes = torch_layer_spikes(model, torch.from_numpy(x).float())
    voltage = model_net.voltage_readout
    torch_v = None
    if voltage:  # the LI readout's hook saw membranes: it never fires; its score is the final membrane (float64)
        torch_spikes[-1] = np.zeros_like(torch_spikes[-1])
        torch_v = torch_final_membrane(model, torch.from_numpy(x).float())
        report["readout"] = "voltage"
    y = None if labels is None else np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)

    def acc(res, start: int) -> float:
        return float((res.predictions(start, T) == y).mean())

    if y is not None:
        with torch.no_grad():
            out = model.eval()(torch.from_numpy(x).float())
        report["accuracy_torch"] = float((torch_predictions(out, voltage) == y).mean())
    seconds: dict[str, float] = {}
    report["lava_seconds"] = seconds
    if "float" in modes:
        t0 = time.perf_counter()
        lava = run_lava(model_net, xp, "float", copies=copies, progress=progress)
        seconds["float"] = round(time.perf_counter() - t0, 2)
        mism = [int((lf[s:s + T] != ts).sum()) for lf, ts, s in zip(lava.spikes, torch_spikes, shifts)]
        report["float_mismatches"] = dict(zip(names, mism))
        report["float_exact"] = all(m == 0 for m in mism)
        report["float_spikes"] = dict(zip(names, [int(ts.sum()) for ts in torch_spikes]))
        if voltage:
            diff = float(np.abs(lava.v_out - torch_v).max()) if B else 0.0
            report["float_readout_max_abs_diff"] = diff
            report["float_exact"] = report["float_exact"] and diff <= 1e-9 * max(1.0, float(np.abs(torch_v).max()))
        if y is not None:
            report["accuracy_lava_float"] = acc(lava, shifts[-1])
    if "fixed" in modes:
        ref = simulate(net, xp, "fixed")
        t0 = time.perf_counter()
        lava = run_lava(net, xp, "fixed", copies=copies, progress=progress)
        seconds["fixed"] = round(time.perf_counter() - t0, 2)
        mism = [int((a != b).sum()) for a, b in zip(lava.spikes, ref.spikes)]
        report["fixed_mismatches"] = dict(zip(names, mism))
        report["fixed_exact"] = all(m == 0 for m in mism)
        if voltage:  # the readout's integer membrane, bit for bit
            bad = int((lava.v_out.astype(np.int64) != ref.v[-1].astype(np.int64)).sum())
            report["fixed_readout_mismatches"] = bad
            report["fixed_exact"] = report["fixed_exact"] and bad == 0
        agree = [float((lx[s:s + T] == ts).mean()) for lx, ts, s in zip(lava.spikes, torch_spikes, shifts)]
        report["fixed_vs_torch_spike_agreement"] = dict(zip(names, agree))
        if y is not None:
            report["accuracy_lava_fixed"] = acc(lava, shifts[-1])
    if y is not None and "accuracy_lava_fixed" in report:
        report["accuracy_gap_pp"] = 100.0 * (report["accuracy_torch"] - report["accuracy_lava_fixed"])
    report["passed"] = bool(report.get("float_exact", True) and report.get("fixed_exact", True))
    return report


def exportable(model: nn.Module, input_shape=None) -> LoihiNet:
    """The :class:`LoihiNet` of ``model``, checked on Loihi's fixed-point ranges; a model Loihi cannot run exactly
    raises :class:`~.ir.LoihiExportError` naming the layer and the fix."""
    net = extract(model, input_shape)
    check_fixed(net)
    return net


def layer_summary(net: LoihiNet) -> list[dict[str, Any]]:
    """One JSON-able row per netx layer: name, kind, in/out shapes and the neuron's fixed-point constants."""
    return [{"name": s.name, "kind": s.kind, "in": list(s.in_shape), "out": list(s.out_shape),
             "iDecay": s.neuron.i_decay, "vDecay": s.neuron.v_decay, "vThMant": s.neuron.vth_mant} for s in net.stages]


def export_verified(model: nn.Module, path, inputs=None, labels=None, *, input_shape=None,
                    modes: tuple[str, ...] = ("float", "fixed"), net: LoihiNet | None = None,
                    copies: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Write ``model`` as a netx file at ``path`` (atomically) and, given ``inputs [T, B, ...]`` (binary spikes),
    :func:`verify` it in the Lava ``modes`` (Lava fixed point runs the network read back *from the file*).

    The workflow behind ``neurosynth export loihi`` and the demo's Loihi stage. A model Loihi cannot run raises
    :class:`~.ir.LoihiExportError` before anything is written (pass ``net`` from :func:`exportable` to check
    first); a failed check removes the file. Returns the :func:`verify` report (without ``inputs``: no
    verification) plus ``netx_layers`` (:func:`layer_summary`), ``passed`` and ``netx_file`` (None when removed).
    """
    from pathlib import Path

    from neurosynth.io import atomic_path

    from .netx import read_netx, write_netx

    net = net if net is not None else exportable(model, input_shape)
    path = Path(path)
    report: dict[str, Any] = {"passed": True}
    try:
        with atomic_path(path) as tmp:
            write_netx(net, tmp)
            if inputs is not None:
                report = verify(model, inputs, labels, input_shape=input_shape, net=read_netx(tmp), modes=modes,
                                copies=copies, progress=progress)
                if not report["passed"]:
                    raise _Failed(report)
    except _Failed as e:  # atomic_path removed the file
        report = e.report
    return {**report, "netx_layers": layer_summary(net), "netx_file": str(path) if report["passed"] else None}


class _Failed(Exception):
    def __init__(self, report):
        super().__init__("verification failed")
        self.report = report


def verify_samples(model: nn.Module, samples, n: int, path, input_shape, *, copies: int | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Export ``model`` to ``path`` (netx) and verify it on the first ``n`` of ``samples`` (a sequence of
    ``(x [T, ...], label)``, e.g. a test ``Dataset``; inputs are clipped to binary spikes) in Lava float and fixed
    point; add the operation counts and energy per inference (:mod:`neurosynth.hardware.energy`, Loihi cost model)
    on the same samples. Prints a one-line summary and returns the JSON-able results."""
    from neurosynth.hardware.energy import compare, count_ops

    n = min(int(n), len(samples))
    pairs = [samples[i] for i in range(n)]
    x = (torch.stack([torch.as_tensor(p[0]) for p in pairs], 1) > 0).float()  # [T, n, ...]
    y = torch.as_tensor([int(p[1]) for p in pairs])
    model.eval()
    rep = export_verified(model, path, x, y, input_shape=input_shape, copies=copies, progress=progress)
    with torch.no_grad():
        energy = compare(count_ops(model, x))
    keys = ("samples", "steps", "readout", "float_exact", "fixed_exact", "float_mismatches", "fixed_mismatches",
            "float_readout_max_abs_diff", "fixed_readout_mismatches",
            "fixed_vs_torch_spike_agreement", "accuracy_torch", "accuracy_lava_float", "accuracy_lava_fixed", "passed",
            "lava_seconds")
    out = {k: rep[k] for k in keys if k in rep}
    out["netx_file"] = str(path) if rep["passed"] else None
    out["energy"] = {"T": int(x.shape[0]), "syn_ops": energy["counts"]["syn_ops"],
                     "neuron_updates": energy["counts"]["neuron_updates"], "ann_macs": energy["counts"]["ann_macs"],
                     "loihi_nj": energy["snn"]["total_j"] * 1e9, "ann_nj": energy["ann"]["total_j"] * 1e9,
                     "ann_cost_model": energy["ann"]["cost_model"]}
    nan = float("nan")
    print(f"Loihi check on {out['samples']} samples (T={out['steps']}): float spike-exact {out.get('float_exact')}, "
          f"fixed bit-exact {out.get('fixed_exact')}; accuracy torch {out.get('accuracy_torch', nan):.4f}, Lava float "
          f"{out.get('accuracy_lava_float', nan):.4f}, Lava fixed {out.get('accuracy_lava_fixed', nan):.4f}; Loihi "
          f"{out['energy']['loihi_nj']:.1f} nJ/inference ({out['energy']['syn_ops']:.0f} synaptic ops, "
          f"{out['energy']['neuron_updates']:.0f} neuron updates; one-pass ANN {out['energy']['ann_nj']:.1f} nJ)")
    return out
