"""``torchrun ... -m neurosynth.apps.ddp``: data-parallel (DDP) training of a spiking network.

    torchrun --standalone --nproc_per_node 2 -m neurosynth.apps.ddp --out runs/ddp \
        --epochs 5 --batch-size 128 [--device cuda --amp bf16] [--data data.pt] [--arch arch.json --init model.pt]

``--batch-size`` is the global batch; each of the N processes gets ``batch_size / N`` samples per step. Rank 0
writes the run directory (model.pt, arch.json, metrics.json, manifest.json). The library it drives is
:mod:`neurosynth.distributed`.
"""

from __future__ import annotations

import argparse
import sys

import torch

from neurosynth.distributed import cleanup, fit_distributed, init_distributed


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="torchrun ... -m neurosynth.apps.ddp",
                                description="Data-parallel training (DDP) of a spiking network; launch with torchrun.")
    p.add_argument("--out", required=True, help="run directory (written by rank 0)")
    p.add_argument("--data", default=None, help="tensor file {'x': [T, N, ...], 'y': [N]} (default: digits)")
    p.add_argument("--arch", default=None, help="ArchSpec JSON (default: digits MLP from --hidden)")
    p.add_argument("--init", default=None, help="state_dict (model.pt) to start from")
    p.add_argument("--hidden", default="128")
    p.add_argument("--T", type=int, default=20)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128, help="global batch size (split across processes)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--loss", default="rate_ce")
    p.add_argument("--scheduler", default="cosine", choices=["cosine", "none"])
    p.add_argument("--device", default="auto", help="cpu | cuda | auto")
    p.add_argument("--amp", default=None, choices=[None, "bf16"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    return p


def _tensor_batches(path: str, batch_size: int):
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or "x" not in obj or "y" not in obj:
        raise ValueError(f"{path} must hold a dict {{'x': tensor [T, N, ...], 'y': tensor [N]}}")
    x, y = obj["x"], obj["y"]
    return [(x[:, i:i + batch_size], y[i:i + batch_size]) for i in range(0, y.shape[0], batch_size)]


def main(argv: list[str] | None = None) -> int:
    import time
    from pathlib import Path

    from neurosynth.apps.cli import apply_threads
    from neurosynth.arch import build, mlp_spec
    from neurosynth.io import read_json
    from neurosynth.rundir import RunDir
    from neurosynth.utils import seed_all

    args = build_parser().parse_args(argv)
    apply_threads(max(1, args.threads))
    info = init_distributed(args.device)
    try:
        seed_all(args.seed)
        spec = read_json(args.arch) if args.arch else mlp_spec(64, [int(h) for h in args.hidden.split(",") if h], 10)
        model = build(spec)
        if args.init:
            model.load_state_dict(torch.load(args.init, map_location="cpu", weights_only=True))
        test = None
        if args.data:
            train = _tensor_batches(args.data, args.batch_size)
        else:
            from neurosynth.datasets.digits import digits_loaders

            train, test = digits_loaders(T=args.T, batch_size=args.batch_size, seed=args.seed)
        t0 = time.perf_counter()
        model, hist = fit_distributed(model, train, info, epochs=args.epochs, lr=args.lr, optimizer=args.optimizer,
                                      loss=args.loss, amp=args.amp,
                                      scheduler=None if args.scheduler == "none" else args.scheduler)
        seconds = time.perf_counter() - t0
        if info.is_main:
            results = {"world_size": info.world_size, "backend": info.backend, "device": info.device,
                       "global_batch_size": args.batch_size, "train_seconds": seconds, "history": hist}
            if test is not None:
                from neurosynth.training import evaluate

                ev = evaluate(model, test, args.loss, device=info.device)
                # no validation split here: the model of the last of --epochs is tested, once; nothing was chosen
                results.update(dataset="digits", test_accuracy=ev["accuracy"], test_loss=ev["loss"],
                               selection_rule="last", chosen_epoch=args.epochs)
            with RunDir.create(Path(args.out), kind="train") as run:
                run.save_model(model.cpu(), spec)
                run.write_json("metrics.json", results)
                config = {k: v for k, v in vars(args).items()}
                run.write_manifest([sys.executable, "-m", "neurosynth.apps.ddp", *(argv or sys.argv[1:])],
                                   config, args.seed, {k: v for k, v in results.items() if k != "history"})
                acc = (f"; digits test accuracy {results['test_accuracy']:.4f} (the last epoch, read once)"
                       if "test_accuracy" in results else "")
                print(f"trained on {info.world_size} process(es) ({info.backend or 'single'}, {info.device}) in "
                      f"{seconds:.1f} s{acc}; run directory {args.out}")
    finally:
        cleanup(info)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
