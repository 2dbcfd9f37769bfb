"""``neurosynth export nir --model RUN_DIR --out net.nir``: write a trained run as a NIR graph.

Writes ``net.nir`` (HDF5, via ``nir.write``, atomically) and ``net.nir.manifest.json`` next to it. With
``--verify N`` (default 8) the file is read back, rebuilt with :func:`from_nir`, and both models are run on
``N`` seeded random spike trains; the export fails unless the outputs are identical.
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
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError as e:
        raise UserError(f"--input-shape must be comma-separated integers like 1,8,8; got {text!r}") from e


def run(args) -> int:
    from neurosynth.rundir import output_file

    with output_file(args.out, force=getattr(args, "force", False)):
        return _run(args)


def _run(args) -> int:
    from pathlib import Path

    import torch

    from neurosynth.errors import UserError
    from neurosynth.hardware.nir import DEFAULT_DT, from_nir, read_nir, to_nir, write_nir
    from neurosynth.io import write_json
    from neurosynth.rundir import load_run, manifest

    out = Path(args.out)
    if out.exists() and out.is_dir():
        raise UserError(f"--out {out} is a directory; give a file name such as {out / 'net.nir'}")
    dt = DEFAULT_DT if args.dt is None else float(args.dt)
    model, spec, _ = load_run(args.model)
    shape = _shape(args.input_shape) or (tuple(spec["input_shape"]) if spec.get("input_shape") else None)
    try:
        graph = to_nir(model, shape, dt=dt, allow_nonstandard_reset=args.allow_nonstandard_reset)
    except ValueError as e:
        raise UserError(f"cannot export {args.model} to NIR: {e}") from e
    in_shape = [int(s) for s in graph.nodes["input"].input_type["input"]]
    verify: dict = {"samples": 0}
    if args.verify > 0:
        # verify in a temp file first: nothing is left at --out unless the check passes
        import tempfile

        with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmpd:
            probe = write_nir(graph, Path(tmpd) / "probe.nir")
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
    results = {"file": str(out), "nodes": nodes, "edges": [list(e) for e in graph.edges], "dt": dt,
               "input_shape": in_shape, "verify": verify}
    config = {k: v for k, v in vars(args).items() if not k.startswith("_") and not callable(v)}
    write_json(out.with_name(out.name + ".manifest.json"), manifest(None, config, args.seed, results))
    chain = " -> ".join(nodes[k] for k in nodes)
    print(f"wrote {out}: {chain} (dt={dt:g} s)")
    if verify["samples"]:
        print(f"verified with neurosynth's own NIR reader: read back and re-run on {verify['samples']} random "
              "inputs, outputs identical")
    print(readers_message(graph))
    return 0


# NIR node types snnTorch 1.0's importer (snntorch.import_nir.import_from_nir) builds modules for; a recurrent
# subgraph counts when its neuron is LIF/CubaLIF (see tests/hardware/test_nir*.py for the checked equivalences)
SNNTORCH_READS = {"Input", "Output", "Affine", "Linear", "Conv2d", "Flatten", "AvgPool2d", "IF", "LIF", "CubaLIF",
                  "NIRGraph"}


def _node_types(graph) -> set[str]:
    found = set()
    for node in graph.nodes.values():
        found.add(type(node).__name__)
        if hasattr(node, "nodes"):
            found |= _node_types(node)
    return found


def readers_message(graph) -> str:
    """Which tools can read the file: neurosynth always; snnTorch 1.0 only without the node types it lacks."""
    missing = sorted(_node_types(graph) - SNNTORCH_READS)
    if not missing:
        return ("readers: neurosynth (neurosynth.hardware.nir.from_nir) and snnTorch 1.0 "
                "(snntorch.import_nir.import_from_nir); other NIR tools: check the primitives they support")
    return (f"readers: neurosynth (neurosynth.hardware.nir.from_nir); snnTorch 1.0 cannot import this file (no "
            f"importer for NIR {', '.join(missing)}); other NIR tools: check the primitives they support")
