"""``neurosynth search bio``: BioNAS search over (operation, learning rule) cells.

    neurosynth search bio --method darts|eg|evo --space darts|nb201 --dataset digits|fashion_mnist|cifar10
                          --seed S --out DIR [--train-best EPOCHS]

Writes into ``DIR``: ``manifest.json``, ``archive.sqlite`` (the engine's archive: one record per search
epoch for darts/eg, one per evaluated genotype for evo), ``search.json`` (history, logits), ``genotype.json``,
``plots/cell.png`` (op and rule on every edge) and ``plots/search.png``; with ``--train-best`` a run
directory ``DIR/best_model`` (``model.pt`` + ``arch.json`` rebuildable by ``neurosynth.rundir.load_run``,
``metrics.json``, ``manifest.json``, ``plots/training.png``).

The workflow is :func:`snn_nas.bionas.run.run_search`; this module parses the options and prints where the
results went.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("bio", help="BioNAS: search operations x bio-inspired learning rules",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--method", choices=["darts", "eg", "evo"], default="darts",
                   help="darts: first-order BioNAS-DARTS; eg: BioNAS-EG (CMA-ES on logits); evo: EvoSearch GP")
    p.add_argument("--space", choices=["darts", "nb201"], default="nb201", help="cell family (nb201 is CPU-sized)")
    p.add_argument("--dataset", choices=["digits", "fashion_mnist", "cifar10"], default="digits",
                   help="fashion_mnist: 1x28x28, --limit-train N subsets the 60,000 training images; the full "
                        "10,000-image test set is used")
    p.add_argument("--data-root", default=None,
                   help="cifar10: folder holding cifar-10-batches-py (required); fashion_mnist: folder of the IDX "
                        "files (default: /usr/share/datasets/fashion-mnist)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--epochs", type=int, default=6, help="search epochs (darts/eg)")
    p.add_argument("--warmup", type=int, default=2, help="epochs of weight-only training before alpha moves")
    p.add_argument("--arch-lr", type=float, default=3e-2,
                   help="darts: Adam learning rate of the architecture logits (alpha)")
    p.add_argument("--C", type=int, default=8, help="initial channels")
    p.add_argument("--layers", type=int, default=None,
                   help="search network depth (darts: cells, default 3; nb201: cells per stage, default 1)")
    p.add_argument("--eval-layers", type=int, default=None,
                   help="derived network depth (darts default 5, nb201 default 1)")
    p.add_argument("--rules", default="fa,usf,brsf,frsf", help="comma-separated learning rules of the edges")
    p.add_argument("--extra-ops", default="", help="comma-separated local ops: hebbian_conv_3x3,pc_conv_3x3")
    p.add_argument("--frame-rule", default="bp", help="rule of stem/preprocess/classifier (bp as in the paper)")
    p.add_argument("--max-skip", type=int, default=2, help="max skip_connect edges per normal cell (-1: no cap)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--generations", type=int, default=5, help="evo: generations")
    p.add_argument("--population", type=int, default=8, help="evo: population size")
    p.add_argument("--eval-epochs", type=int, default=2,
                   help="evo: training epochs per evaluated genotype (--fidelity none)")
    p.add_argument("--fidelity", choices=["none", "sh"], default="none",
                   help="evo: none = every genotype trained --eval-epochs; sh = each generation is a successive-halving "
                        "bracket: --population genotypes trained --min-budget epochs, the best 1/--eta (Pareto rank on "
                        "search-validation accuracy and parameters) retrained with --eta times the epochs, up to "
                        "--max-budget (the multi-fidelity engine, snn_nas.engine.fidelity). darts/eg train a "
                        "weight-sharing supernet and have no per-candidate budget")
    p.add_argument("--min-budget", type=int, default=1, metavar="EPOCHS", help="evo --fidelity sh: lowest rung")
    p.add_argument("--max-budget", type=int, default=3, metavar="EPOCHS", help="evo --fidelity sh: top rung")
    p.add_argument("--eta", type=int, default=3, help="evo --fidelity sh: promotion factor (>= 2)")
    p.add_argument("--cma-generations", type=int, default=2, help="eg: CMA-ES generations per epoch")
    p.add_argument("--limit-train", type=int, default=None, help="use only the first N training images")
    p.add_argument("--train-best", type=int, default=0, metavar="EPOCHS",
                   help="train the derived genotype for EPOCHS and save a run directory in OUT/best_model")
    p.add_argument("--resume", action="store_true", help="evo: continue the search stored in OUT")
    p.add_argument("--no-progress", action="store_true")
    return p


def run(args) -> int:
    import sys
    from pathlib import Path

    from snn_nas.bionas.run import BEST_MODEL, BioSearchConfig, run_search

    cfg = BioSearchConfig(out=args.out, method=args.method, space=args.space, dataset=args.dataset,
                          data_root=args.data_root, seed=args.seed, epochs=args.epochs, warmup=args.warmup,
                          arch_lr=args.arch_lr, C=args.C, layers=args.layers, eval_layers=args.eval_layers,
                          rules=args.rules, extra_ops=args.extra_ops, frame_rule=args.frame_rule,
                          max_skip=args.max_skip, batch_size=args.batch_size, generations=args.generations,
                          population=args.population, eval_epochs=args.eval_epochs,
                          cma_generations=args.cma_generations, limit_train=args.limit_train,
                          train_best=args.train_best, resume=args.resume, progress=not args.no_progress,
                          fidelity=args.fidelity, min_budget=args.min_budget, max_budget=args.max_budget,
                          eta=args.eta)
    s = run_search(cfg, command=["neurosynth", *sys.argv[1:]] if sys.argv else None)
    out, report = Path(args.out), s["alpha"]
    print(f"genotype: {out / 'genotype.json'}")
    if report is not None:
        print(f"alpha: {report['verdict']} (lowest edge entropy {report['min_normalised_entropy']:.3f} of uniform); "
              f"{out / 'alpha_entropy.json'}, {out / 'plots' / 'alpha_entropy.png'}")
    print(f"cell picture: {out / 'plots' / 'cell.png'}")
    if args.train_best:
        print(f"trained model: {out / BEST_MODEL} (test accuracy {s['results']['best']['test_accuracy']:.4f})")
    return 0
