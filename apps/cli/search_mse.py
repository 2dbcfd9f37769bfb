"""``neurosynth search mse``: multi-scale evolutionary architecture search with a training-free RDM fitness."""

from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    from neurosynth.hardware.targets import TARGETS  # light: the targets are data

    p = subparsers.add_parser(
        "mse", help="MSE-NAS: micro/meso/macro search scored by a training-free RDM fitness",
        description="Search spiking architectures (neuron model, E/I sign, kernel; circuit motifs; motif wiring) "
                    "with random search, a GA or NSGA-II, scoring untrained candidates by representational "
                    "dissimilarity. Writes DIR/{archive.sqlite, best.json, hall_of_fame.json, summary.json, "
                    "manifest.json, plots/fitness.png, plots/pareto.png} and, with --train-best, DIR/best_model/.")
    p.add_argument("--dataset", default="digits", help="dataset name from neurosynth.datasets (digits ships offline)")
    p.add_argument("--data-root", default=None, help="folder holding the dataset (not needed for digits)")
    p.add_argument("--limit", type=int, default=None, help="keep at most this many samples per split in memory")
    p.add_argument("--T", type=int, default=None,
                   help="time steps per sample (default: 4; 8 on a --target with synaptic delay (loihi, nir), whose "
                        "window must cover one step per layer)")
    p.add_argument("--encoding", default=None,
                   help="static images: direct | rate | latency (default: direct; rate for a --target whose input is spikes)")
    p.add_argument("--target", default="float", choices=TARGETS.names(),
                   help="the hardware the candidates must run on (neurosynth.hardware.targets): " + "; ".join(
                       f"{n}: {t.description}" for n, t in TARGETS.items()) + ". A target with an exporter allows "
                        "only candidates it can deploy; see docs/msenas.md")
    p.add_argument("--dense", action="store_true", help="flatten inputs and search dense networks (SHD-like)")
    p.add_argument("--population", type=int, default=8)
    p.add_argument("--generations", type=int, default=5)
    p.add_argument("--strategy", default="ga", help="random | ga | nsga2 | evo (GP + CMA-ES, EvoSearch) | cmaes")
    p.add_argument("--fitness", default="rdm", help="rdm (default: CKA of the readout RDM with a reference RDM x its participation ratio) | "
                        "rdm_spikes (agreement of the per-step spike-pattern RDMs) | dissimilarity | snasnet")
    p.add_argument("--reference", default="labels",
                   help="reference RDM of --fitness rdm: labels | input | a trained run directory")
    p.add_argument("--cost", default="params",
                   help="objective(s) next to the fitness for nsga2, comma-separated: params | synops | loihi_cores | "
                        "loihi_synapse_bytes (loihi_* = Loihi 2 resource estimate, needs --target loihi/nir)")
    p.add_argument("--fitness-batch", "--batch", dest="batch", type=int, default=64,
                   help="samples in the fitness batch (default 64)")
    p.add_argument("--fitness-T", type=int, default=None,
                   help="score the fitness on the first N time steps only (default: all --T steps)")
    p.add_argument("--space", default=None, help="JSON file with search-space overrides (MSESpaceConfig fields)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--workers", type=int, default=0, help="evaluate in N local worker processes")
    p.add_argument("--ray", default=None, metavar="auto|ADDRESS", help="evaluate as Ray tasks (pip install ray)")
    p.add_argument("--resume", action="store_true", help="continue the search stored in --out")
    p.add_argument("--train-best", type=int, default=0, metavar="EPOCHS",
                   help="train the best architecture for EPOCHS and write DIR/best_model (a run directory)")
    p.add_argument("--lr", type=float, default=5e-3, help="learning rate for --train-best")
    p.add_argument("--no-progress", action="store_true")
    return p


def run(args) -> int:
    import sys

    from neurosynth.errors import UserError
    from neurosynth.io import read_json
    from neurosynth.utils import seed_all
    from snn_nas.mse.run import SearchConfig, run_search

    space = {}
    if args.space:
        space = read_json(args.space)
        if not isinstance(space, dict):
            raise UserError(f"--space {args.space} must hold a JSON object of MSESpaceConfig fields")
    seed_all(args.seed)
    cfg = SearchConfig(out=args.out, dataset=args.dataset, data_root=args.data_root, T=args.T, encoding=args.encoding, dense=args.dense,
                       target=args.target, fitness_T=args.fitness_T,
                       limit=args.limit, population=args.population, generations=args.generations,
                       strategy=args.strategy, fitness=args.fitness, reference=args.reference, cost=args.cost,
                       batch=args.batch, seed=args.seed, workers=args.workers, ray=args.ray, resume=args.resume,
                       train_best=args.train_best, train_lr=args.lr, progress=not args.no_progress, space=space)
    s = run_search(cfg, command=["neurosynth", *sys.argv[1:]])
    b = s["best"]
    print(f"best {args.fitness} fitness {b['fitness']:.4f} ({b['metrics'].get('params')} params, hash {b['hash']}); "
          f"{s['evaluations']} architectures in the archive ({s['failed']} failed), "
          f"{s['search_seconds']:.1f} s")
    if "best_model" in s["results"]:
        bm = s["results"]["best_model"]
        print(f"trained best for {args.train_best} epochs: test accuracy {bm['test_accuracy']:.4f}; "
              f"run directory {bm['dir']}")
    print(f"wrote {args.out}/best.json, archive.sqlite, manifest.json, plots/")
    return 0
