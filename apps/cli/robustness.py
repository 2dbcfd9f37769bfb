"""``neurosynth robustness``: clean and adversarial accuracy of a trained run directory.

    neurosynth robustness --model RUN_DIR --attacks fgsm,pgd,tpgd,apgd,square,onepixel,transfer

Every attack with an L-inf budget uses one ``--eps`` (default 8/255) unless it is set per attack
(``--param fgsm.eps=0.1``); PGD's step follows eps (eps / 4). The other parameters are the BioNAS paper's (see
``neurosynth.robustness``); override any of them with ``--param pgd.steps=20``. White-box attacks use the true input gradient by default (``--gradient true``);
``--gradient feedback`` attacks through the learning rules' feedback path instead. Writes
``robustness.json``, ``robustness.md`` and ``plots/robustness.png`` into ``--out`` (default
``RUN_DIR/robustness``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ALL = "fgsm,pgd,tpgd,apgd,square,onepixel,transfer"


def register(subparsers):
    p = subparsers.add_parser("robustness", help="adversarial robustness of a trained model (torchattacks)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="run directory with model.pt + arch.json")
    p.add_argument("--attacks", default=ALL, help=f"comma-separated attacks (default: {ALL})")
    p.add_argument("--dataset", choices=_image_datasets(), default=None,
                   help="test data: a static image dataset (default: the run's, else inferred from the model's "
                        "input shape)")
    p.add_argument("--data-root", default=None, help="folder holding the dataset, e.g. cifar-10-batches-py (cifar10, "
                                                     "required) or the Fashion-MNIST IDX files (default: the Debian "
                                                     "package folder); not needed for digits")
    p.add_argument("--n-samples", type=int, default=200, help="number of test images attacked")
    p.add_argument("--gradient", choices=["true", "feedback"], default="true",
                   help="white-box gradient: true backprop (honest default) or the rules' feedback path")
    p.add_argument("--eps", default="8/255", metavar="EPS",
                   help="the L-inf budget of every attack that has one (a number in (0, 1] or N/255), shown in the "
                        "table and the plot")
    p.add_argument("--param", action="append", default=[], metavar="ATTACK.KEY=VALUE",
                   help="override an attack parameter, e.g. --param fgsm.eps=0.1 (repeatable)")
    p.add_argument("--transfer-source", default=None, metavar="RUN_DIR",
                   help="run directory of the transfer attack's source model (default: a small BP CNN trained here)")
    p.add_argument("--transfer-source-epochs", type=int, default=3,
                   help="epochs of the transfer source trained here")
    # deprecated spellings: "surrogate" means the surrogate gradient everywhere else in neurosynth
    p.add_argument("--surrogate", dest="old_surrogate", default=None, help=argparse.SUPPRESS)
    p.add_argument("--surrogate-epochs", dest="old_surrogate_epochs", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--time-steps", type=int, default=None, help="for time-first SNNs: repeat the image T times")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output directory (default RUN_DIR/robustness)")
    p.add_argument("--no-progress", action="store_true")
    return p


def _parse_params(items: list[str]) -> dict[str, dict]:
    import json

    from neurosynth.errors import UserError

    out: dict[str, dict] = {}
    for item in items:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise UserError(f"--param '{item}' must look like ATTACK.KEY=VALUE, e.g. fgsm.eps=0.1")
        key, value = item.split("=", 1)
        attack, name = key.split(".", 1)
        try:
            v = json.loads(value)
        except json.JSONDecodeError:
            v = value
        if isinstance(v, float) and v != v or isinstance(v, float) and v in (float("inf"), float("-inf")):
            raise UserError(f"--param {key}={value}: the value must be a finite number")
        out.setdefault(attack.strip().lower(), {})[name.strip()] = v
    return out


def _parse_eps(text: str) -> float:
    from neurosynth.errors import UserError
    from neurosynth.robustness import check_eps

    raw = str(text).strip()
    try:
        if raw.endswith("/255"):
            return check_eps(float(raw[:-4]) / 255)
        return check_eps(raw)
    except ValueError as e:
        raise UserError(f"--eps {text!r}: {e}") from e


def _deprecated_aliases(args) -> None:
    """``--surrogate``/``--surrogate-epochs`` (old names of the transfer source) still work, with a warning."""
    for old, new in (("old_surrogate", "transfer_source"), ("old_surrogate_epochs", "transfer_source_epochs")):
        value = getattr(args, old, None)
        if value is not None:
            flag, new_flag = "--" + old[4:].replace("_", "-"), "--" + new.replace("_", "-")
            print(f"warning: {flag} is deprecated (it is the transfer attack's source model, not a surrogate "
                  f"gradient); use {new_flag}", file=sys.stderr)
            setattr(args, new, value)


def _image_datasets() -> list[str]:
    """The registered static image datasets (``[C, H, W]`` samples): what the attacks take."""
    from neurosynth.datasets import entries

    return [e.name for e in entries(is_image=True)]


def _infer_dataset(shape) -> str:
    """The image dataset whose sample shape (or its flattening) a model taking ``shape`` reads; digits if none."""
    from neurosynth.datasets import entries

    return next((e.name for e in entries(is_image=True) if shape and e.matches(shape)), "digits")


def _load_data(name: str, root, n: int):
    """``(x_train, y_train, x_test[:n], y_test[:n], classes)``: the images in [0, 1] as ``[N, C, H, W]`` floats (the
    test images attacked are the first ``n`` of the test split)."""
    import torch

    from neurosynth.datasets import DATASETS, load
    from neurosynth.errors import UserError

    def unit(x):  # uint8 images (Fashion-MNIST) -> floats in [0, 1]; float images pass through
        return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()

    entry = DATASETS.get(name)
    if entry.needs_root and root is None:
        raise UserError(f"--dataset {name} needs --data-root DIR ({entry.root_help})")
    tr = load(name, root, "train", T=None, flatten=False)
    te = load(name, root, "test", T=None, flatten=False, limit=n)
    return unit(tr.images), tr.targets.long(), unit(te.images), te.targets.long(), entry.n_classes


def plot_robustness(res: dict, path=None, title: str = ""):
    """Clean and robust accuracy per attack (from :func:`neurosynth.robustness.evaluate_robustness`). Returns the
    figure; writes a PNG when given ``path``."""
    from neurosynth.plots import figure, finish

    names = ["clean", *res["attacks"]]
    vals = [100 * res["clean_accuracy"], *[100 * r["robust_accuracy"] for r in res["attacks"].values()]]
    fig, ax = figure(figsize=(1.1 * len(names) + 2, 3.5))
    bars = ax.bar(names, vals, color=["gray"] + ["tab:red"] * (len(names) - 1))
    ax.bar_label(bars, [f"{v:.1f}" for v in vals], fontsize=8)
    ax.set_xlabel("attack")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    if title:
        ax.set_title(title)
    return finish(fig, path)


def run(args) -> int:

    from neurosynth.errors import UserError
    from neurosynth.io import read_json
    from neurosynth.robustness import (
        PAPER_DEFAULTS,
        LogitsModel,
        attack_params,
        eps_label,
        evaluate_robustness,
        format_table,
        train_surrogate,
    )
    from neurosynth.rundir import RunDir, load_run

    attacks = [a.strip().lower() for a in args.attacks.split(",") if a.strip()]
    unknown = [a for a in attacks if a not in PAPER_DEFAULTS]
    if not attacks or unknown:
        raise UserError(f"unknown attacks {unknown or '(none given)'}; choose from {', '.join(PAPER_DEFAULTS)}")
    overrides = _parse_params(args.param)
    bad = [a for a in overrides if a not in PAPER_DEFAULTS]
    if bad:
        raise UserError(f"--param names unknown attacks {bad}; choose from {', '.join(PAPER_DEFAULTS)}")
    _deprecated_aliases(args)
    eps = _parse_eps(args.eps)
    for name, override in overrides.items():
        try:
            attack_params(name, eps, override)
        except ValueError as e:
            raise UserError(f"--param: {e}") from e
    if args.n_samples < 1:
        raise UserError("--n-samples must be >= 1")
    model, spec, _ = load_run(args.model)
    shape = spec.get("input_shape")
    manifest_path = Path(args.model) / "manifest.json"
    run_config = (read_json(manifest_path).get("config") or {}) if manifest_path.exists() else {}
    dataset = args.dataset
    if dataset is None:
        dataset = run_config.get("dataset")
        if dataset not in _image_datasets():
            dataset = _infer_dataset(shape)
    xtr, ytr, x, y, num_classes = _load_data(dataset, args.data_root, args.n_samples)
    image_shape = tuple(x.shape[1:])
    time_steps = args.time_steps
    from neurosynth.layers import SNN

    if time_steps is None and isinstance(model, SNN):
        # a time-first spiking network: present the image as a constant input current for T steps (the attacks need
        # a differentiable input path, which a random spike encoder does not give)
        time_steps = int(run_config.get("T") or 20)
        print(f"time-first spiking model: the image is repeated as input current over T={time_steps} steps "
              "(set --time-steps to change)")
    wrapped = LogitsModel(model, shape if shape and tuple(shape) != image_shape else None, time_steps).eval()
    surrogate = None
    if "transfer" in attacks:
        if args.transfer_source:
            s_model, s_spec, _ = load_run(args.transfer_source)
            s_shape = s_spec.get("input_shape")
            surrogate = LogitsModel(s_model, s_shape if s_shape and tuple(s_shape) != image_shape else None).eval()
        else:
            surrogate = train_surrogate(xtr, ytr, num_classes, epochs=args.transfer_source_epochs, seed=args.seed)
    res = evaluate_robustness(wrapped, x, y, attacks, gradient=args.gradient, overrides=overrides,
                              surrogate=surrogate, batch_size=args.batch_size, seed=args.seed,
                              progress=not args.no_progress, eps=eps)
    res.update({"model": str(args.model), "dataset": dataset,
                "transfer_source": args.transfer_source
                or f"small BP CNN trained {args.transfer_source_epochs} epochs (seed {args.seed})"})
    with RunDir.create(args.out or f"{args.model}/robustness", kind="robustness") as out:
        out.write_json("robustness.json", res)
        table = format_table(res)
        from neurosynth.io import atomic_write

        with atomic_write(out.file("robustness.md")) as f:
            f.write(f"Robustness of {args.model} on {res['n_samples']} {dataset} test images; white-box gradients: "
                    f"{res['white_box_gradient_source']}; {eps_label(res)}.\n\n{table}\n")
        plot_robustness(res, out.plot_path("robustness"), title=f"{eps_label(res)}, gradient: {args.gradient}")
        out.write_manifest(["neurosynth", *sys.argv[1:]], {k: v for k, v in vars(args).items() if not k.startswith("_")},
                           args.seed, {"clean_accuracy": res["clean_accuracy"],
                                       **{k: v["robust_accuracy"] for k, v in res["attacks"].items()}})
        print(f"white-box gradients: {res['white_box_gradient_source']}")
        print(table)
        print(f"wrote {out.final / 'robustness.json'}")
    return 0
