"""``neurosynth search bio``: BioNAS search over (operation, learning rule) cells.

    neurosynth search bio --method darts|eg|evo --space darts|nb201 --dataset digits|fashion_mnist|cifar10
                          --seed S --out DIR [--train-best EPOCHS]

Writes into ``DIR``: ``manifest.json``, ``archive.sqlite`` (the engine's archive: one record per search
epoch for darts/eg, one per evaluated genotype for evo), ``search.json`` (history, logits), ``genotype.json``,
``plots/cell.png`` (op and rule on every edge) and ``plots/search.png``; with ``--train-best`` a run
directory ``DIR/best_model`` (``model.pt`` + ``arch.json`` rebuildable by ``neurosynth.rundir.load_run``,
``metrics.json``, ``manifest.json``, ``plots/training.png``).
"""

from __future__ import annotations

import sys
from pathlib import Path

MIN_ALPHA_STEPS = 50  # fewer DARTS architecture steps (Adam, lr 3e-2) leave alpha close to uniform
BEST_MODEL = "best_model"  # the trained winner's run directory, the same name as `search mse --train-best`


def register(subparsers):
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
    p.add_argument("--eval-epochs", type=int, default=2, help="evo: training epochs per evaluated genotype")
    p.add_argument("--cma-generations", type=int, default=2, help="eg: CMA-ES generations per epoch")
    p.add_argument("--limit-train", type=int, default=None, help="use only the first N training images")
    p.add_argument("--train-best", type=int, default=0, metavar="EPOCHS",
                   help="train the derived genotype for EPOCHS and save a run directory in OUT/best_model")
    p.add_argument("--resume", action="store_true", help="evo: continue the search stored in OUT")
    p.add_argument("--no-progress", action="store_true")
    return p


def _parse_list(s: str) -> tuple[str, ...]:
    return tuple(x.strip().lower() for x in s.split(",") if x.strip())


def run(args) -> int:

    from neurosynth.errors import UserError
    from neurosynth.rundir import RunDir
    from neurosynth.utils import seed_all
    from snn_nas.bionas.data import load_image_data
    from snn_nas.bionas.space import CellSpace

    try:
        space = CellSpace(args.space, _parse_list(args.rules), _parse_list(args.extra_ops))
    except ValueError as e:
        raise UserError(str(e)) from e
    for name in ("epochs", "C", "generations", "population", "eval_epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.train_best < 0:
        raise UserError("--train-best must be >= 0")
    if args.warmup < 0:
        raise UserError(f"--warmup must be >= 0, got {args.warmup}")
    if args.method in ("darts", "eg") and args.epochs <= args.warmup:
        raise UserError(f"--epochs {args.epochs} with --warmup {args.warmup}: the architecture logits (alpha) only "
                        f"move after the {args.warmup} warm-up epochs, so this search would never search; use "
                        f"--epochs > {args.warmup} or a smaller --warmup (e.g. --warmup 0)")
    if args.arch_lr <= 0:
        raise UserError(f"--arch-lr must be > 0, got {args.arch_lr}")
    layers = args.layers or (3 if args.space == "darts" else 1)
    eval_layers = args.eval_layers or (5 if args.space == "darts" else 1)
    max_skip = None if args.max_skip is not None and args.max_skip < 0 else args.max_skip
    data = load_image_data(args.dataset, args.data_root, limit_train=args.limit_train)
    if args.method == "darts":
        steps = (args.epochs - args.warmup) * -(-(len(data.y_train) // 2) // args.batch_size)
        if steps < MIN_ALPHA_STEPS:
            print(f"warning: alpha gets only {steps} Adam steps ({args.epochs - args.warmup} epochs after the warm-up x "
                  f"{len(data.y_train) // 2} search-val images / batch {args.batch_size}); it will barely leave the "
                  f"uniform distribution. Use more --epochs, a larger --limit-train or a smaller --batch-size "
                  f"(>= {MIN_ALPHA_STEPS} steps)", file=sys.stderr)
    with RunDir.create(args.out, kind="search bio", resume=args.resume, replace=args.method not in ("evo",)) as rd:
        config = {k: v for k, v in vars(args).items() if not k.startswith("_")}
        config.update({"layers": layers, "eval_layers": eval_layers, "space_description": space.describe()})
        seed_all(args.seed)
        progress = not args.no_progress

        if args.method in ("darts", "eg"):
            result = _gradient_or_eg(args, space, data, rd, layers, max_skip, progress)
        else:
            result = _evo(args, space, data, rd, layers, max_skip, progress, config)
        genotype = result["genotype"]
        from snn_nas.bionas.plot import plot_alpha_entropy, plot_genotype, plot_search_history

        report = None
        if args.method in ("darts", "eg"):
            from snn_nas.bionas.search import BARELY_MOVED, alpha_entropy_report

            report = alpha_entropy_report(result.get("history", []), space, result.get("probabilities"))
            result["alpha_moved"] = report["alpha_moved"]
            result["alpha_verdict"] = report["verdict"]
            if report["verdict"] == "uniform":
                print("warning: the architecture weights ended at the uniform distribution (no edge's entropy fell "
                      "below log(choices)); the genotype is a tie-break, not a search result", file=sys.stderr)
            elif report["verdict"] == "barely moved":
                print(f"warning: the architecture weights barely moved (every edge's entropy is still above "
                      f"{BARELY_MOVED:.0%} of the uniform entropy; lowest {report['min_normalised_entropy']:.3f}); "
                      "the genotype is close to a tie-break: search longer (more --epochs or --limit-train)",
                      file=sys.stderr)
            rd.write_json("alpha_entropy.json", report)
            plot_alpha_entropy(report, rd.plot_path("alpha_entropy"), f"BioNAS-{args.method} on {args.dataset}")
        rd.write_json("genotype.json", genotype)
        rd.write_json("search.json", result)

        plot_genotype(genotype, rd.plot_path("cell"), f"BioNAS-{args.method} on {args.dataset} ({args.space}, seed "
                                                       f"{args.seed})")
        if result.get("history") and "train_loss" in result["history"][0]:
            plot_search_history(result["history"], rd.plot_path("search"), f"BioNAS-{args.method} search")
        results = {"genotype": genotype}
        if report is not None:
            results.update({"alpha_moved": report["alpha_moved"], "alpha_verdict": report["verdict"],
                            "alpha_min_normalised_entropy": report["min_normalised_entropy"]})
        if args.train_best:
            results["best"] = _train_best(args, genotype, data, rd, eval_layers, progress)
        rd.write_manifest(["neurosynth", *sys.argv[1:]] if sys.argv else None, config, args.seed, results)
    out = Path(args.out)
    print(f"genotype: {out / 'genotype.json'}")
    if report is not None:
        print(f"alpha: {report['verdict']} (lowest edge entropy {report['min_normalised_entropy']:.3f} of uniform); "
              f"{out / 'alpha_entropy.json'}, {out / 'plots' / 'alpha_entropy.png'}")
    print(f"cell picture: {out / 'plots' / 'cell.png'}")
    if args.train_best:
        print(f"trained model: {out / BEST_MODEL} (test accuracy {results['best']['test_accuracy']:.4f})")
    return 0


def _gradient_or_eg(args, space, data, rd, layers, max_skip, progress) -> dict:
    from snn_nas.bionas.search import darts_search, eg_search
    from snn_nas.engine.archive import Archive

    archive_path = rd.file("archive.sqlite")
    if archive_path.exists():
        archive_path.unlink()  # darts/eg searches are not resumable: start a fresh archive
    archive = Archive(archive_path)
    archive.set_meta("config", {"method": args.method, "space": args.space, "seed": args.seed})

    def on_epoch(log):  # the supernet's epoch, not an evaluation of the derived genotype
        archive.add_epoch(log["epoch"], log["genotype"], {k: v for k, v in log.items() if k != "genotype"})

    kw = dict(epochs=args.epochs, C=args.C, layers=layers, batch_size=args.batch_size, warmup=args.warmup,
              max_skip=max_skip, seed=args.seed, frame_rule=args.frame_rule, progress=progress, callback=on_epoch)
    try:
        if args.method == "darts":
            return darts_search(space, data, a_lr=args.arch_lr, **kw)
        return eg_search(space, data, generations=args.cma_generations, **kw)
    finally:
        archive.close()


def _evo(args, space, data, rd, layers, max_skip, progress, config) -> dict:
    import numpy as np

    from snn_nas.bionas.engine_space import BioNASEvaluator, BioNASSearchSpace
    from snn_nas.engine import Archive, Runner
    from snn_nas.strategies import STRATEGIES

    sp = BioNASSearchSpace(args.space, space.rules, space.extra_ops, max_skip=max_skip)
    strategy = STRATEGIES.get("evo")(sp, np.random.default_rng(args.seed))
    evaluator = BioNASEvaluator(args.dataset, epochs=args.eval_epochs, C=args.C, layers=layers,
                                batch_size=args.batch_size, frame_rule=args.frame_rule, data_root=args.data_root,
                                limit_train=args.limit_train, data=data)
    import sqlite3

    from neurosynth.errors import UserError

    try:
        archive = Archive(rd.file("archive.sqlite"))
        archive.get_meta("config")
    except (ValueError, sqlite3.DatabaseError) as e:
        raise UserError(f"{Path(args.out) / 'archive.sqlite'} is not a usable search archive ({e}); delete "
                        f"{args.out} (or choose another --out) and search again without --resume") from e
    with archive:
        try:
            summary = Runner(sp, strategy, evaluator, archive, generations=args.generations,
                             population=args.population, seed=args.seed, progress=progress, resume=args.resume,
                             config={"method": "evo", "eval_epochs": args.eval_epochs},
                             on_generation=lambda _s: setattr(rd, "keep_on_error", True)).run()
        except ValueError as e:
            from neurosynth.errors import UserError

            raise UserError(str(e)) from e
    best = summary["best"]
    if best is None:
        from neurosynth.errors import UserError

        raise UserError("every evaluation failed; see archive.sqlite for the errors")
    return {"method": "evo", "genotype": best["spec"], "fitness": best["fitness"],
            "hall_of_fame": [{"fitness": f, "genotype": s} for f, s in strategy.hall_of_fame],
            "history": summary["history"], "evaluations": summary["evaluations"]}


def _train_best(args, genotype, data, rd, eval_layers, progress) -> dict:
    import torch

    from neurosynth.rules import alignment_angles
    from neurosynth.rundir import RunDir
    from snn_nas.bionas.model import build_model, make_spec
    from snn_nas.bionas.plot import plot_curves
    from snn_nas.bionas.train import train_model

    torch.manual_seed(args.seed)
    spec = make_spec(genotype, C=args.C, layers=eval_layers, num_classes=data.num_classes,
                     input_shape=data.input_shape, frame_rule=args.frame_rule)
    model = build_model(spec)
    hist = train_model(model, data.x_train, data.y_train, data.x_test, data.y_test, epochs=args.train_best,
                       batch_size=args.batch_size, seed=args.seed, progress=progress, desc="train best")
    with RunDir.create(rd.file(BEST_MODEL), kind="train") as best:
        best.save_model(model, spec)
        metrics = {"test_accuracy": hist["test_accuracy"][-1], "train_accuracy": hist["train_accuracy"][-1],
                   "history": hist, "alignment_angles": alignment_angles(model),
                   "params": sum(p.numel() for p in model.parameters())}
        best.write_json("metrics.json", metrics)
        plot_curves({"test accuracy": [hist["test_accuracy"]]}, best.plot_path("training"), "test accuracy",
                    "derived BioNAS model")
        best.write_manifest(["neurosynth", *sys.argv[1:]], {"genotype": genotype, "epochs": args.train_best,
                                                            "spec": spec}, args.seed, {"test_accuracy": metrics["test_accuracy"]})
    return {"test_accuracy": metrics["test_accuracy"], "run_dir": str(Path(args.out) / BEST_MODEL), "params": metrics["params"]}
