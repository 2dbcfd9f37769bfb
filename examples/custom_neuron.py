"""A custom neuron in ~10 lines, trained end to end on digits and selectable by name everywhere.

Run:  python examples/custom_neuron.py --epochs 5 --out runs/custom_neuron

The neuron below is a quadratic integrate-and-fire variant. Only ``charge`` is written: firing (with the
surrogate gradient), reset, the multi-step time loop, state handling, learnable parameters and registry lookup
come from :class:`neurosynth.NeuronModel`. Once registered (i.e. once this module is imported),
``"quadratic_lif"`` works wherever a neuron is chosen by name: ArchSpecs, ``build_neuron`` and the MSE-NAS micro
search space. Loading a run directory that uses it needs the module imported first.
"""

from __future__ import annotations

import argparse

import torch

import neurosynth as ns
from neurosynth.datasets.digits import digits_split_loaders
from neurosynth.neurons import NeuronModel, register_neuron
from neurosynth.rundir import RunDir
from neurosynth.workflow import TrainConfig, describe, results, train_and_test


@register_neuron("quadratic_lif")
class QuadraticLIF(NeuronModel):
    """v <- beta * v + a * v^2 + x, spike when v > threshold, reset to zero (as a quadratic integrate-and-fire
    neuron does). The reset to zero keeps v <= threshold between steps, so the quadratic term stays bounded;
    ``param_ranges`` keeps the learnable ``a`` in [0, 1] during training (``fit`` projects it after every step)."""

    defaults = {"beta": 0.9, "threshold": 1.0, "a": 0.1}
    default_reset = "zero"
    param_ranges = {**NeuronModel.param_ranges, "a": (0.0, 1.0, False)}

    def charge(self, x, state, p):
        return state._replace(v=p.beta * state.v + p.a * state.v.clamp(min=0) ** 2 + x)


def main(argv=None) -> dict:
    from neurosynth.apps.cli import ScriptHelpFormatter

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=ScriptHelpFormatter)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--T", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/custom_neuron")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    ns.utils.seed_all(args.seed)
    # Selected by name, like any built-in neuron; "a" is learnable per neuron.
    spec = ns.mlp_spec(64, [128], 10, neuron="quadratic_lif", neuron_params={"a": 0.1}, learn=["a"], per_neuron=True)
    model = ns.build(spec)
    # the epoch is chosen on validation images carved from the training images; the test images are read once
    train, val, test, split = digits_split_loaders(T=args.T, seed=args.seed)
    outcome = train_and_test(model, train, val, test, TrainConfig(epochs=args.epochs, lr=2e-3), log=None)
    with RunDir.create(args.out, kind="example") as run:
        run.save_model(model, spec)
        metrics = {**results(outcome, split), "learned_a_mean": float(model[1].a.detach().mean())}
        run.write_json("metrics.json", metrics)
        run.write_manifest(None, vars(args), args.seed, {"test_accuracy": metrics["test_accuracy"]})
        print(f"quadratic_lif MLP on digits: test accuracy {metrics['test_accuracy']:.4f} ({describe(metrics)}); "
              f"learned a (mean) "
              f"{metrics['learned_a_mean']:.3f}; run directory {args.out}")
    return metrics


if __name__ == "__main__":
    from neurosynth.errors import run_script

    raise SystemExit(run_script(main))
