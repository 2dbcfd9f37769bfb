"""``neurosynth energy --model RUN_DIR``: operation counts and energy per inference, SNN vs the equivalent ANN.

Counts follow NeuroBench's definitions (``neurosynth.hardware.energy.counters``); energies use published
per-operation costs (``neurosynth.hardware.energy.cost_models``). Inputs are the run's own test data when
its manifest names the ``digits`` dataset, else a tensor file given with ``--inputs``. Writes
``RUN_DIR/energy.json`` (or ``--out``) with the counts, every estimate, the cost models with their sources and
a manifest, plus ``plots/energy.png`` next to it.
"""

from __future__ import annotations

import argparse

DEFAULT_SNN_COST = "loihi"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "energy", help="count synaptic ops / neuron updates and estimate energy per inference (SNN vs ANN)",
        description="Count operations per inference (NeuroBench definitions) on real inputs and price them: the "
                    "SNN on Loihi vs the same network as a dense ANN at a 45 nm FP32 MAC cost.")
    p.add_argument("--model", required=True, metavar="RUN_DIR", help="run directory (arch.json + model.pt)")
    p.add_argument("--samples", type=int, default=256, help="number of inputs to average over (default 256)")
    p.add_argument("--inputs", default=None,
                   help="tensor file [T, N, ...] (torch.save, or a dict with key 'x'); default: the run's test set")
    p.add_argument("--out", default=None, help="JSON file to write (default RUN_DIR/energy.json, replaced on each run; "
                                               "an --out file is never overwritten without --force)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file (and its plots/energy.png)")
    p.add_argument("--snn-cost", default=None, help="cost model for the SNN (loihi, loihi2, cmos45_fp32, ...; default: "
                                                    "the one of the run's hardware target, else loihi)")
    p.add_argument("--ann-cost", default="cmos45_fp32", help="cost model for the equivalent ANN")
    p.add_argument("--seed", type=int, default=None, help="input encoding seed (default: the run's seed)")
    p.add_argument("--no-progress", action="store_true")
    return p


def _inputs(args, run_path, manifest: dict):
    import torch

    from neurosynth.errors import UserError

    if args.inputs:
        try:
            obj = torch.load(args.inputs, map_location="cpu", weights_only=True)
        except FileNotFoundError as e:
            raise UserError(f"--inputs {args.inputs} does not exist") from e
        except Exception as e:
            raise UserError(f"cannot load --inputs {args.inputs} ({e}); save a tensor [T, N, ...] with torch.save") from e
        x = obj.get("x") if isinstance(obj, dict) else obj
        if not isinstance(x, torch.Tensor) or x.dim() < 3:
            raise UserError(f"--inputs must hold a time-first tensor [T, N, ...] (or a dict with key 'x'); "
                            f"got {type(x).__name__}{tuple(x.shape) if isinstance(x, torch.Tensor) else ''}")
        return [(x.float(),)], f"file {args.inputs}"
    cfg = manifest.get("config") or {}
    if cfg.get("dataset") == "digits":
        from neurosynth.datasets.digits import digits_loaders

        seed = int(args.seed if args.seed is not None else manifest.get("seed") or 0)
        _, test = digits_loaders(T=int(cfg.get("T", 20)), batch_size=64, seed=seed,
                                 encoder=cfg.get("encoder", "rate"))
        return test, f"digits test split, encoder={cfg.get('encoder', 'rate')}, T={cfg.get('T', 20)}"
    from neurosynth.datasets import DATASETS

    entry = DATASETS.get(cfg["dataset"]) if cfg.get("dataset") in DATASETS else None
    if entry is not None and entry.modality == "audio" and cfg.get("data_root"):  # examples/train_shd.py runs
        from torch.utils.data import DataLoader

        from neurosynth.datasets import collate_time_first, load

        if cfg.get("input"):  # the run recorded its input pipeline (binning, channels, onset alignment)
            from neurosynth.apps.recipes.audio import AudioInput, load_audio

            inp = AudioInput.from_dict(cfg["input"]).replace(binary=bool(cfg.get("loihi")))
            test = load_audio(entry.name, cfg["data_root"], "test", inp, **entry.offline)
        else:
            test = load(entry.name, cfg["data_root"], "test", T=int(cfg.get("T", entry.default_T)),
                        binary=bool(cfg.get("loihi")), **entry.offline)
        return (DataLoader(test, batch_size=64, collate_fn=collate_time_first),
                f"SHD-layout test split in {cfg['data_root']}, T={cfg.get('T', 100)}")
    raise UserError(f"{run_path} does not say which dataset it was trained on (no digits config in manifest.json); "
                    "pass --inputs FILE with a time-first tensor [T, N, ...] of representative inputs")


def _fmt_j(j: float) -> str:
    for unit, scale in (("mJ", 1e-3), ("uJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12)):
        if abs(j) >= scale:
            return f"{j / scale:.3g} {unit}"
    return f"{j:.3g} J"


def _table(report: dict, samples: int, source: str) -> str:
    c = report["counts"]
    lines = [f"per inference, mean over {samples} samples ({source}), T={c['timesteps']} steps", ""]
    rows = [("synaptic ops (spike-triggered ACs)", f"{c['syn_ops']:,.0f}"),
            ("effective MACs (real-valued inputs)", f"{c['eff_macs']:,.0f}"),
            ("dense synaptic ops (all T steps)", f"{c['dense_ops']:,.0f}"),
            ("equivalent ANN MACs (one pass)", f"{c['ann_macs']:,}"),
            ("neuron updates", f"{c['neuron_updates']:,.0f}"),
            ("spikes", f"{c['spikes']:,.1f}"),
            ("activation sparsity", f"{c['activation_sparsity']:.4f}"),
            ("connection sparsity", f"{c['connection_sparsity']:.4f}"),
            ("parameter memory", f"{c['param_bytes']:,} B")]
    lines += [f"  {k:<38}{v:>16}" for k, v in rows]
    lines += ["", f"  {'system':<22}{'cost model':<14}{'energy/inference':>18}  note"]
    for est, label in [(report["snn"], "SNN"), *[(o, "SNN") for o in report["snn_other_cost_models"]],
                       (report["ann"], "ANN (dense, 1 pass)")]:
        if est["complete"]:
            val, note = _fmt_j(est["total_j"]), ""
        elif not est["terms_j"]:
            val, note = "n/a", "no published per-op energy"
        else:
            val, note = ">= " + _fmt_j(est["total_j"]), "unpriced: " + ", ".join(est["unpriced"])
        lines.append(f"  {label:<22}{est['cost_model']:<14}{val:>18}  {note}")
    if report["ann_over_snn"] is not None:
        lines.append("\n  " + energy_sentence(report["ann_over_snn"], report["snn"]["cost_model"],
                                               report["ann"]["cost_model"]))
    return "\n".join(lines)


def energy_sentence(ann_over_snn: float, snn_model: str, ann_model: str) -> str:
    """The comparison in words, larger side first: "the SNN uses 33.6x the energy of the ANN" (not "ratio 0.0298x")."""
    r = float(ann_over_snn)
    where = f"({snn_model} for the SNN, {ann_model} for the ANN)"
    if r <= 0:
        return f"the ANN's estimate is 0 J {where}"
    if r < 1:
        return f"the SNN uses {1 / r:.3g}x the energy of the ANN per inference {where}"
    return f"the SNN uses 1/{r:.3g} of the energy of the ANN per inference (the ANN uses {r:.3g}x) {where}"


def plot_energy(report: dict, counts, path=None):
    """Synaptic operations per layer (SNN effective ops next to the one-pass ANN's MACs) and the energy estimate
    per system and cost model. Returns the figure; writes a PNG when given ``path``."""
    import numpy as np

    from neurosynth.plots import figure, finish

    fig, (a, b) = figure(1, 2, figsize=(11, 3.8))
    syn = [layer for layer in counts.layers if layer.kind == "synapse"]
    x = np.arange(len(syn))
    w = 0.38
    snn = [(layer.ac_ops + layer.mac_ops) / counts.samples for layer in syn]
    ann = [layer.dense_ops_per_step for layer in syn]
    a.bar(x - w / 2, snn, w, color="C0", label="SNN: effective ops (all T steps)")
    a.bar(x + w / 2, ann, w, color="C1", label="ANN: MACs (one pass)")
    a.set_xticks(x, [f"{layer.name}\n{layer.type}" for layer in syn], fontsize=8)
    a.set_xlabel("layer")
    a.set_ylabel("operations per inference")
    a.set_title("synaptic operations per layer")
    a.legend(fontsize=8)
    ests = [report["snn"], *report["snn_other_cost_models"], report["ann"]]
    ests = [e for e in ests if e["terms_j"]]
    vals = [e["total_j"] * 1e9 for e in ests]
    bars = b.bar(range(len(ests)), vals, color=["C0" if e["system"] == "snn" else "C1" for e in ests])
    b.bar_label(bars, [f"{v:.3g}" for v in vals], fontsize=8)
    b.set_xticks(range(len(ests)), [f"{e['system'].upper()}\n{e['cost_model']}" for e in ests], fontsize=8)
    b.set_xlabel("system / cost model")
    b.set_ylabel("nJ per inference (priced terms)")
    b.set_title("energy estimate")
    b.margins(y=0.15)
    return finish(fig, path)


def run(args) -> int:
    import shutil
    from pathlib import Path

    from neurosynth.errors import UserError
    from neurosynth.hardware.energy import COST_MODELS, compare, count_ops_loader
    from neurosynth.io import read_json, stale_temp_files, write_json
    from neurosynth.rundir import check_output, check_run, load_run, locked, manifest, output_file

    if args.samples < 1:
        raise UserError(f"--samples must be >= 1; got {args.samples}")
    for name in (args.snn_cost, args.ann_cost):
        if name is not None and name not in COST_MODELS:
            raise UserError(f"unknown cost model {name!r}; choose from {', '.join(COST_MODELS.names())}")
    run_path = Path(args.model)
    check_run(run_path)  # before taking its lock: a missing RUN_DIR is not created
    if args.out:  # the one rule for a file a command writes, checked before the work
        out = check_output(args.out, force=args.force)
        plot = check_output(out.parent / "plots" / "energy.png", force=args.force, what="the plot written with --out,", option="--out")
    # hold the run's writer lock for the whole command: a `train` committing a new model into RUN_DIR while we
    # count would otherwise get the old model's figures written into it
    with locked(run_path):
        model, spec, _ = load_run(run_path)
        if args.snn_cost is None:  # the energy model of the run's hardware target (neurosynth.hardware.targets)
            from neurosynth.hardware.targets import target_of

            args.snn_cost = target_of(spec).cost_model or DEFAULT_SNN_COST
        man = read_json(run_path / "manifest.json") if (run_path / "manifest.json").exists() else {}
        loader, source = _inputs(args, run_path, man)
        try:
            counts = count_ops_loader(model, loader, max_samples=args.samples, progress=not args.no_progress)
        except ValueError as e:
            raise UserError(f"cannot count operations of {run_path}: {e}") from e
        report = compare(counts, args.snn_cost, args.ann_cost)
        config = {k: v for k, v in vars(args).items() if not k.startswith("_") and not callable(v)}
        doc = {**report, "inputs": source, "layers": counts.to_dict()["layers"],
               "manifest": manifest(None, config, args.seed, {"ann_over_snn": report["ann_over_snn"]})}
        if not args.out:  # the run's own result: replaced on each run (both files atomically, the JSON last)
            out, plot = run_path / "energy.json", run_path / "plots" / "energy.png"
            for stale in [*stale_temp_files(out), *stale_temp_files(plot)]:  # of a killed run (we hold the lock)
                stale.unlink(missing_ok=True)
            plot.parent.mkdir(parents=True, exist_ok=True)
            plot_energy(report, counts, plot)
            write_json(out, doc)
        else:
            made = not plot.parent.exists()
            try:
                with output_file(out, force=args.force, side=(plot,)) as out:
                    plot.parent.mkdir(parents=True, exist_ok=True)
                    plot_energy(report, counts, plot)
                    write_json(out, doc)
            except BaseException:
                if made:  # leave nothing behind: the plots/ folder this command created
                    shutil.rmtree(plot.parent, ignore_errors=True)
                raise
    print(_table(report, counts.samples, source))
    print(f"\nwrote {out} and {plot}")
    return 0
