"""The Loihi stage of ``neurosynth demo``: export the trained digits model (the searched network, when the
search stage ran), run it in Lava fixed point and report Lava's accuracy next to torch's.

``stage(ctx)`` reads ``ctx["run_dir"]`` (a digits run trained with the Loihi family, e.g.
``neurosynth train --loihi``), writes ``ctx["out"] / "loihi" / {net.h5, net.manifest.json, net.png}`` and
appends lines to ``ctx["report"]``. ``ctx["quick"]`` verifies on 40 test samples instead of 100.
"""

from __future__ import annotations

from pathlib import Path

QUICK_SAMPLES = 40
FULL_SAMPLES = 100


def stage(ctx: dict) -> None:
    import argparse

    from neurosynth.apps.cli.export_loihi import _first, _run_config, searched, verification_data
    from neurosynth.hardware.lava.compat import import_lava
    from neurosynth.hardware.lava.ir import LoihiExportError
    from neurosynth.hardware.lava.verify import export_verified, exportable
    from neurosynth.io import write_json
    from neurosynth.rundir import load_run, manifest

    report: list[str] = ctx.setdefault("report", [])
    run_dir = Path(ctx["run_dir"])
    out_dir = Path(ctx["out"]) / "loihi"
    n = QUICK_SAMPLES if ctx.get("quick") else FULL_SAMPLES
    model, spec, _ = load_run(run_dir)
    input_shape = tuple(spec.get("input_shape") or ()) or None
    try:
        net = exportable(model, input_shape)
    except LoihiExportError as e:
        report.append(f"Loihi export: skipped, the model cannot run on Loihi exactly: {e}")
        return
    import_lava("the Loihi demo stage")
    cfg = _run_config(run_dir)
    steps = int(_first(cfg, ("T", "steps", "time_steps", "num_steps"), 20))
    encoder = _first(cfg, ("encoder", "encoding"), "rate")
    seed = int(ctx.get("seed", 0))
    if searched(cfg):  # a searched network: its own dataset's *test* split
        from snn_nas.mse.data import test_samples

        x, y = test_samples(cfg.get("dataset", "digits"), n, T=steps, encoding=encoder,
                            conv=len(net.input_shape) == 3, seed=seed)
        n = int(y.shape[0])
    else:
        x, y = verification_data(net.input_shape, n, dataset="digits", steps=steps, encoder=encoder, seed=seed)
    path = out_dir / "net.h5"
    rep = export_verified(model, path, x, y, input_shape=input_shape, modes=("fixed",), net=net, progress=True)
    args = argparse.Namespace(run_dir=str(run_dir), samples=n, steps=steps, encoder=encoder)
    write_json(out_dir / "net.manifest.json", manifest("neurosynth demo (loihi stage)", vars(args), seed, rep))
    written = f"netx file {path}" if rep["passed"] else f"verification FAILED, {path} removed"
    report.append(f"Loihi 2 via Lava fixed point ({written}): {len(net.stages)} layers, {n} digits test samples")
    if "accuracy_torch" in rep:
        report.append(f"  accuracy on the same {n} test samples: torch float {rep['accuracy_torch']:.4f} | Lava fixed "
                      f"point {rep['accuracy_lava_fixed']:.4f} (gap {rep['accuracy_gap_pp']:+.2f} pp)")
        ctx["lava_accuracy"] = rep["accuracy_lava_fixed"]
    report.append(f"  Lava fixed point == NeuroSynth integer reference bit for bit: {rep['fixed_exact']}")
