"""``neurosynth export loihi --model RUN_DIR --out net.h5 [--verify N]``.

1. Loads the run directory (``arch.json`` + ``model.pt``, no code executed) and checks that Loihi can run
   the model exactly; anything it cannot (subtract reset, ALIF, pooling, biases, out-of-range weights...)
   is refused *before any file is written*, with the layer and the fix (exit status 2).
2. Writes the lava-dl netx HDF5 file (atomically) and reads it back.
3. With ``--verify N``: runs N test samples (digits, spike-encoded as in training) through the torch model,
   Lava float (spikes must equal torch's, layer by layer) and Lava fixed point built *from the written file*
   (spikes must equal our integer reference bit for bit) and reports the accuracies. A failed check removes
   the HDF5 file and exits with status 1.
4. Writes ``<out>.manifest.json`` (command, config, seed, versions, results) and ``<out>.png`` (spike counts
   per layer, torch vs Lava).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "loihi", help="export a run to a Loihi 2 netx HDF5 file and verify it in Lava's simulator",
        description="Export a trained run directory to lava-dl netx HDF5 (Loihi 2) and verify it in Lava.")
    p.add_argument("--model", required=True, help="run directory (arch.json + model.pt)")
    p.add_argument("--out", required=True, help="netx HDF5 file to write (e.g. net.h5)")
    p.add_argument("--verify", type=int, default=0, metavar="N",
                   help="verify on N test samples in Lava float and fixed point (default 0: no verification)")
    p.add_argument("--dataset", default=None, help="dataset of the verification samples (default: the run's, "
                                                   "else digits; other names verify on random spikes)")
    p.add_argument("--data-root", default=None, help="folder of an event dataset (shd, dvs_gesture, ...) to verify on "
                                                     "(default: the run's data_root)")
    p.add_argument("--steps", type=int, default=None, help="time steps per sample (default: the run's, else 20)")
    p.add_argument("--encoder", default=None, help="spike encoder (default: the run's, else rate)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data split and the spike encoding")
    p.add_argument("--modes", default="float,fixed", help="Lava modes to verify (default float,fixed)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    return p


def _run_config(run_dir: Path) -> dict:
    from neurosynth.io import read_json

    cfg: dict = {}
    man = run_dir / "manifest.json"
    if man.exists():
        cfg = dict(read_json(man).get("config") or {})
    return cfg


def _first(cfg: dict, keys: tuple[str, ...], default):
    for k in keys:
        if cfg.get(k) is not None:
            return cfg[k]
    return default


def verification_data(input_shape: tuple[int, ...], n: int, *, dataset: str = "digits", steps: int = 20,
                      encoder: str = "rate", seed: int = 0, data_root=None, spatial_factor: float | None = None):
    """``(spikes [T, N, *input_shape], labels or None)``: the first ``n`` test samples of a static dataset whose
    sample shape the model takes (digits, ...) encoded with a generator seeded with ``seed``; with ``data_root``, the
    first ``n`` test samples of that event dataset (``shd``, ``dvs_gesture``, ...) binned into ``steps`` binary
    frames; otherwise Bernoulli(0.2) spikes and no labels."""
    import torch

    from neurosynth.datasets import DATASETS, load

    g = torch.Generator()
    g.manual_seed(int(seed))
    shape = tuple(input_shape)
    entry = DATASETS.get(dataset) if dataset in DATASETS else None
    if data_root is not None and entry is not None and entry.kind == "events":
        kw = {"T": int(steps), "binary": True}
        if spatial_factor is not None:
            kw["spatial_factor"] = float(spatial_factor)
        test = load(dataset, data_root, "test", **kw)
        pairs = [test[i] for i in range(min(int(n), len(test)))]
        x = torch.stack([torch.as_tensor(p[0]) for p in pairs], 1).float()
        if tuple(x.shape[2:]) != shape:
            raise ValueError(f"{dataset} samples have shape {tuple(x.shape[2:])} but the model takes {shape}")
        return x, torch.as_tensor([int(p[1]) for p in pairs])
    if entry is not None and entry.kind == "static" and entry.matches(shape) and (data_root or not entry.needs_root):
        from neurosynth.encoding import encode

        te = load(dataset, data_root, "test", T=None, flatten=len(shape) == 1, limit=max(1, int(n)))
        xte, yte = te.images[:n].float() / (255.0 if te.images.dtype == torch.uint8 else 1.0), te.targets[:n]
        if encoder == "current":
            raise ValueError("Loihi inputs are spikes: the run used analog 'current' input; retrain with a spike "
                             "encoder (e.g. --encoder rate)")
        return encode(encoder, xte, int(steps), generator=g).float(), yte
    return (torch.rand((int(steps), n, *shape), generator=g) < 0.2).float(), None


def plot_loihi_check(report: dict, path: Path | None = None):
    """Spikes per layer (torch = Lava float) and the fraction of Lava fixed-point spikes equal to torch's, per
    layer. Returns the figure; writes a PNG when given ``path``."""
    from neurosynth.plots import figure, finish

    names = report.get("layers", [])
    fig, ax = figure(figsize=(6.5, 3.6))
    x = list(range(len(names)))
    handles = []
    if "float_spikes" in report:
        handles.append(ax.bar(x, [report["float_spikes"][n] for n in names], color="tab:blue",
                              label="spikes (torch = Lava float)"))
    agree = report.get("fixed_vs_torch_spike_agreement", {})
    ax2 = ax.twinx()
    handles += ax2.plot(x, [agree.get(n, float("nan")) for n in names], "o-", color="tab:red",
                        label="Lava fixed = torch (fraction of spikes)")
    ax2.set_ylim(0, 1.05)
    ax.set_xticks(x, names)
    ax.set_xlabel("layer")
    ax.set_ylabel("spikes (torch = Lava float)")
    ax2.set_ylabel("fixed-point spike agreement")
    acc = [f"{k.replace('accuracy_', '')}={v:.3f}" for k, v in report.items() if k.startswith("accuracy_") and
           isinstance(v, float)]
    ax.set_title("Loihi export check" + (": accuracy " + " ".join(acc) if acc else ""), fontsize=9)
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8)
    return finish(fig, path)


def run(args) -> int:
    from neurosynth.rundir import output_file

    out = Path(args.out)
    # the three files it writes: the network, its manifest and the check plot (--out net.png would collide)
    side = (out.with_name(out.stem + ".manifest.json"), *((out.with_suffix(".png"),) if args.verify else ()))
    with output_file(out, force=getattr(args, "force", False), side=side):
        return _run(args)


def searched(cfg: dict) -> bool:
    """Whether a run's config is a searched network (``search mse --target T`` with a lowering): it is verified on
    its own dataset's test split."""
    from neurosynth.hardware.targets import TARGETS

    name = cfg.get("target")
    return name in TARGETS and TARGETS.get(name).lowers


def _run(args) -> int:
    from neurosynth.errors import UserError
    from neurosynth.hardware.lava.compat import import_lava
    from neurosynth.hardware.lava.ir import LoihiExportError
    from neurosynth.hardware.lava.verify import export_verified, exportable
    from neurosynth.io import require_free_space, require_memory, write_json
    from neurosynth.rundir import load_run, manifest, model_file_bytes, require_finite

    run_dir, out = Path(args.model), Path(args.out)
    if args.verify < 0:
        raise UserError(f"--verify must be >= 0; got {args.verify}")
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    if not set(modes) <= {"float", "fixed"}:
        raise UserError(f"--modes takes 'float' and/or 'fixed'; got {args.modes!r}")
    model, spec, _ = load_run(run_dir)
    require_finite(model, run_dir, "a Loihi export")
    require_free_space(out.parent, model_file_bytes(model), f"writing {out}")  # h5py crashes on a full disk
    input_shape = tuple(spec.get("input_shape") or ()) or None
    try:
        net = exportable(model, input_shape)
    except LoihiExportError as e:
        hint = "" if spec.get("target") == "loihi" else (
            "; a network Loihi 2 runs exactly is trained with `neurosynth train --loihi --out DIR` (or searched with "
            "`neurosynth search mse --target loihi`)")
        raise UserError(f"{run_dir} cannot be exported to Loihi: {e}{hint}") from e
    if args.verify:
        import_lava("neurosynth export loihi --verify")
    cfg = _run_config(run_dir)
    dataset = args.dataset or _first(cfg, ("dataset", "data"), "digits")
    steps = args.steps or int(_first(cfg, ("T", "steps", "time_steps", "num_steps"), 20))
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be >= 1; got {args.steps}")
    if args.verify:  # the spike trains of the verification, run through torch and two Lava simulations
        n_in = 1
        for d in net.input_shape:
            n_in *= int(d)
        require_memory(4 * 4 * steps * args.verify * n_in, f"verifying on {args.verify} samples of {steps} steps",
                       "use a smaller --steps or --verify")
    encoder = args.encoder or _first(cfg, ("encoder", "encoding"), "rate")
    data_root = args.data_root or cfg.get("data_root")
    size = cfg.get("size")  # the DVS example's frame side: tonic downsampling 128 -> size
    config = {"model": str(run_dir), "out": str(out), "verify": args.verify, "dataset": dataset, "steps": steps,
              "encoder": encoder, "modes": list(modes), "data_root": None if data_root is None else str(data_root)}
    x = y = None
    if args.verify:
        try:
            if searched(cfg):  # a searched network (search mse --target loihi): its dataset's own test split
                from snn_nas.mse.data import test_samples

                x, y = test_samples(dataset, args.verify, T=steps, encoding=encoder,
                                    conv=len(net.input_shape) == 3, seed=args.seed)
            else:
                x, y = verification_data(net.input_shape, args.verify, dataset=dataset, steps=steps,
                                         encoder=encoder, seed=args.seed, data_root=data_root,
                                         spatial_factor=None if size is None else int(size) / 128)
        except (ValueError, OSError) as e:
            raise UserError(str(e)) from e
    report = export_verified(model, out, x, y, input_shape=input_shape, modes=modes, net=net, progress=True)
    results: dict = {"layers": report["netx_layers"]}
    if args.verify:
        results["verification"] = {k: v for k, v in report.items() if k not in ("netx_layers", "netx_file")}
    failed = not report["passed"]
    man_path = out.with_name(out.stem + ".manifest.json")
    write_json(man_path, manifest(None, config, args.seed, results))
    rep = results.get("verification")
    if rep:
        plot_loihi_check(rep, out.with_suffix(".png"))
        print(f"float: Lava spikes == torch spikes on every layer: {rep.get('float_exact')}  "
              f"(mismatches {rep.get('float_mismatches')})")
        print(f"fixed: Lava == integer reference bit for bit: {rep.get('fixed_exact')}  "
              f"(mismatches {rep.get('fixed_mismatches')})")
        if rep.get("readout") == "voltage":
            print(f"voltage readout (v after the last step): float |Lava - torch| <= "
                  f"{rep.get('float_readout_max_abs_diff', float('nan')):.3g}, fixed mismatches "
                  f"{rep.get('fixed_readout_mismatches')}")
        if "accuracy_torch" in rep:
            print(f"accuracy on {rep['samples']} samples: torch {rep['accuracy_torch']:.4f}  "
                  f"Lava float {rep.get('accuracy_lava_float', float('nan')):.4f}  "
                  f"Lava fixed {rep.get('accuracy_lava_fixed', float('nan')):.4f}")
    if failed:
        print(f"verification FAILED; {out} was not written (details in {man_path})")
        return 1
    print(f"wrote {out} ({len(report['netx_layers'])} layers) and {man_path}")
    return 0
