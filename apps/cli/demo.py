"""``neurosynth demo``: the embedded end-to-end job on sklearn's digits (offline, real data).

Stages run in order and share a context dict ``ctx`` (``out``, ``seed``, ``quick``, ``report`` lines, and what
earlier stages produced, e.g. ``run_dir``). Each stage is ``module:function``; a stage whose module is not
installed is skipped with a note.
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

STAGES: list[tuple[str, str]] = [
    ("search", "neurosynth.apps.demo.search:stage"),
    ("train", "neurosynth.apps.cli.demo:train_stage"),
    ("loihi", "neurosynth.apps.demo.loihi:stage"),
]


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("demo", help="end-to-end demo on digits: search a Loihi-deployable network, train it, "
                                           "run it in Lava fixed point",
                              description=__doc__)
    p.add_argument("--out", default="runs/demo", help="output directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--quick", action="store_true", help="a much smaller run (smoke test)")
    p.add_argument("--stages", default=",".join(s for s, _ in STAGES), help="comma-separated subset of stages")
    return p


def train_stage(ctx: dict) -> None:
    """Train the network the search stage found (Loihi-deployable: 8-bit QAT, zero reset, one-step delays) into
    ``OUT/train``. Without a search stage, train the fixed Loihi-compatible MLP 64-128-10 instead."""
    if ctx.get("search_spec") is not None:
        return _train_searched(ctx)
    from .train import train_digits

    try:  # the hardware package (Loihi target) is installed
        from neurosynth.hardware.targets import loihi as _loihi  # noqa: F401

        loihi = True
    except ImportError:
        loihi = False
    cfg = {"out": str(ctx["out"] / "train"), "epochs": 2 if ctx["quick"] else ctx["epochs"], "T": 20,
           "hidden": "128", "seed": ctx["seed"], "no_progress": False, "loihi": loihi, "threads": 1}
    metrics = train_digits(cfg)
    ctx["run_dir"] = Path(cfg["out"])
    ctx["torch_accuracy"] = metrics["test_accuracy"]
    rates = ", ".join(f"layer {k}: {v:.3f}" for k, v in metrics["firing_rates"].items())
    ctx["report"] += [
        f"trained {'Loihi-compatible (8-bit QAT, zero reset, one-step delay) LIF' if loihi else 'LIF'} MLP 64-128-10 "
        f"on digits for {cfg['epochs']} epochs in {metrics['train_seconds']:.1f} s",
        f"  test accuracy (torch, float): {metrics['test_accuracy']:.4f} on {metrics['test_samples']} test images",
        f"  firing rates (spikes/neuron/step): {rates}",
        f"  run directory: {ctx['run_dir']} (model.pt, arch.json, metrics.json, manifest.json, plots/)",
    ]


def _train_searched(ctx: dict) -> None:
    import dataclasses

    from neurosynth.apps.demo.search import describe
    from snn_nas.mse.data import load_task
    from snn_nas.mse.run import train_best

    scfg = dataclasses.replace(ctx["search_config"], train_best=2 if ctx["quick"] else ctx["epochs"],
                               train_lr=1e-2)
    task = load_task("digits", T=scfg.T, conv=True, seed=scfg.seed, encoding=scfg.encoding)
    out = ctx["out"] / "train"
    m = train_best(ctx["search_spec"], task, scfg, out, command="neurosynth demo (train stage)")
    ctx["run_dir"] = out
    ctx["torch_accuracy"] = m["test_accuracy"]
    rates = ", ".join(f"{k}: {v:.3f}" for k, v in m.get("firing_rates", {}).items())
    ctx["report"] += [
        f"trained the searched network (Loihi-compatible: 8-bit QAT, zero reset, one-step delay) on digits "
        f"for {scfg.train_best} epochs in {m['train_seconds']:.1f} s: {describe(ctx['search_spec'])}",
        f"  test accuracy (torch, float): {m['test_accuracy']:.4f} on {m['test_samples']} test images",
        f"  firing rates (spikes/neuron/step): {rates}",
        f"  run directory: {out} (model.pt, arch.json = the plain SNN it lowers to, searched_spec.json, manifest.json)",
    ]


def run(args) -> int:
    from neurosynth.errors import UserError

    wanted = [s.strip() for s in args.stages.split(",") if s.strip()]
    known = [s for s, _ in STAGES]
    bad = [s for s in wanted if s not in known]
    if bad:
        raise UserError(f"unknown demo stage(s) {bad}; stages are {known}")
    from neurosynth.rundir import RunDir

    # The demo is one run directory built beside --out and swapped in when every stage is done; it continues
    # from the previous demo's outputs (the search stage resumes its archive), so an interrupted demo never
    # leaves a mix of old and new stages behind.
    with RunDir.create(args.out, kind="demo", resume=True) as rd:
        ctx = {"out": rd.path, "seed": args.seed, "quick": args.quick, "epochs": args.epochs, "report": []}
        timings = {}
        for name, target in STAGES:
            if name not in wanted:
                continue
            mod_name, fn_name = target.split(":")
            try:
                mod = importlib.import_module(mod_name)
            except ModuleNotFoundError as e:
                ctx["report"].append(f"[{name}] skipped: {e}")
                continue
            print(f"== demo stage: {name}", flush=True)
            t0 = time.perf_counter()
            getattr(mod, fn_name)(ctx)
            timings[name] = time.perf_counter() - t0
        report = [line.replace(str(rd.path), str(rd.final)) for line in ctx["report"]]
        rd.write_manifest(None, {"seed": args.seed, "quick": args.quick, "stages": wanted, "epochs": args.epochs},
                          args.seed, {"report": report, "stage_seconds": timings})
    print("\nNeuroSynth demo report")
    print("=" * 22)
    for line in report:
        print(line)
    print("stage times: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    print(f"outputs: {args.out}")
    return 0
