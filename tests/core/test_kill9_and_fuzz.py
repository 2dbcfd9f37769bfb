"""kill -9 in the middle of `neurosynth train` never damages the previous run; property-based fuzzing of the
CLI's numeric options and of corrupted run directories: exit 0 or 2, never a traceback, never a partial
directory (issue 13)."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from neurosynth.apps.cli import main
from neurosynth.rundir import KILL_ENV, check_run, load_run

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--epochs", "1", "--hidden", "4", "--T", "2", "--batch-size", "256", "--no-progress"]
FILES = ("arch.json", "model.pt", "metrics.json", "manifest.json", "run.json")


def _snapshot(d: Path) -> dict:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _train_subprocess(out: Path, kill_at: str | None, seed: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop(KILL_ENV, None)
    if kill_at:
        env[KILL_ENV] = kill_at
    return subprocess.run([sys.executable, "-m", "neurosynth", "train", *TINY, "--reset", "zero", "--seed", str(seed),
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_kill_9_during_train_keeps_the_previous_run_intact(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--seed", "1", "--out", str(out)]) == 0
    before = _snapshot(out)
    assert set(FILES) <= set(before)
    # killed right after the new arch.json is written (the scenario), and just before the swap
    for point in ("rundir:after-arch", "rundir:before-commit"):
        p = _train_subprocess(out, point, seed=5)
        assert p.returncode == -signal.SIGKILL, p.stderr
        assert _snapshot(out) == before, point  # old run untouched: no mix of new and old files, no temp files
        model, spec, metrics = load_run(out)
        assert json.loads((out / "manifest.json").read_text())["seed"] == 1
        with pytest.raises(Exception, match="incomplete `train` run"):
            check_run(tmp_path / ".run.partial")  # the killed attempt is never mistaken for a run
    # killed after the swap: the new run is complete; the next command cleans the leftovers
    p = _train_subprocess(out, "rundir:after-swap", seed=5)
    assert p.returncode == -signal.SIGKILL, p.stderr
    check_run(out)
    assert json.loads((out / "manifest.json").read_text())["seed"] == 5
    assert main(["train", *TINY, "--seed", "6", "--out", str(out)]) == 0
    assert sorted(os.listdir(tmp_path)) == ["run"]
    assert json.loads((out / "manifest.json").read_text())["seed"] == 6


# ---------------------------------------------------------------- fuzzing
NUM = st.sampled_from(["-1", "0", "1", "2", "nan", "inf", "-inf", "1e9", "abc", "0.5"])


def _assert_clean(parent: Path, out: Path, rc: int):
    assert rc in (0, 2)
    leftovers = [n for n in os.listdir(parent) if n != out.name]
    assert leftovers == [], leftovers  # no partial, no lock file
    if rc == 0:
        check_run(out)
        assert json.loads((out / "run.json").read_text())["complete"]
    else:
        assert not out.exists()


@pytest.mark.slow
@settings(max_examples=12, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(epochs=NUM, T=NUM, batch=NUM, hidden=st.sampled_from(["-4", "0", "3", "2,2", "x", ""]), lr=NUM,
       beta=NUM, threshold=NUM)
def test_fuzz_train_numeric_options(tmp_path_factory, epochs, T, batch, hidden, lr, beta, threshold):
    parent = tmp_path_factory.mktemp("fuzz")
    out = parent / "run"
    argv = ["train", "--out", str(out), "--no-progress", "--epochs", epochs, "--T", T, "--batch-size", batch,
            "--hidden", hidden, "--lr", lr, "--beta", beta, "--threshold", threshold]
    # keep the runs that would train tiny: at most 1 epoch, 2 steps
    for flag, cap in (("--epochs", 1), ("--T", 2)):
        i = argv.index(flag) + 1
        try:
            if float(argv[i]) > cap:
                argv[i] = str(cap)
        except ValueError:
            pass
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse: a value of the wrong type
        rc = e.code
    _assert_clean(parent, out, rc)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    return out


DAMAGE = st.tuples(st.sampled_from(FILES), st.sampled_from(["delete", "truncate", "garbage", "json"]),
                   st.integers(0, 4096), st.binary(max_size=64))


@pytest.mark.slow
@settings(max_examples=15, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(damage=st.lists(DAMAGE, min_size=1, max_size=3))
def test_fuzz_corrupted_run_directories(tmp_path_factory, trained_run, damage):
    parent = tmp_path_factory.mktemp("corrupt")
    run = parent / "run"
    shutil.copytree(trained_run, run)
    for name, how, n, blob in damage:
        f = run / name
        if not f.exists():
            continue
        if how == "delete":
            f.unlink()
        elif how == "truncate":
            f.write_bytes(f.read_bytes()[: n % max(1, f.stat().st_size)])
        elif how == "garbage":
            f.write_bytes(blob)
        else:
            f.write_text(json.dumps({"layers": [{"type": "linear", "in_features": -n, "out_features": 2}],
                                     "kind": n, "complete": bool(n % 2)}))
    out = parent / "energy.json"
    for argv in (["energy", "--model", str(run), "--samples", "2", "--no-progress", "--out", str(out)],
                 ["search", "mse", "--fidelity", "none", "--out", str(run), "--resume", "--population", "2", "--generations", "1",
                  "--no-progress"]):
        before = sorted(os.listdir(parent))
        rc = main(argv)
        assert rc in (0, 2)
        after = sorted(os.listdir(parent))
        assert [n for n in after if n.startswith(".")] == [], after  # never a partial directory or lock left
        if argv[0] == "search":
            assert rc == 2 and after == before  # a train run is never turned into a search


def _archive_table(path: Path):
    import sqlite3

    with sqlite3.connect(str(path)) as db:
        return sorted(db.execute("SELECT hash, spec, fitness, status, generation FROM evaluations").fetchall())


@pytest.mark.slow
def test_search_mse_resume_after_kill_9_is_exact(tmp_path):
    search = ["search", "mse", "--fidelity", "none", "--population", "3", "--generations", "3", "--batch", "20", "--T", "2", "--seed", "3",
              "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), KILL_ENV: "search:generation-0"}
    killed = tmp_path / "killed"
    p = subprocess.run([sys.executable, "-m", "neurosynth", *search, "--out", str(killed)], env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert not killed.exists() and (tmp_path / ".killed.partial" / "archive.sqlite").exists()
    assert main([*search, "--out", str(killed)]) == 2  # without --resume: refused, the partial is kept
    # the resumed and the uninterrupted run go in fresh processes too: the space samples from the registered
    # neurons, and other tests of this session register custom ones in this process
    env.pop(KILL_ENV)
    for argv in ([*search, "--out", str(killed), "--resume"], [*search, "--out", str(tmp_path / "full")]):
        p = subprocess.run([sys.executable, "-m", "neurosynth", *argv], env=env, capture_output=True, text=True,
                           timeout=600)
        assert p.returncode == 0, p.stderr
    full = tmp_path / "full"
    assert _archive_table(killed / "archive.sqlite") == _archive_table(full / "archive.sqlite")
    assert sorted(os.listdir(tmp_path)) == ["full", "killed"]


@pytest.mark.slow
@settings(max_examples=8, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(T=NUM, batch=st.sampled_from(["-1", "0", "3", "20", "x"]), limit=st.sampled_from(["-5", "0", "1", "30", None]),
       population=NUM, generations=NUM)
def test_fuzz_search_mse_numeric_options(tmp_path_factory, T, batch, limit, population, generations):
    parent = tmp_path_factory.mktemp("fuzzsearch")
    out = parent / "search"
    argv = ["search", "mse", "--fidelity", "none", "--out", str(out), "--no-progress", "--T", T, "--batch", batch,
            "--population", population, "--generations", generations]
    if limit is not None:
        argv += ["--limit", limit]
    for flag, cap in (("--T", 2), ("--population", 2), ("--generations", 1)):  # keep valid runs tiny
        i = argv.index(flag) + 1
        try:
            if float(argv[i]) > cap:
                argv[i] = str(cap)
        except ValueError:
            pass
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    _assert_clean(parent, out, rc)
