"""Demo stage for ``neurosynth demo``: a short MSE-NAS search on digits (well under a minute on one CPU)."""

from __future__ import annotations

from pathlib import Path


def stage(ctx: dict) -> None:
    """Search, then put the best spec in ``ctx["search_spec"]`` and its directory in ``ctx["search_dir"]``."""
    from snn_nas.mse.run import SearchConfig, run_search

    quick = bool(ctx.get("quick"))
    out = Path(ctx["out"]) / "search"
    cfg = SearchConfig(out=str(out), dataset="digits", T=4, population=4 if quick else 8,
                       generations=2 if quick else 4, strategy="ga", fitness="rdm", batch=32 if quick else 64,
                       seed=int(ctx.get("seed", 0)), resume=(out / "archive.sqlite").exists(), progress=True,
                       train_best=1 if quick else 5,
                       space={"widths": [4, 8], "stem_widths": [4, 8], "depth": [1, 2]} if quick else
                       {"widths": [4, 8, 16], "stem_widths": [4, 8], "depth": [1, 3]})
    s = run_search(cfg, command="neurosynth demo (search stage)")
    best = s["best"]
    ctx["search_spec"] = best["spec"]
    ctx["search_dir"] = out
    cells = best["spec"]["cells"]
    motifs = ", ".join(f"{c['motif']['template']}({len(c['motif']['nodes'])} neurons, w={c['width']})" for c in cells)
    ctx.setdefault("report", []).extend([
        f"MSE-NAS search (GA, training-free RDM fitness) on digits: {s['evaluations']} architectures in "
        f"{s['search_seconds']:.1f} s",
        f"  best fitness (readout RDM-label CKA × participation ratio) {best['fitness']:.4f}, {best['metrics']['params']} parameters, "
        f"motifs: {motifs}",
        f"  search directory: {out} (best.json, archive.sqlite, plots/fitness.png, plots/pareto.png)",
    ])
    trained = s.get("results", {}).get("best_model")
    if trained:
        ctx["report"].append(
            f"  best searched network trained {trained['epochs']} epochs: test accuracy {trained['test_accuracy']:.4f} "
            f"({trained['train_seconds']:.1f} s; run directory {trained['dir']})")
