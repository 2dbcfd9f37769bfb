"""Demo stage for ``neurosynth demo``: a short MSE-NAS search on digits in the Loihi-deployable space.

The space is ``--target loihi`` (:mod:`neurosynth.hardware.targets.loihi`): every candidate is a chain of zero-reset
LIF/CubaLIF layers with 8-bit QAT synapses and one-step delays, so the network the search finds is the one
the ``train`` stage trains and the ``loihi`` stage deploys in Lava.
"""

from __future__ import annotations

from pathlib import Path

DEMO_T = 8  # time steps (rate-coded digits) for the search, the training and the Lava check
# Lava's CPU simulator runs one OS process per layer, so the demo keeps the networks shallow (3-4 spiking
# layers: stem, 1-2 cells of one neuron layer, output); `neurosynth search mse --target loihi` has no such cap.
QUICK_SPACE = {"widths": [4, 8], "stem_widths": [4, 8], "depth": [1, 1], "max_nodes": 1}
FULL_SPACE = {"widths": [4, 8, 16], "stem_widths": [4, 8], "depth": [1, 2], "max_nodes": 1}


def search_config(ctx: dict):
    from snn_nas.mse.run import SearchConfig

    quick = bool(ctx.get("quick"))
    out = Path(ctx["out"]) / "search"
    # the seed's MSE-NAS mode (training-free RDM fitness): seconds on 2 cores, so the demo stays quick
    return SearchConfig(out=str(out), dataset="digits", T=DEMO_T, encoding="rate", target="loihi", fidelity="none",
                        population=4 if quick else 8, generations=2 if quick else 4, strategy="ga", fitness="rdm",
                        batch=32 if quick else 64, seed=int(ctx.get("seed", 0)),
                        resume=(out / "archive.sqlite").exists(), progress=True, train_best=0,
                        space=QUICK_SPACE if quick else FULL_SPACE)


def describe(spec: dict) -> str:
    """``stem 8 lif | cell 16: lif k3 -> cubalif k5 (stride 2) | ...``"""
    parts = [f"stem {spec['stem']['width']} {spec['stem'].get('neuron', 'lif')}"]
    for c in spec["cells"]:
        nodes = " -> ".join(f"{n['neuron']} k{n['kernel']}" for n in c["motif"]["nodes"])
        parts.append(f"cell {c['width']}: {nodes}{' (stride 2)' if c['downsample'] else ''}")
    return " | ".join(parts)


def stage(ctx: dict) -> None:
    """Search; put the best spec in ``ctx["search_spec"]`` (and its config in ``ctx["search_config"]``)."""
    from snn_nas.mse.run import run_search

    cfg = search_config(ctx)
    s = run_search(cfg, command="neurosynth demo (search stage)")
    best = s["best"]
    ctx["search_spec"] = best["spec"]
    ctx["search_dir"] = Path(cfg.out)
    ctx["search_config"] = cfg
    m = best["metrics"]
    ctx.setdefault("report", []).extend([
        f"MSE-NAS search (GA, training-free RDM fitness, Loihi-deployable space) on digits: {s['evaluations']} "
        f"architectures in {s['search_seconds']:.1f} s",
        f"  best fitness (readout RDM-label CKA x participation ratio) {best['fitness']:.4f}, {m['params']} parameters, "
        f"{m['synops']:.0f} SynOps/sample",
        f"  network: {describe(best['spec'])}",
        f"  Loihi 2 estimate: {m.get('loihi_neurons')} neurons, {m.get('loihi_synapse_bytes')} B synaptic memory, "
        f"{m.get('loihi_cores')} cores (neurosynth.hardware.targets.loihi)",
        f"  search directory: {cfg.out} (best.json, archive.sqlite, plots/fitness.png, plots/pareto.png)",
    ])
