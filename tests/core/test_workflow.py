"""The training workflow (``neurosynth.workflow``): the validation split, the epoch chosen on it, the test set read
once, the checkpoint and an exact ``--resume``, the manifest, and the options' errors (``neurosynth train``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from neurosynth import workflow
from neurosynth.apps.cli import main
from neurosynth.errors import UserError
from neurosynth.workflow import TrainConfig, split_indices, train_and_test, train_select

TRAIN = ["train", "--epochs", "3", "--hidden", "16", "--T", "6", "--no-progress", "--seed", "3"]


# ------------------------------------------------------------------------------------------------- the split
def test_split_is_disjoint_complete_stratified_and_deterministic():
    labels = [i % 4 for i in range(40)] + [0] * 10 + [3]  # classes of 20, 10, 10, 11
    fit, val, split = split_indices(labels, 0.2, seed=5)
    assert sorted(fit + val) == list(range(len(labels))) and not set(fit) & set(val)
    per = Counter(labels[i] for i in val)
    assert per == {0: 4, 1: 2, 2: 2, 3: 2}  # round(0.2 * n_c) of each class
    assert split.val_per_class == {"0": 4, "1": 2, "2": 2, "3": 2}
    assert (split.how, split.n_fit, split.n_val, split.fraction, split.seed) == ("carved", 41, 10, 0.2, 5)
    again = split_indices(labels, 0.2, seed=5)
    assert again[:2] == (fit, val) and again[2].val_indices_sha256 == split.val_indices_sha256
    other = split_indices(labels, 0.2, seed=6)
    assert other[1] != val and Counter(labels[i] for i in other[1]) == per  # another seed: other samples, same strata


def test_split_keeps_a_training_sample_of_every_class_and_handles_tiny_data():
    fit, val, _ = split_indices([0, 0, 1, 1, 2], 0.9, seed=0)
    assert {0, 1, 2} <= {[0, 0, 1, 1, 2][i] for i in fit} and len(val) == 2  # class 2 (one sample) stays in fit
    fit, val, split = split_indices([0, 1, 2, 3], 0.25, seed=0)  # every class a single sample: not stratifiable
    assert len(val) == 1 and len(fit) == 3 and "not stratified" in split.source
    with pytest.raises(UserError, match="--val-fraction"):
        split_indices([1], 0.5)


def test_shipped_validation_split_is_used_unless_a_fraction_is_given():
    train, valid = list(range(10)), list(range(100, 104))
    fit, val, split = workflow.validation_split(train, None, shipped=valid, shipped_name="voices")
    assert fit is train and val is valid and (split.how, split.n_fit, split.n_val, split.source) == \
        ("shipped", 10, 4, "voices")
    labels = torch.tensor([0, 1] * 5)
    ds = torch.utils.data.TensorDataset(torch.zeros(10, 1), labels)
    fit, val, split = workflow.validation_split(ds, 0.2, shipped=valid)
    assert split.how == "carved" and len(val) == 2 and len(fit) == 8
    fit, val, split = workflow.validation_split(ds, 0.0, shipped=valid)
    assert val is None and split.how == "none"


@pytest.mark.parametrize("fraction,select,needle", [(1.5, "best_val", "in [0, 1)"), (-0.1, "best_val", "in [0, 1)"),
                                                    (0.0, "best_val", "--select last")])
def test_check_val_fraction(fraction, select, needle):
    with pytest.raises(UserError, match=needle.replace("[", r"\[").replace(")", r"\)")):
        workflow.check_val_fraction(fraction, select)
    workflow.check_val_fraction(0.0, "last")


# ----------------------------------------------------------------------------------------- selection, test once
def _task(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.zeros(5, n, 6)
    x[:, torch.arange(n), y * 2] = 1.0  # the label sets which input pair is on
    x = (x + 0.6 * torch.rand(5, n, 6, generator=g)).clamp(0, 1)
    return [(x[:, i:i + 8], y[i:i + 8]) for i in range(0, n, 8)]


def _model(seed=0):
    import neurosynth as ns

    torch.manual_seed(seed)
    return ns.SNN(torch.nn.Linear(6, 3), ns.LI(beta=0.8))


class Counting:
    """A loader that counts how often it is read."""

    def __init__(self, batches):
        self.batches, self.reads = batches, 0

    def __iter__(self):
        self.reads += 1
        return iter(self.batches)


def test_epoch_is_chosen_on_validation_and_test_is_read_once():
    torch.set_num_threads(1)
    train, val, test = _task(48, 0), _task(24, 1), Counting(_task(24, 2))
    model = _model()
    lines = []
    out = train_and_test(model, train, val, test, TrainConfig(epochs=5, lr=0.5, loss="mean_membrane_ce"),
                         progress=False, log=lines.append)
    sel = out.selection
    acc = sel.history["val_accuracy"]
    assert sel.chosen_epoch == acc.index(max(acc)) + 1  # the highest validation accuracy, the earliest on ties
    assert sel.val_accuracy == max(acc)
    assert test.reads == 1 and out.test["samples"] == 24
    from neurosynth.training import evaluate

    # the chosen epoch's weights are in the model: they reproduce that epoch's validation accuracy exactly
    assert evaluate(model, val, "mean_membrane_ce")["accuracy"] == sel.val_accuracy
    assert len(lines) == 5 and all("val" in ln and "test" not in ln for ln in lines)
    assert "test_loader" not in train_select.__code__.co_varnames  # the loop cannot read the test set


def test_ties_go_to_the_earliest_epoch_and_last_takes_the_last():
    rule = workflow.selection_rule("best_val")
    best = None
    chosen = 0
    for epoch, acc in enumerate([0.5, 0.7, 0.7, 0.6], 1):
        if rule.improves(acc, best):
            best, chosen = acc, epoch
    assert chosen == 2
    assert workflow.selection_rule("last").improves(0.1, 0.9)
    with pytest.raises(UserError, match="--select"):
        workflow.selection_rule("best_test")


def test_without_validation_the_last_epoch_is_kept():
    model = _model()
    sel = train_select(model, _task(), None, TrainConfig(epochs=3, lr=0.3, loss="mean_membrane_ce"), rule="last",
                       progress=False, log=None)
    assert sel.chosen_epoch == 3 and sel.rule == "last"
    with pytest.raises(ValueError, match="validation loader"):
        train_select(_model(), _task(), None, TrainConfig(epochs=1), rule="best_val", progress=False, log=None)


def test_resume_from_a_checkpoint_is_bitwise_equal(tmp_path, monkeypatch):
    """Stop after epoch 2 of 4 (the process raises), resume from checkpoint.pt: the same weights, history and
    chosen epoch as a run that was never stopped (dropout draws from the global RNG: restored too)."""
    import neurosynth as ns

    torch.set_num_threads(1)

    def model():
        torch.manual_seed(0)
        return ns.SNN(torch.nn.Linear(6, 12), torch.nn.Dropout(0.3), ns.LIF(beta=0.8), torch.nn.Linear(12, 3),
                      ns.LI(beta=0.8))

    def loader(seed):
        data = _task(48, 0)
        xs = torch.cat([b[0] for b in data], 1)
        ys = torch.cat([b[1] for b in data])
        ds = torch.utils.data.TensorDataset(xs.transpose(0, 1), ys)
        return torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True,
                                           generator=torch.Generator().manual_seed(seed),
                                           collate_fn=lambda b: (torch.stack([s[0] for s in b], 1),
                                                                 torch.stack([s[1] for s in b])))

    cfg = TrainConfig(epochs=4, lr=0.05, loss="mean_membrane_ce")
    val = _task(24, 1)
    a = model()
    torch.manual_seed(11)
    sa = train_select(a, loader(1), val, cfg, checkpoint=tmp_path / "a.pt", progress=False, log=None)

    b = model()
    torch.manual_seed(11)

    def stop(epoch):
        if epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(workflow, "_after_epoch", stop)
    with pytest.raises(KeyboardInterrupt):
        train_select(b, loader(1), val, cfg, checkpoint=tmp_path / "b.pt", progress=False, log=None)
    monkeypatch.undo()
    torch.manual_seed(999)  # the resumed process starts from other random states: the checkpoint restores them
    c = model()
    sc = train_select(c, loader(1), val, cfg, checkpoint=tmp_path / "b.pt", resume=True, progress=False, log=None)
    assert sc.resumed_from == 2 and sa.resumed_from == 0
    for (k, va), (_, vc) in zip(a.state_dict().items(), c.state_dict().items()):
        assert torch.equal(va, vc), k
    strip = {k: v for k, v in sa.history.items() if k != "seconds"}
    assert strip == {k: v for k, v in sc.history.items() if k != "seconds"}
    assert (sa.chosen_epoch, sa.val_accuracy) == (sc.chosen_epoch, sc.val_accuracy)


# ----------------------------------------------------------------------------------------------- the CLI
def test_train_records_split_selection_and_dataset_hash(tmp_path, monkeypatch, capsys):
    """`neurosynth train` carves 10% of digits' 1,347 training images, reads the 450 test images once and writes
    the split, the rule and the chosen epoch into the manifest and metrics.json."""
    from neurosynth.datasets import digits

    reads = []
    real = digits.digits_split_loaders

    def counted(*a, **k):
        train, val, test, split = real(*a, **k)
        c = Counting(test)
        reads.append(c)
        return train, val, c, split

    monkeypatch.setattr(digits, "digits_split_loaders", counted)
    out = tmp_path / "run"
    assert main([*TRAIN, "--out", str(out)]) == 0
    assert reads[0].reads == 1
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "read once" in printed and printed.count("epoch ") >= 3
    man = json.loads((out / "manifest.json").read_text())
    m = json.loads((out / "metrics.json").read_text())
    assert man["split"]["how"] == "carved" and (man["split"]["n_fit"], man["split"]["n_val"]) == (1211, 136)
    assert man["split"]["fraction"] == 0.1 and man["split"]["seed"] == 0 and sum(
        man["split"]["val_per_class"].values()) == 136
    assert man["selection"]["rule"] == "best_val" and man["selection"]["chosen_epoch"] == m["chosen_epoch"]
    assert len(man["datasets"]["digits/train"]["sha256"]) == 64
    acc = m["history"]["val_accuracy"]
    assert m["chosen_epoch"] == acc.index(max(acc)) + 1 and m["val_accuracy"] == max(acc)
    assert m["test_samples"] == 450 and m["split"] == man["split"] and len(m["history"]["epoch"]) == 3
    assert not (out / workflow.CHECKPOINT).exists()  # the checkpoint is gone once the run is complete


def test_val_fraction_zero_with_last_is_recorded(tmp_path):
    out = tmp_path / "run"
    assert main([*TRAIN, "--epochs", "2", "--val-fraction", "0", "--select", "last", "--out", str(out)]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["split"]["how"] == "none" and man["split"]["n_fit"] == 1347
    assert man["selection"]["rule"] == "last" and man["selection"]["chosen_epoch"] == 2


def test_interrupted_train_resumes_to_the_same_result(tmp_path, monkeypatch, capsys):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main([*TRAIN, "--epochs", "4", "--out", str(full)]) == 0

    def stop(epoch):
        if epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(workflow, "_after_epoch", stop)
    assert main([*TRAIN, "--epochs", "4", "--out", str(cut)]) == 130
    monkeypatch.undo()
    assert not cut.exists() and (tmp_path / ".cut.partial" / workflow.CHECKPOINT).is_file()
    capsys.readouterr()
    assert main([*TRAIN, "--epochs", "4", "--out", str(cut), "--resume", str(cut)]) == 0
    assert "resuming after epoch 2/4" in capsys.readouterr().out
    _same_run(full, cut)
    m = json.loads((cut / "metrics.json").read_text())
    assert m["resumed_after_epoch"] == 2


def _same_run(a: Path, b: Path):
    sa = torch.load(a / "model.pt", weights_only=True)
    sb = torch.load(b / "model.pt", weights_only=True)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    for key in ("test_accuracy", "test_loss", "chosen_epoch", "val_accuracy", "split"):
        assert ma[key] == mb[key], key
    ha, hb = ({k: v for k, v in m["history"].items() if k != "seconds"} for m in (ma, mb))
    assert ha == hb


@pytest.mark.slow  # two fresh processes (~40 s on the loaded 2 cores); the in-process interruption is the fast check
def test_kill_9_after_an_epoch_then_resume_in_a_new_process(tmp_path):
    """A real kill -9 right after epoch 2's checkpoint, then `--resume` in a fresh process: bitwise the run that
    was never killed."""
    def cli(*args, kill=None):
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        env.pop("NEUROSYNTH_TEST_KILL", None)
        if kill:
            env["NEUROSYNTH_TEST_KILL"] = kill
        return subprocess.run([sys.executable, "-m", "neurosynth", *TRAIN, "--epochs", "3", *args],
                              capture_output=True, text=True, env=env, timeout=600)

    assert main([*TRAIN, "--epochs", "3", "--out", str(tmp_path / "full")]) == 0  # in this process: one start less
    r = cli("--out", str(tmp_path / "cut"), kill="train:epoch-2")
    assert r.returncode == -9
    r = cli("--resume", str(tmp_path / "cut"))
    assert r.returncode == 0, r.stderr
    _same_run(tmp_path / "full", tmp_path / "cut")


@pytest.mark.parametrize("extra,needle", [
    (["--val-fraction", "1.5"], "--val-fraction must be in [0, 1)"),
    (["--val-fraction", "0"], "--select last"),
    (["--resume", "{tmp}/missing"], "no interrupted run there"),
])
def test_bad_workflow_options_one_error_line_exit_2(tmp_path, capsys, extra, needle):
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    out = ["--out", str(tmp_path / "x")] if "--resume" not in extra else []
    assert main([*TRAIN, *out, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0]
    assert not (tmp_path / "x").exists() and not (tmp_path / ".x.partial").exists()


def test_resume_refuses_foreign_complete_and_changed_runs(tmp_path, monkeypatch, capsys):
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "a.txt").write_text("mine")
    assert main([*TRAIN, "--resume", str(foreign)]) == 2
    assert "not a neurosynth run" in capsys.readouterr().err
    done = tmp_path / "done"
    assert main([*TRAIN, "--epochs", "1", "--out", str(done)]) == 0
    capsys.readouterr()
    assert main([*TRAIN, "--epochs", "1", "--resume", str(done)]) == 2
    assert "complete (nothing to resume)" in capsys.readouterr().err
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "run.json").write_text(json.dumps({"format": "neurosynth.run/2", "kind": "search mse",
                                                              "complete": True}))
    assert main([*TRAIN, "--resume", str(tmp_path / "search")]) == 2
    assert "`search mse` run, not a `train` run" in capsys.readouterr().err

    cut = tmp_path / "cut"

    def stop(epoch):
        raise KeyboardInterrupt

    monkeypatch.setattr(workflow, "_after_epoch", stop)
    assert main([*TRAIN, "--out", str(cut)]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert main([*TRAIN, "--out", str(cut)]) == 2  # a fresh run never discards finished epochs silently
    assert "pass --resume" in capsys.readouterr().err
    assert main([*TRAIN, "--lr", "0.01", "--resume", str(cut)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--lr is 0.01 here but was" in err[0]
    assert main([*TRAIN, "--out", str(tmp_path / "other"), "--resume", str(cut)]) == 2
    assert "names another directory" in capsys.readouterr().err
    assert (tmp_path / ".cut.partial" / workflow.CHECKPOINT).is_file()  # a refused resume keeps the checkpoint


def test_conv_recipe_carves_validation_and_resumes_bitwise(tmp_path, monkeypatch, capsys):
    """`neurosynth train --dataset fashion_mnist` (the conv recipe, its own loaders): the same workflow."""
    from neurosynth.datasets.testing import write_fake_fashion_mnist

    write_fake_fashion_mnist(tmp_path / "f", 60, 20, seed=0, informative=True)
    argv = ["train", "--dataset", "fashion_mnist", "--root", str(tmp_path / "f"), "--epochs", "3", "--channels", "2",
            "--hidden", "8", "--batch-size", "16", "--no-progress", "--val-fraction", "0.2"]
    assert main([*argv, "--out", str(tmp_path / "full")]) == 0

    def stop(epoch):
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(workflow, "_after_epoch", stop)
    assert main([*argv, "--out", str(tmp_path / "cut")]) == 130
    monkeypatch.undo()
    assert main([*argv, "--resume", str(tmp_path / "cut")]) == 0
    _same_run(tmp_path / "full", tmp_path / "cut")
    man = json.loads((tmp_path / "cut" / "manifest.json").read_text())
    assert (man["split"]["n_fit"], man["split"]["n_val"]) == (48, 12) and man["selection"]["rule"] == "best_val"
    assert len(man["datasets"]["fashion_mnist/test"]["sha256"]) == 64


def test_fit_projects_every_module_with_a_clamp_params_hook_after_each_step():
    """``training.clamp_params_`` calls any module's ``clamp_params_()`` (neurons, delays, a custom layer)."""
    import neurosynth as ns
    from neurosynth.training import fit

    class Bounded(torch.nn.Linear):
        def clamp_params_(self):
            with torch.no_grad():
                self.weight.clamp_(-0.01, 0.01)

    torch.manual_seed(0)
    m = ns.SNN(Bounded(6, 3), ns.LI(beta=0.8))
    fit(m, _task(), epochs=1, lr=0.5, loss="mean_membrane_ce", progress=False)
    assert float(m[0].weight.abs().max()) <= 0.01 and float(m[0].weight.abs().max()) > 0


def test_modules_hear_the_epoch_start_in_fit_and_in_the_workflow_also_after_resume(tmp_path, monkeypatch):
    """A module with ``start_epoch(epoch, epochs)`` (learnable delays anneal their taps so) is told every epoch."""
    import neurosynth as ns
    from neurosynth.training import fit

    class Scheduled(torch.nn.Linear):
        def __init__(self):
            super().__init__(6, 3)
            self.heard = []

        def start_epoch(self, epoch, epochs):
            self.heard.append((epoch, epochs))

    def net():
        torch.manual_seed(0)
        return ns.SNN(Scheduled(), ns.LI(beta=0.8))

    m = net()
    fit(m, _task(), epochs=3, lr=0.1, loss="mean_membrane_ce", progress=False)
    assert m[0].heard == [(0, 3), (1, 3), (2, 3)]
    cfg = TrainConfig(epochs=3, lr=0.1, loss="mean_membrane_ce")

    def stop(epoch):
        raise KeyboardInterrupt

    m = net()
    monkeypatch.setattr(workflow, "_after_epoch", stop)
    with pytest.raises(KeyboardInterrupt):
        train_select(m, _task(), _task(24, 1), cfg, checkpoint=tmp_path / "c.pt", progress=False, log=None)
    monkeypatch.undo()
    m2 = net()
    train_select(m2, _task(), _task(24, 1), cfg, checkpoint=tmp_path / "c.pt", resume=True, progress=False, log=None)
    assert m[0].heard == [(0, 3)] and m2[0].heard == [(1, 3), (2, 3)]
