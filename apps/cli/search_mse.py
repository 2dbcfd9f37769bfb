"""``neurosynth search mse``: multi-scale evolutionary architecture search, training-free (``--fidelity none``, the
RDM fitness) or multi-fidelity (``--fidelity sh|hyperband|asha``: trained at growing budgets, selected on
validation accuracy)."""

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
    p.add_argument("--population", type=int, default=None, help="--fidelity none: candidates per generation (default 8)")
    p.add_argument("--generations", type=int, default=None, help="--fidelity none: generations (default 5)")
    p.add_argument("--strategy", default=None,
                   help="random | ga | nsga2 | evo (GP + CMA-ES, EvoSearch) | cmaes | dehb (mutants/crossovers of "
                        "promoted candidates fill the lowest rung). Default: ga with --fidelity none, dehb otherwise")
    g = p.add_argument_group(
        "multi-fidelity search", "Candidates are trained at a budget of BUDGET units (1 unit = --unit-images image "
        "presentations: 1 epoch over that many training images, more epochs once the training split is used up) and "
        "ranked by validation accuracy on --val-images held-out *training* images (Pareto rank with --cost); the best "
        "1/ETA of a rung go up to ETA x the budget. The test split is read only by --train-best. See docs/msenas.md")
    g.add_argument("--fidelity", default=None, choices=["none", "sh", "hyperband", "asha"],
                   help="sh: successive halving with DEHB-like evolution in the rungs (the default, "
                        "snn_nas.engine.fidelity.DEFAULT_FIDELITY, chosen by the paired evidence in docs/msenas.md); "
                        "hyperband: Hyperband brackets; asha: asynchronous successive halving (promotes as soon as a "
                        "worker is free); none: the seed's training-free MSE-NAS search (RDM --fitness, no training; "
                        "--population/--generations)")
    g.add_argument("--min-budget", type=float, default=1.0, metavar="UNITS", help="budget of the lowest rung")
    g.add_argument("--max-budget", type=float, default=9.0, metavar="UNITS", help="budget of the top rung")
    g.add_argument("--eta", type=int, default=3, help="promotion factor (>= 2)")
    g.add_argument("--brackets", type=int, default=1,
                   help="successive-halving / Hyperband brackets to run (asha: this many brackets' worth of units)")
    g.add_argument("--total-budget", type=float, default=None, metavar="UNITS",
                   help="stop before a bracket (asha: a job) would pass this many units")
    g.add_argument("--n0", type=int, default=None, help="candidates of a bracket's first rung (default ETA^s_max)")
    g.add_argument("--unit-images", type=int, default=2000, help="training images per budget unit")
    g.add_argument("--val-images", type=int, default=None,
                   help="training images held out for validation (default 10%% of the training split)")
    g.add_argument("--prefilter", type=int, default=None, metavar="N",
                   help="ask N proposals for a bracket's first rung and keep the best by the training-free --fitness")
    g.add_argument("--predictor", action="store_true",
                   help="rank proposals by a gradient-boosted predictor of rung-0 accuracy (scikit-learn), trained on "
                        "the search's own results (scores, parameters, SynOps, spec features)")
    p.add_argument("--fitness", default="rdm", help="rdm (default: CKA of the readout RDM with a reference RDM x its participation ratio) | "
                        "rdm_spikes (agreement of the per-step spike-pattern RDMs) | dissimilarity | snasnet")
    p.add_argument("--reference", default="labels",
                   help="reference RDM of --fitness rdm: labels | input | a trained run directory")
    p.add_argument("--cost", default=None,
                   help="objective(s) next to the fitness (nsga2; multi-fidelity promotion), comma-separated: params | "
                        "synops | loihi_cores | loihi_synapse_bytes (loihi_* = Loihi 2 resource estimate, needs --target "
                        "loihi/nir). Default: params with --fidelity none, synops otherwise")
    p.add_argument("--fitness-batch", "--batch", dest="batch", type=int, default=64,
                   help="samples in the fitness batch (default 64)")
    p.add_argument("--fitness-T", type=int, default=None,
                   help="score the fitness on the first N time steps only (default: all --T steps)")
    p.add_argument("--space", default=None,
                   help="JSON file with search-space overrides: MSESpaceConfig fields, or {\"family\": \"chain\", ...} "
                        "for the conv-BN-spiking-pool / dense-recurrent family that holds the hand-designed networks "
                        "(docs/msenas.md; float target)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--workers", type=int, default=0, help="evaluate in N local worker processes")
    p.add_argument("--ray", default=None, metavar="auto|ADDRESS", help="evaluate as Ray tasks (pip install ray)")
    p.add_argument("--resume", action="store_true", help="continue the search stored in --out")
    p.add_argument("--train-best", type=int, default=0, metavar="EPOCHS",
                   help="train the best architecture for EPOCHS and write DIR/best_model (a run directory)")
    p.add_argument("--lr", type=float, default=5e-3, help="learning rate for --train-best and the rungs' training")
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
    from snn_nas.engine.fidelity import DEFAULT_FIDELITY

    if (args.fidelity or DEFAULT_FIDELITY) != "none":
        ga = [f for f, v in (("--population", args.population), ("--generations", args.generations)) if v is not None]
        if ga:
            raise UserError(f"{' and '.join(ga)} size the training-free search (--fidelity none); the multi-fidelity "
                            f"search (--fidelity {args.fidelity or DEFAULT_FIDELITY}, the default) is sized by --brackets, "
                            "--n0 and --total-budget: add --fidelity none for the GA, or drop them")
    args.population = 8 if args.population is None else args.population
    args.generations = 5 if args.generations is None else args.generations
    seed_all(args.seed)
    cfg = SearchConfig(out=args.out, dataset=args.dataset, data_root=args.data_root, T=args.T, encoding=args.encoding, dense=args.dense,
                       target=args.target, fitness_T=args.fitness_T,
                       limit=args.limit, population=args.population, generations=args.generations,
                       strategy=args.strategy, fitness=args.fitness, reference=args.reference, cost=args.cost,
                       batch=args.batch, seed=args.seed, workers=args.workers, ray=args.ray, resume=args.resume,
                       train_best=args.train_best, train_lr=args.lr, progress=not args.no_progress, space=space,
                       fidelity=args.fidelity, min_budget=args.min_budget, max_budget=args.max_budget, eta=args.eta,
                       brackets=args.brackets, total_budget=args.total_budget, n0=args.n0,
                       unit_images=args.unit_images, val_images=args.val_images, prefilter=args.prefilter,
                       predictor=args.predictor)
    s = run_search(cfg, command=["neurosynth", *sys.argv[1:]])
    b = s["best"]
    if cfg.fidelity == "none":
        print(f"best {args.fitness} fitness {b['fitness']:.4f} ({b['metrics'].get('params')} params, hash "
              f"{b['hash']}); {s['evaluations']} architectures in the archive ({s['failed']} failed), "
              f"{s['search_seconds']:.1f} s")
    else:
        bud = b["budget"]
        print(f"best validation accuracy {b['fitness']:.4f} at rung {b['rung']} ({bud['epochs']} "
              f"epoch{'s' if bud['epochs'] != 1 else ''} x {bud['images']} images; "
              f"{b['metrics'].get('synops', float('nan')):.3g} SynOps, hash {b['hash']}); "
              f"{s['evaluations']} evaluations ({s['failed']} failed), {s['units']:.0f} budget units, "
              f"{s['search_seconds']:.1f} s")
    if "best_model" in s["results"]:
        bm = s["results"]["best_model"]
        print(f"trained best for {args.train_best} epochs: test accuracy {bm['test_accuracy']:.4f}; "
              f"run directory {bm['dir']}")
    print(f"wrote {args.out}/best.json, archive.sqlite, manifest.json, plots/")
    return 0
