"""``neurosynth export nir --model RUN_DIR --out net.nir``: write a trained run as a NIR graph.

Writes ``net.nir`` (HDF5, via ``nir.write``, atomically) and ``net.nir.manifest.json`` next to it. With
``--verify N`` (default 8) the file is read back, rebuilt with :func:`from_nir`, and both models are run on
``N`` seeded random spike trains; the export fails unless the outputs are identical. ``--for`` picks the NIR form
(``portable``, the default, ``snntorch`` or ``norse``: where the factor tau/dt goes); the message then lists the
readers that run the file with identical spikes (docs/nir_interop.md).
"""

from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "nir", help="export a run directory to a NIR graph (.nir, HDF5)",
        description="Export a trained run directory to the Neuromorphic Intermediate Representation. Neurons map "
                    "with beta = 1 - dt/tau (snnTorch's convention); dt and the reset are stored in metadata.")
    p.add_argument("--model", required=True, metavar="RUN_DIR", help="run directory (arch.json + model.pt)")
    p.add_argument("--out", required=True, help="NIR file to write, e.g. net.nir")
    p.add_argument("--dt", type=float, default=None, help="time step in seconds (default 1e-4, snnTorch's)")
    p.add_argument("--input-shape", default=None,
                   help="per-sample input shape, comma separated (default: arch.json input_shape)")
    p.add_argument("--for", dest="form", default=None, metavar="READER",
                   choices=["portable", "snntorch", "norse"],
                   help="where the factor tau/dt goes: portable (default: folded into the weights where a layer has "
                        "one tau, what snnTorch 1.0 and Norse 1.1 both run), snntorch (r = tau/dt in every neuron), "
                        "norse (r = 1 in every LIF, factor in the weights); see docs/nir_interop.md")
    p.add_argument("--allow-nonstandard-reset", action="store_true",
                   help="export subtract/none resets anyway (NIR has none; kept in node metadata for neurosynth)")
    p.add_argument("--verify", type=int, default=8, metavar="N",
                   help="read the file back and compare outputs on N random inputs (0 to skip)")
    p.add_argument("--T", type=int, default=20, help="time steps of the verification inputs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    return p


def _shape(text: str | None):
    from neurosynth.errors import UserError

    if text is None:
        return None
    try:
        shape = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError as e:
        raise UserError(f"--input-shape must be comma-separated integers like 1,8,8; got {text!r}") from e
    if not shape or any(s < 1 for s in shape):
        raise UserError(f"--input-shape must be positive integers like 1,8,8; got {text!r}")
    return shape


def run(args) -> int:
    from pathlib import Path

    from neurosynth.errors import UserError
    from neurosynth.rundir import output_file

    if args.T < 1:
        raise UserError(f"--T must be >= 1 (time steps of the verification inputs); got {args.T}")
    out = Path(args.out)
    with output_file(out, force=getattr(args, "force", False), side=(out.with_name(out.name + ".manifest.json"),)):
        return _run(args)


def _run(args) -> int:
    from pathlib import Path

    import torch

    from neurosynth.errors import UserError
    from neurosynth.hardware.nir import (
        DEFAULT_DT,
        DEFAULT_FORM,
        from_nir,
        identical_readers,
        read_nir,
        to_nir,
        write_nir,
    )
    from neurosynth.io import write_json
    from neurosynth.rundir import load_run, manifest

    out = Path(args.out)
    if out.exists() and out.is_dir():
        raise UserError(f"--out {out} is a directory; give a file name such as {out / 'net.nir'}")
    dt = DEFAULT_DT if args.dt is None else float(args.dt)
    model, spec, _ = load_run(args.model)
    from neurosynth.io import require_free_space, require_memory
    from neurosynth.rundir import model_file_bytes, require_finite

    require_finite(model, args.model, "a NIR export")
    require_free_space(out.parent, 2 * model_file_bytes(model), f"writing {out}")  # h5py crashes on a full disk
    shape = _shape(args.input_shape) or (tuple(spec["input_shape"]) if spec.get("input_shape") else None)
    if args.input_shape is not None and spec.get("input_shape") and shape != tuple(spec["input_shape"]):
        raise UserError(f"--input-shape {','.join(map(str, shape))} does not match the model's input shape "
                        f"{','.join(map(str, spec['input_shape']))} (arch.json); leave --input-shape out")
    try:
        graph = to_nir(model, shape, dt=dt, allow_nonstandard_reset=args.allow_nonstandard_reset,
                       form=args.form or DEFAULT_FORM)
    except ValueError as e:
        raise UserError(f"cannot export {args.model} to NIR: {e}") from e
    in_shape = [int(s) for s in graph.nodes["input"].input_type["input"]]
    verify: dict = {"samples": 0}
    if args.verify > 0:
        n_in = 1
        for d in in_shape:
            n_in *= d
        require_memory(4 * 4 * args.T * args.verify * n_in, f"verifying on {args.verify} inputs of {args.T} steps",
                       "use a smaller --T or --verify")
        # verify in a temp file first: nothing is left at --out unless the check passes; the probe lives in the
        # system's temp folder, so a killed export leaves nothing beside --out
        import tempfile

        from neurosynth.rundir import kill_point

        with tempfile.TemporaryDirectory(prefix="neurosynth-nir-probe-") as tmpd:
            probe = write_nir(graph, Path(tmpd) / "probe.nir")
            kill_point("export-nir:probe")
            back = from_nir(read_nir(probe)).eval()
        gen = torch.Generator().manual_seed(args.seed)
        x = (torch.rand(args.T, args.verify, *in_shape, generator=gen) < 0.2).float()
        with torch.no_grad():
            a, b = model(x), back(x)
        same = bool(torch.equal(a, b))
        verify = {"samples": args.verify, "T": args.T, "identical": same,
                  "max_abs_diff": float((a - b).abs().max()) if a.shape == b.shape else None}
        if not same:
            raise UserError(f"verification failed: the model read back from NIR differs from {args.model} "
                            f"(max |diff| {verify['max_abs_diff']}); the file was not written")
    write_nir(graph, out)
    nodes = {k: type(v).__name__ for k, v in graph.nodes.items()}
    readers = identical_readers(graph)
    results = {"file": str(out), "nodes": nodes, "edges": [list(e) for e in graph.edges], "dt": dt,
               "input_shape": in_shape, "form": args.form or DEFAULT_FORM, "verify": verify,
               "identical_readers": ["neurosynth"] + [r for r, why in readers.items() if why is None],
               "not_identical": {r: why for r, why in readers.items() if why is not None}}
    config = {k: v for k, v in vars(args).items() if not k.startswith("_") and not callable(v)}
    write_json(out.with_name(out.name + ".manifest.json"), manifest(None, config, args.seed, results))
    chain = " -> ".join(nodes[k] for k in nodes)
    print(f"wrote {out}: {chain} (dt={dt:g} s)")
    if verify["samples"]:
        print(f"verified with neurosynth's own NIR reader: read back and re-run on {verify['samples']} random "
              "inputs, outputs identical")
    print(readers_message(graph, dt))
    return 0


def readers_message(graph, dt: float | None = None) -> str:
    """Which readers run the file with spikes identical to ours (measured: ``docs/nir_interop.md``;
    :func:`neurosynth.hardware.nir.export.identical_readers`), and why the others do not."""
    from neurosynth.hardware.nir.export import identical_readers

    readers = identical_readers(graph)
    ok = ["neurosynth"] + [r for r, why in readers.items() if why is None]
    norse = f" (Norse: norse.torch.from_nir(graph, dt={dt:g}))" if dt and readers.get("Norse 1.1.0") is None else ""
    lines = [f"runs identically in: {', '.join(ok)}{norse}"]
    for reader, why in readers.items():
        if why is not None:
            hint = " (try --for norse)" if reader.startswith("Norse") and "r != 1" in why else ""
            lines.append(f"not identical in {reader}: {why}{hint}")
    lines.append("other readers (Sinabs 3.1, Rockpool 3.1, Spyx 1.0): see docs/nir_interop.md")
    return "\n".join(lines)
