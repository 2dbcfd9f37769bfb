"""Whole-directory atomic runs, locks, run kinds, load_run refusals, umask (issue 13, part 1)."""

import json
import os
import stat
import subprocess
import sys

import pytest
import torch

from neurosynth.arch import build, mlp_spec
from neurosynth.errors import UserError
from neurosynth.rundir import RunDir, check_run, load_run, read_marker, run_kind


def _save_tiny(run: RunDir, seed: int = 0) -> None:
    torch.manual_seed(seed)
    spec = mlp_spec(4, [3], 2)
    run.save_model(build(spec), spec)
    run.write_json("metrics.json", {"seed": seed})
    run.write_manifest(["neurosynth", "train"], {"T": 5}, seed)


def _entries(d):
    return sorted(os.listdir(d))


def test_create_swaps_in_a_complete_run_with_a_kind_marker(tmp_path):
    out = tmp_path / "run"
    with RunDir.create(out, kind="train") as run:
        assert run.path != out and run.final == out and not out.exists()  # staged beside the target
        _save_tiny(run)
    assert _entries(tmp_path) == ["run"]  # no partial, no lock file left
    m = read_marker(out)
    assert m["kind"] == "train" and m["complete"] is True
    assert run_kind(out) == "train"
    model, spec, metrics = load_run(out)
    assert metrics == {"seed": 0}


def test_a_failing_command_keeps_the_previous_run_and_leaves_nothing_behind(tmp_path):
    out = tmp_path / "run"
    with RunDir.create(out, kind="train") as run:
        _save_tiny(run, seed=1)
    before = {f: (out / f).read_bytes() for f in ("arch.json", "model.pt", "metrics.json", "manifest.json")}
    with pytest.raises(RuntimeError, match="boom"):
        with RunDir.create(out, kind="train") as run:
            _save_tiny(run, seed=2)
            raise RuntimeError("boom")
    assert {f: (out / f).read_bytes() for f in before} == before
    assert _entries(tmp_path) == ["run"]
    # a new directory whose command fails is not created at all, nor are its missing parents
    with pytest.raises(UserError):
        with RunDir.create(tmp_path / "a" / "b" / "new", kind="train"):
            raise UserError("bad option")
    assert _entries(tmp_path) == ["run"]


def test_one_kind_never_overwrites_another(tmp_path):
    out = tmp_path / "run"
    with RunDir.create(out, kind="train") as run:
        _save_tiny(run)
    with pytest.raises(UserError, match=r"holds a `train` run; `search mse` will not overwrite it"):
        with RunDir.create(out, kind="search mse"):
            pass
    assert read_marker(out)["kind"] == "train"
    junk = tmp_path / "home"
    junk.mkdir()
    (junk / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a neurosynth run"):
        with RunDir.create(junk, kind="train"):
            pass
    assert (junk / "notes.txt").read_text() == "mine"
    # an empty directory is fine
    (tmp_path / "empty").mkdir()
    with RunDir.create(tmp_path / "empty", kind="train") as run:
        _save_tiny(run)
    assert read_marker(tmp_path / "empty")["complete"]


def test_legacy_run_directories_get_their_kind_from_the_manifest(tmp_path):
    legacy = RunDir(tmp_path / "old")  # written before run.json existed
    _save_tiny(legacy)
    assert run_kind(legacy.path) == "train"
    with RunDir.create(legacy.path, kind="train") as run:  # retraining into it is allowed
        _save_tiny(run, seed=3)
    with pytest.raises(UserError, match="holds a `train` run"):
        with RunDir.create(legacy.path, kind="search mse"):
            pass
    demo = RunDir(tmp_path / "demo")
    demo.write_manifest(["/usr/bin/neurosynth", "demo", "--out", "runs/train"], {}, 0)
    assert run_kind(demo.path) == "demo"
    trained = RunDir(tmp_path / "t")
    trained.write_manifest(["neurosynth", "train", "--out", "runs/demo/search"], {}, 0)
    assert run_kind(trained.path) == "train"
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "archive.sqlite").write_bytes(b"")
    assert run_kind(tmp_path / "s") == "search mse"


def test_second_writer_fails_naming_the_holders_pid(tmp_path):
    out = tmp_path / "run"
    with RunDir.create(out, kind="train"):
        with pytest.raises(UserError, match=rf"another neurosynth process \(pid {os.getpid()}\)"):
            with RunDir.create(out, kind="train"):
                pass
    # across processes: another process holds the lock file
    lock = tmp_path / ".run.lock"
    code = ("import fcntl, os, sys, time\n"
            f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, str(os.getpid()).encode())\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=rf"\(pid {proc.pid}\)"):
            with RunDir.create(out, kind="train"):
                pass
    finally:
        proc.kill()
        proc.wait()
    with RunDir.create(out, kind="train") as run:  # the lock dies with its holder
        _save_tiny(run)


def test_resume_continues_an_interrupted_partial_and_replace_false_protects_a_finished_run(tmp_path):
    out = tmp_path / "search"
    with pytest.raises(KeyboardInterrupt):
        with RunDir.create(out, kind="search mse", replace=False) as run:
            (run.path / "archive.sqlite").write_text("gen 0")
            run.keep_on_error = True  # evaluations archived: keep them for --resume
            raise KeyboardInterrupt
    assert not out.exists() and (tmp_path / ".search.partial").is_dir()
    with pytest.raises(UserError, match="interrupted `search mse` run"):
        with RunDir.create(out, kind="search mse", replace=False):
            pass
    with pytest.raises(UserError, match="incomplete `search mse` run"):
        check_run(tmp_path / ".search.partial")
    with RunDir.create(out, kind="search mse", resume=True, replace=False) as run:
        assert (run.path / "archive.sqlite").read_text() == "gen 0"
        (run.path / "archive.sqlite").write_text("gen 0, gen 1")
    assert (out / "archive.sqlite").read_text() == "gen 0, gen 1"
    with pytest.raises(UserError, match="pass --resume"):
        with RunDir.create(out, kind="search mse", replace=False):
            pass
    with RunDir.create(out, kind="search mse", resume=True, replace=False) as run:  # resume a finished one
        assert (run.path / "archive.sqlite").read_text() == "gen 0, gen 1"
    assert _entries(tmp_path) == ["search"]


def test_run_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with RunDir.create(tmp_path / "run", kind="train") as run:
            _save_tiny(run)
    finally:
        os.umask(old)
    for f in ("arch.json", "model.pt", "metrics.json", "manifest.json", "run.json"):
        assert stat.S_IMODE(os.stat(tmp_path / "run" / f).st_mode) == 0o644, f


def test_unwritable_out_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot write --out /proc/x"):
        with RunDir.create("/proc/x", kind="train"):
            pass


# ---------------------------------------------------------------- load_run refusals
@pytest.fixture
def model_run(tmp_path):
    with RunDir.create(tmp_path / "m", kind="train") as run:
        _save_tiny(run)
    return tmp_path / "m"


def test_load_run_refuses_a_search_directory_and_an_incomplete_run(tmp_path, model_run):
    with RunDir.create(tmp_path / "s", kind="search mse") as run:
        run.write_json("best.json", {})
    with pytest.raises(UserError, match=r"holds a `search mse` run, which has no model"):
        load_run(tmp_path / "s")
    m = json.loads((model_run / "run.json").read_text())
    (model_run / "run.json").write_text(json.dumps({**m, "complete": False}))
    with pytest.raises(UserError, match="incomplete `train` run"):
        load_run(model_run)


@pytest.mark.parametrize("damage, message", [
    (lambda d: torch.save(torch.zeros(3), d / "model.pt"), "holds a Tensor, not a state_dict"),
    (lambda d: (d / "model.pt").write_bytes(b""), "is empty"),
    (lambda d: (d / "model.pt").write_bytes(b"PK\x03\x04garbage"), "cannot load"),
    (lambda d: (d / "arch.json").write_text(json.dumps(mlp_spec(4, [-3], 2))), "not a valid ArchSpec"),
    (lambda d: (d / "arch.json").write_text("{"), "not valid JSON"),
    (lambda d: torch.save({"0.weight": torch.zeros(1)}, d / "model.pt"), "does not match"),
])
def test_load_run_turns_damaged_files_into_clear_errors(model_run, damage, message):
    damage(model_run)
    with pytest.raises(UserError, match=message):
        load_run(model_run)


def test_lock_file_is_removed_and_retaken_without_races(tmp_path):
    # many sequential writers: each one removes its lock file, the next one takes a fresh one
    for i in range(5):
        with RunDir.create(tmp_path / "run", kind="train") as run:
            run.write_json("i.json", i)
    assert json.loads((tmp_path / "run" / "i.json").read_text()) == 4
    assert _entries(tmp_path) == ["run"]


def test_a_symlinked_out_is_followed_and_stays_a_link(tmp_path):
    """issue 22: the link was replaced by a directory and a stale .partial link was left beside it."""
    with RunDir.create(tmp_path / "real", kind="train") as run:
        _save_tiny(run, seed=1)
    (tmp_path / "link").symlink_to("real")
    with RunDir.create(tmp_path / "link", kind="train") as run:
        _save_tiny(run, seed=2)
    assert (tmp_path / "link").is_symlink() and _entries(tmp_path) == ["link", "real"]
    assert json.loads((tmp_path / "real" / "manifest.json").read_text())["seed"] == 2
    check_run(tmp_path / "link")
    # a dangling link: the run is created where it points
    (tmp_path / "dangling").symlink_to("made")
    with RunDir.create(tmp_path / "dangling", kind="train") as run:
        _save_tiny(run)
    assert (tmp_path / "dangling").is_symlink() and (tmp_path / "made" / "model.pt").is_file()
    assert _entries(tmp_path) == ["dangling", "link", "made", "real"]
