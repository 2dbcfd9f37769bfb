"""Lesson 5: architecture search (MSE-NAS) without training every candidate.

Run it: ``python docs/tutorials/05_architecture_search.py`` (a few minutes; ``NEUROSYNTH_TUTORIAL_QUICK=1``:
well under a minute).

What you learn: MSE-NAS searches spiking architectures (cells of LIF/ALIF/... neurons and their connections)
with an evolutionary strategy and a **training-free** fitness: a batch goes through each untrained candidate
and its readout representation is compared with the labels' similarity structure (``rdm``). The archive is a
SQLite file, so a search resumes exactly where it stopped (``resume=True``). The best candidate is then
trained for real (the epoch chosen on validation samples carved from the training data) and saved as a run
directory like any other model. This lesson shows that training-free mode (``fidelity="none"``); the default of
``neurosynth search mse`` is the multi-fidelity search (``--fidelity sh``: candidates trained at growing budgets,
ranked on validation), which beat the training-free mode by ~9 points in ``docs/msenas.md``'s paired evidence.

The command-line equivalent:
``neurosynth search mse --fidelity none --dataset digits --population 8 --generations 5 --train-best 3 --out DIR``
(``--workers N`` or ``--ray auto`` evaluate candidates in parallel). BioNAS (``neurosynth search bio``)
searches operations together with bio-inspired learning rules; see ``docs/bionas.md``.
Caveat from our measurements (``docs/msenas.md``): the fitness correlates with trained accuracy (Kendall tau
about 0.4-0.6) but mostly measures capacity.
"""

import os
import shutil
from pathlib import Path

from snn_nas.mse.run import SearchConfig, run_search

QUICK = os.environ.get("NEUROSYNTH_TUTORIAL_QUICK") == "1"
OUT = Path(os.environ.get("NEUROSYNTH_TUTORIAL_OUT", "runs/tutorials")) / "05_search"
shutil.rmtree(OUT, ignore_errors=True)  # this lesson's own folder: a fresh search each time it is run

cfg = SearchConfig(
    out=str(OUT),
    dataset="digits",  # any dataset of neurosynth.datasets (data_root=... for the event datasets)
    T=4,
    fidelity="none",  # the training-free MSE-NAS mode; "sh" (the CLI default) trains candidates at growing budgets
    population=3 if QUICK else 8,
    generations=1 if QUICK else 5,
    strategy="ga",  # random | ga | nsga2 (fitness vs cost) | evo | cmaes
    fitness="rdm",
    batch=32 if QUICK else 64,
    limit=200 if QUICK else None,  # samples kept in memory per split
    train_best=1 if QUICK else 3,  # epochs to train the winner
    progress=False,
    seed=0,
)
summary = run_search(cfg)

best = summary["best"]
print(f"{summary['evaluations']} candidates evaluated; best fitness {best['fitness']:.3f} (hash {best['hash']})")
print("per generation (best, mean):", [(round(h["best"], 3), round(h["mean"], 3)) for h in summary["history"]])
print(f"the winner, trained for {cfg.train_best} epoch(s): test accuracy "
      f"{summary['results']['best_model']['test_accuracy']:.3f}")

# Everything is on disk: best.json (the ArchSpec), archive.sqlite, summary.json, plots/fitness.png, and the
# trained winner as a run directory that load_run rebuilds (MSE-NAS specs name their builder as a "plugin").
from neurosynth.rundir import load_run  # noqa: E402

model, spec, metrics = load_run(OUT / "best_model")
print("reloaded:", spec["kind"], "architecture;", sum(p.numel() for p in model.parameters()), "parameters")
