"""Hostile input, second pass (issue 22): every single file a command writes follows one rule (an existing path
needs --force, only regular files are ever written, symlinks are followed, temp file + rename), searches never
replace each other, NaN weights are refused, full disks and absurd sizes are one `error:` line."""

import errno
import json
import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurosynth.apps.cli import main
from neurosynth.arch import build, mlp_spec
from neurosynth.errors import UserError
from neurosynth.io import atomic_path, atomic_write, stale_temp_files
from neurosynth.rundir import RunDir, check_output, output_file


def _run(out: Path, *, nan: bool = False, reset: str = "zero") -> Path:
    spec = mlp_spec(64, [8], 10, reset=reset)
    model = build(spec)
    if nan:
        with torch.no_grad():
            next(model.parameters())[0, 0] = float("nan")
    with RunDir.create(out, kind="train") as run:
        run.save_model(model, spec)
        run.write_json("metrics.json", {})
        run.write_manifest(["neurosynth", "train"], {"dataset": "digits", "T": 2, "encoder": "rate"}, 0)
    return out


def _snapshot(d: Path) -> dict:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.fixture
def run_dir(tmp_path):
    return _run(tmp_path / "run")


ENERGY = ["energy", "--samples", "2", "--no-progress"]


# ---------------------------------------------------------------- the one rule for single output files
def test_energy_out_never_overwrites_a_run_file_or_an_existing_file(tmp_path, run_dir, capsys):
    before = _snapshot(run_dir)
    for force in ([], ["--force"]):  # a run's own files are off limits even with --force
        assert main([*ENERGY, "--model", str(run_dir), "--out", str(run_dir / "model.pt"), *force]) == 2
        assert "is a file of the run" in _error(capsys)
    assert _snapshot(run_dir) == before
    other = tmp_path / "mine.json"
    other.write_text("keep")
    assert main([*ENERGY, "--model", str(run_dir), "--out", str(other)]) == 2
    assert "already exists; pass --force" in _error(capsys)
    assert other.read_text() == "keep"
    assert main([*ENERGY, "--model", str(run_dir), "--out", str(other), "--force"]) == 0
    assert "counts" in json.loads(other.read_text())
    # the default RUN_DIR/energy.json is the run's own result: replaced on each run (and the temp files a killed
    # earlier run left are removed)
    (run_dir / ".energy.json.k1ll3d9x.tmp").write_text("{")
    assert main([*ENERGY, "--model", str(run_dir)]) == 0
    assert not (run_dir / ".energy.json.k1ll3d9x.tmp").exists()
    assert main([*ENERGY, "--model", str(run_dir)]) == 0
    assert not [n for n in os.listdir(run_dir.parent) if n.endswith(".lock")]


def test_data_plot_out_cannot_overwrite_a_run_file_and_needs_force(tmp_path, run_dir, capsys):
    arch = (run_dir / "arch.json").read_bytes()
    assert main(["data", "plot", "digits", "--out", str(run_dir / "arch.json"), "--force"]) == 2
    assert "is a file of the run" in _error(capsys)
    assert (run_dir / "arch.json").read_bytes() == arch
    png = tmp_path / "x.png"
    assert main(["data", "plot", "digits", "--out", str(png)]) == 0
    first = png.read_bytes()
    assert first[:4] == b"\x89PNG"
    assert main(["data", "plot", "digits", "--out", str(png), "--index", "1"]) == 2
    assert "already exists" in _error(capsys)
    assert png.read_bytes() == first
    assert main(["data", "plot", "digits", "--out", str(png), "--index", "1", "--force"]) == 0
    assert png.read_bytes() != first
    assert main(["data", "plot", "digits", "--split", "foo", "--out", str(tmp_path / "y.png")]) == 2
    assert "--split 'foo' is not a split of digits" in _error(capsys)


@pytest.mark.parametrize("cmd", [
    lambda out: [*ENERGY, "--model", "RUN", "--out", out, "--force"],
    lambda out: ["data", "plot", "digits", "--out", out, "--force"],
    lambda out: ["data", "simulate-events", "FRAMES", "--fps", "10", "--out", out, "--force"],
    lambda out: ["data", "encode-audio", "x.wav", "--out", out, "--force"],
    lambda out: ["export", "nir", "--model", "RUN", "--out", out, "--force"],
    lambda out: ["export", "loihi", "--model", "RUN", "--out", out, "--force"],
], ids=["energy", "data-plot", "simulate-events", "encode-audio", "export-nir", "export-loihi"])
def test_no_command_writes_to_a_device_node_or_a_directory(tmp_path, run_dir, capsys, monkeypatch, cmd):
    monkeypatch.chdir(tmp_path)
    import numpy as np

    np.save(tmp_path / "FRAMES.npy", np.zeros((3, 4, 4), np.uint8))

    def fix(argv):
        return [str(run_dir) if a == "RUN" else str(tmp_path / "FRAMES.npy") if a == "FRAMES" else a for a in argv]

    # a device node (the issue destroyed /dev/full as root), here behind a symlink: refused even with --force
    dev = tmp_path / "dev.npy"
    dev.symlink_to("/dev/null")
    st = os.stat("/dev/null")
    assert main(fix(cmd(str(dev)))) == 2
    assert "/dev/null is not a regular file" in _error(capsys)
    assert os.stat("/dev/null").st_rdev == st.st_rdev and dev.is_symlink()
    (tmp_path / "adir.npy").mkdir()
    assert main(fix(cmd(str(tmp_path / "adir.npy")))) == 2
    msg = _error(capsys)
    assert "is a directory" in msg or "is a folder" in msg
    assert (tmp_path / "adir.npy").is_dir()


def test_atomic_writers_refuse_non_regular_files_and_follow_symlinks(tmp_path):
    with pytest.raises(UserError, match="not a regular file"):
        with atomic_write("/dev/null") as f:
            f.write("x")
    with pytest.raises(UserError, match="not a regular file"):
        with atomic_path("/dev/null"):
            pass
    target = tmp_path / "real.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    with atomic_write(link) as f:
        f.write("new")
    assert link.is_symlink() and target.read_text() == "new"  # the link still points at the (new) file
    assert check_output(link, force=True) == target


def test_a_name_too_long_for_the_temp_file_is_a_user_error(tmp_path, capsys):
    long = tmp_path / ("n" * 250 + ".png")
    assert main(["data", "plot", "digits", "--out", str(long)]) == 2
    assert "choose a shorter name" in _error(capsys)


def test_export_side_files_follow_the_rule(tmp_path, capsys):
    run = _run(tmp_path / "run")
    man = tmp_path / "net.nir.manifest.json"
    man.write_text("mine")
    assert main(["export", "nir", "--model", str(run), "--out", str(tmp_path / "net.nir"), "--verify", "0"]) == 2
    assert "net.nir.manifest.json already exists; pass --force" in _error(capsys)
    assert man.read_text() == "mine" and not (tmp_path / "net.nir").exists()
    # export loihi --out net.png --verify N would write its check plot over the network
    assert main(["export", "loihi", "--model", str(run), "--out", str(tmp_path / "net.png"), "--verify", "2"]) == 2
    assert "is the same file as" in _error(capsys)


def test_output_file_removes_the_temp_files_of_a_killed_write(tmp_path):
    out = tmp_path / "net.h5"
    stale = [tmp_path / ".net.k3j_9xq2.h5", tmp_path / ".net.h5.abcdefgh.tmp"]
    keep = [tmp_path / ".net.keep.h5", tmp_path / "other.h5", tmp_path / ".other.abcdefgh.h5"]
    for p in stale + keep:
        p.write_bytes(b"x")
    assert sorted(stale_temp_files(out)) == sorted(stale)
    with output_file(out) as target, atomic_path(target) as tmp:
        tmp.write_bytes(b"net")
    assert out.read_bytes() == b"net"
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in [out, *keep])


# ---------------------------------------------------------------- NaN / inf weights
@pytest.mark.parametrize("fmt", ["loihi", "nir"])
def test_nan_weights_are_refused_by_the_exporters(tmp_path, capsys, fmt):
    run = _run(tmp_path / "bad", nan=True)
    out = tmp_path / f"net.{fmt}"
    assert main(["export", fmt, "--model", str(run), "--out", str(out)]) == 2
    assert "NaN or infinite" in _error(capsys)
    assert sorted(os.listdir(tmp_path)) == ["bad"]


def test_export_nir_validates_input_shape_and_T(tmp_path, capsys):
    run = _run(tmp_path / "run")
    out = str(tmp_path / "n.nir")
    assert main(["export", "nir", "--model", str(run), "--out", out, "--T", "0"]) == 2
    assert "--T must be >= 1" in _error(capsys)
    assert main(["export", "nir", "--model", str(run), "--out", out, "--input-shape", "3,4"]) == 2
    assert "does not match the model's input shape" in _error(capsys)
    assert main(["export", "nir", "--model", str(run), "--out", out, "--input-shape", "-64"]) == 2
    assert "positive integers" in _error(capsys)
    assert sorted(os.listdir(tmp_path)) == ["run"]


# ---------------------------------------------------------------- messages
def test_a_file_given_as_model_is_named_a_file(tmp_path, capsys):
    run = _run(tmp_path / "run")
    assert main([*ENERGY, "--model", str(run / "model.pt")]) == 2
    msg = _error(capsys)
    assert "is a file, not a" in msg and "does not exist" not in msg


def test_a_pickled_model_pt_does_not_repeat_torchs_unsafe_advice(tmp_path, capsys):
    run = _run(tmp_path / "run")
    import argparse

    torch.save({"x": argparse.Namespace(a=1)}, run / "model.pt")  # a pickled object weights_only refuses
    assert main([*ENERGY, "--model", str(run)]) == 2
    msg = _error(capsys)
    assert "weights_only" not in msg and "never unpickles" in msg


def test_disk_full_is_one_error_line_leaving_the_previous_file(tmp_path, run_dir, capsys, monkeypatch):
    out = tmp_path / "e.json"
    out.write_text("previous")
    real = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    assert main([*ENERGY, "--model", str(run_dir), "--out", str(out), "--force"]) == 2
    assert "the disk is full" in _error(capsys)
    monkeypatch.setattr(os, "fsync", real)
    assert out.read_text() == "previous"
    assert sorted(os.listdir(tmp_path)) == ["e.json", "run"]


def test_example_scripts_turn_an_unusable_out_path_into_one_error_line(tmp_path, capsys):
    """``run_script`` (every example script's entry) maps what the CLI maps: a path that cannot be created or written
    (a file where a folder should be, a read-only or unwritable place) and a full disk are one ``error:`` line and exit
    2; a missing input file and an OSError naming no file stay the code's own (a traceback)."""
    from neurosynth.errors import path_error, run_script

    blocker = tmp_path / "a_file"
    blocker.write_text("x")

    def writes_into_a_file():
        (blocker / "out").mkdir(parents=True)

    assert run_script(writes_into_a_file) == 2
    line = _error(capsys)
    assert str(blocker) in line and "choose a path you can write to" in line
    for code in (errno.EACCES, errno.EROFS, errno.EPERM):
        assert "cannot use /x/y" in str(path_error(PermissionError(code, os.strerror(code), "/x/y")))
    assert "the disk is full" in str(path_error(OSError(errno.ENOSPC, "No space left on device", "/x")))
    assert path_error(FileNotFoundError(errno.ENOENT, "No such file", "/x")) is None  # the readers name inputs
    assert path_error(OSError(errno.EACCES, "Permission denied")) is None  # no file named: not the user's path
    assert path_error(ValueError("bug")) is None

    def bug():
        raise ValueError("a bug stays a traceback")

    with pytest.raises(ValueError, match="stays a traceback"):
        run_script(bug)
    assert main(["train", "--dataset", "digits", "--epochs", "1", "--out", str(blocker / "run")]) == 2
    assert str(blocker) in _error(capsys)


# ---------------------------------------------------------------- a run's method is part of its kind
@pytest.mark.parametrize("marker_kind", ["search bio evo", "search bio"])  # "search bio": written before 22
def test_search_bio_darts_never_replaces_an_evo_search(tmp_path, capsys, marker_kind):
    out = tmp_path / "s"
    with RunDir.create(out, kind="search bio evo") as run:
        run.write_json("search.json", {"method": "evo"})
        run.write_manifest(["neurosynth", "search", "bio"], {"method": "evo"}, 0)
    marker = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**marker, "kind": marker_kind}))
    before = _snapshot(out)
    for extra in ([], ["--resume"]):
        rc = main(["search", "bio", "--method", "darts", "--space", "nb201", "--dataset", "digits", "--out", str(out),
                   "--epochs", "1", "--warmup", "0", "--C", "4", "--limit-train", "48", "--batch-size", "24",
                   "--no-progress", *extra])
        assert rc == 2
        msg = capsys.readouterr().err
        assert "holds a `search bio evo` run; `search bio darts` will not overwrite it" in msg, msg
    assert _snapshot(out) == before
    # and an evo search over an evo search needs --resume (as search mse)
    with pytest.raises(UserError, match="already holds a `search bio evo` run; pass --resume"):
        with RunDir.create(out, kind="search bio evo", replace=False):
            pass


# ---------------------------------------------------------------- SHD-layout files validated on open
@pytest.mark.parametrize("damage, message", [
    ("negative_time", "spike time -0.5 s"),
    ("nan_time", "spike time nan s"),
    ("label", "label 25 is outside 0..19"),
    ("negative_unit", "negative channel id -3"),
])
def test_shd_layout_files_are_validated_on_open(tmp_path, damage, message):
    import h5py
    import numpy as np

    from neurosynth.datasets import load
    from neurosynth.datasets.errors import CorruptFileError
    from neurosynth.datasets.testing import _vlen, write_fake_shd

    files = write_fake_shd(tmp_path, n_train=4, n_test=2)
    path = files["train"]["path"]
    with h5py.File(path, "r+") as f:
        times = [np.asarray(t, np.float32) for t in f["spikes/times"][()]]
        units = [np.asarray(u, np.int32) for u in f["spikes/units"][()]]
        labels = np.asarray(f["labels"][()])
        if damage == "negative_time":
            times[1][0] = -0.5
        elif damage == "nan_time":
            times[2][-1] = np.nan
        elif damage == "label":
            labels[0] = 25
        else:
            units[3][0] = -3
        for key in ("spikes/times", "spikes/units", "labels"):
            del f[key]
        f.create_dataset("spikes/times", data=_vlen(times, np.float32), dtype=h5py.vlen_dtype(np.float32))
        f.create_dataset("spikes/units", data=_vlen(units, np.int32), dtype=h5py.vlen_dtype(np.int32))
        f.create_dataset("labels", data=labels)
    with pytest.raises(CorruptFileError, match=message):
        load("shd", tmp_path, "train", cache=False)


# ---------------------------------------------------------------- absurd sizes and unvalidated fields
@pytest.mark.parametrize("argv, message", [
    (["--T", "100000000"], "T=100000000"),
    (["--hidden", "1000000000"], "64-1000000000-10"),
])
def test_absurd_train_sizes_are_refused_with_an_estimate_before_allocating(tmp_path, capsys, argv, message):
    assert main(["train", *argv, "--epochs", "1", "--no-progress", "--out", str(tmp_path / "r")]) == 2
    msg = _error(capsys)
    assert message in msg and "of memory and this machine has" in msg
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("edit, message", [
    ({"input_shape": [-5]}, "input_shape must be a list of positive integers"),
    ({"input_shape": "abc"}, "input_shape must be a list of positive integers"),
    ({"input_shape": [10**12]}, "inputs per sample"),
    ({"layer0_out": 10**9}, "64,000,000,080 weights"),
])
def test_damaged_arch_json_sizes_are_refused(tmp_path, capsys, edit, message):
    run = _run(tmp_path / "run")
    spec = json.loads((run / "arch.json").read_text())
    if "layer0_out" in edit:
        spec["layers"][0]["out_features"] = edit["layer0_out"]
    else:
        spec.update(edit)
    (run / "arch.json").write_text(json.dumps(spec))
    for argv in ([*ENERGY, "--model", str(run)], ["export", "nir", "--model", str(run), "--out", str(tmp_path / "n.nir")]):
        assert main(argv) == 2
        assert message in _error(capsys)
    assert not (tmp_path / "n.nir").exists() and not (run / "energy.json").exists()


def test_huge_verification_steps_are_refused(tmp_path, capsys):
    run = _run(tmp_path / "run")
    assert main(["export", "nir", "--model", str(run), "--out", str(tmp_path / "n.nir"), "--T", "1000000000"]) == 2
    assert "1000000000 steps needs about" in _error(capsys)


@pytest.mark.parametrize("param, message", [
    ("fgsm.eps=abc", "fgsm.eps takes a finite number (default"),
    ("fgsm.eps=nan", "fgsm.eps takes a finite number (default"),
    ("pgd.steps=2.5", "pgd.steps takes a whole number (default"),
    ("fgsm.eps=NaN", "finite number"),
    ("pgd.steps=Infinity", "finite number"),
])
def test_robustness_param_values_are_checked(tmp_path, capsys, param, message):
    run = _run(tmp_path / "run")
    assert main(["robustness", "--model", str(run), "--attacks", "fgsm", "--param", param, "--no-progress"]) == 2
    assert message in _error(capsys)
    assert sorted(os.listdir(tmp_path)) == ["run"] and not (run / "robustness").exists()


# ---------------------------------------------------------------- messages
def test_train_unknown_dataset_names_the_dataset_not_an_arch(tmp_path, capsys):
    assert main(["train", "--dataset", "foo", "--out", str(tmp_path / "r")]) == 2
    msg = _error(capsys)
    assert "--dataset 'foo' is not a registered dataset" in msg and "--arch" not in msg


def test_ctrl_c_leaves_no_lock_file(tmp_path, run_dir, capsys, monkeypatch):
    import neurosynth.hardware.energy as energy

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(energy, "count_ops_loader", interrupted)
    for out in ([], ["--out", str(tmp_path / "e.json")]):
        assert main([*ENERGY, "--model", str(run_dir), *out]) == 130
        assert sorted(os.listdir(tmp_path)) == ["run"]
        assert not [n for n in os.listdir(run_dir) if n.startswith(".")]


@pytest.mark.slow
def test_a_damaged_strategy_state_names_the_archive(tmp_path, capsys):
    import sqlite3

    search = ["search", "mse", "--fidelity", "none", "--population", "2", "--generations", "1", "--batch", "20", "--T", "2", "--seed", "3",
              "--no-progress", "--out", str(tmp_path / "s")]
    assert main(search) == 0
    with sqlite3.connect(str(tmp_path / "s" / "archive.sqlite")) as db:
        db.execute("UPDATE strategy_state SET state = '{\"garbage\": 1}'")
    capsys.readouterr()
    assert main([*search, "--generations", "2", "--resume"]) == 2
    msg = _error(capsys)
    assert "archive.sqlite (table strategy_state) is damaged" in msg and "generation 0" in msg


@pytest.mark.parametrize("n", [250, 300])
def test_a_long_out_name_is_one_error_line(tmp_path, capsys, n):
    assert main(["train", "--epochs", "1", "--hidden", "4", "--T", "2", "--no-progress",
                 "--out", str(tmp_path / ("a" * n))]) == 2
    assert "choose a shorter name" in _error(capsys)
    assert os.listdir(tmp_path) == []


def test_energy_holds_the_runs_lock_for_the_whole_command(tmp_path, run_dir, capsys, monkeypatch):
    """A `train` committing into RUN_DIR while energy counts would get the old model's figures written into the
    new run: energy holds the writer lock from loading the model to writing its result."""
    import neurosynth.hardware.energy as energy
    from neurosynth.rundir import locked

    real = energy.count_ops_loader
    seen = {}

    def count_and_try_to_write(*a, **k):
        try:  # another writer (what RunDir.create takes) is refused while energy counts
            with RunDir.create(run_dir, kind="train"):
                pass
        except UserError as e:
            seen["error"] = str(e)
        return real(*a, **k)

    monkeypatch.setattr(energy, "count_ops_loader", count_and_try_to_write)
    assert main([*ENERGY, "--model", str(run_dir)]) == 0
    assert "is being written by another neurosynth process" in seen["error"]
    with locked(run_dir):  # and energy refuses to start while a writer holds the run
        assert main([*ENERGY, "--model", str(run_dir), "--out", str(tmp_path / "e2.json")]) == 2
    assert "being written by another neurosynth process" in _error(capsys)


# ---------------------------------------------------------------- a real full disk (a 64 KiB tmpfs; needs root)
@pytest.fixture
def full_disk(tmp_path):
    import subprocess

    mnt = tmp_path / "full"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        with open(mnt / "fill", "wb") as f:  # leave a few KiB: enough to start, not to finish
            f.write(b"\0" * (56 * 1024))
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.slow
def test_a_full_disk_is_one_error_line_for_every_writer(tmp_path, full_disk):
    """In subprocesses: h5py used to crash the interpreter (SIGSEGV) when the disk filled while it wrote."""
    import subprocess
    import sys

    import numpy as np
    from scipy.io import wavfile

    run = _run(tmp_path / "run")
    wav = tmp_path / "a.wav"
    wavfile.write(wav, 16000, (np.sin(np.arange(16000) * 0.2) * 2e4).astype(np.int16))
    np.save(tmp_path / "frames.npy", (np.random.default_rng(0).random((40, 64, 64)) * 255).astype(np.uint8))
    cases = [
        ["train", "--epochs", "1", "--hidden", "64", "--T", "2", "--no-progress", "--out", str(full_disk / "r")],
        ["energy", "--model", str(run), "--samples", "2", "--no-progress", "--out", str(full_disk / "e.json")],
        ["export", "nir", "--model", str(run), "--out", str(full_disk / "n.nir")],
        ["export", "loihi", "--model", str(run), "--out", str(full_disk / "n.h5")],
        ["search", "mse", "--fidelity", "none", "--population", "2", "--generations", "1", "--batch", "20", "--T", "2", "--no-progress",
         "--out", str(full_disk / "s")],
        ["data", "encode-audio", str(wav), str(wav), str(wav), "--out", str(full_disk / "a.h5"), "--no-progress"],
        ["data", "simulate-events", str(tmp_path / "frames.npy"), "--fps", "100", "--out", str(full_disk / "ev.npy")],
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for argv in cases:
        p = subprocess.run([sys.executable, "-m", "neurosynth", *argv], capture_output=True, text=True, env=env,
                           timeout=600)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and lines and lines[-1].startswith("error: "), (argv, p.returncode, p.stderr[-2000:])
        assert "full" in lines[-1] or "No space" in lines[-1], (argv, lines[-1])
        assert "Traceback" not in p.stderr, argv
        assert sorted(os.listdir(full_disk)) == ["fill"], (argv, os.listdir(full_disk))


# ---------------------------------------------------------------- fuzz: what --out may be
OUT_KINDS = ["new", "existing", "directory", "link-to-file", "link-to-dir", "link-to-device", "dangling-link",
             "long", "newline", "run-file", "in-missing-folder"]


def _make_out(base: Path, kind: str) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    p = base / "out.png"
    if kind == "existing":
        p.write_bytes(b"keep")
    elif kind == "directory":
        p.mkdir()
    elif kind == "link-to-file":
        (base / "target.png").write_bytes(b"keep")
        p.symlink_to("target.png")
    elif kind == "link-to-dir":
        (base / "d").mkdir()
        p.symlink_to("d")
    elif kind == "link-to-device":
        p.symlink_to("/dev/null")
    elif kind == "dangling-link":
        p.symlink_to("nowhere/x.png")
    elif kind == "long":
        p = base / ("n" * 260 + ".png")
    elif kind == "newline":
        p = base / "a\nb.png"
    elif kind == "run-file":
        p = _run(base / "run") / "arch.json"
    elif kind == "in-missing-folder":
        p = base / "x" / "y" / "out.png"
    return p


def _files(base: Path) -> dict:
    return {str(q.relative_to(base)): (q.read_bytes() if q.is_file() and not q.is_symlink() else os.readlink(q)
                                       if q.is_symlink() else None) for q in sorted(base.rglob("*"))}


@settings(max_examples=22, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kind=st.sampled_from(OUT_KINDS), force=st.booleans())
def test_fuzz_single_file_out(tmp_path_factory, kind, force):
    base = tmp_path_factory.mktemp("fuzz")
    out = _make_out(base, kind)
    before = _files(base)
    rc = main(["data", "plot", "digits", "--out", str(out), *(["--force"] if force else [])])
    assert rc in (0, 2)
    after = _files(base)
    assert not [k for k in after if ".lock" in k or ".tmp" in k or ".partial" in k]  # nothing half-written
    if rc == 2:
        assert after == before  # a refusal changes nothing
    else:
        written = Path(os.path.realpath(out))
        assert written.is_file() and written.read_bytes()[:4] == b"\x89PNG"
        assert kind in ("new", "newline", "in-missing-folder", "dangling-link") or force
        if kind.startswith("link"):
            assert out.is_symlink()  # followed, not replaced
    if kind in ("directory", "link-to-dir", "link-to-device", "long", "run-file"):
        assert rc == 2
    assert os.stat("/dev/null").st_rdev != 0 and not Path("/dev/null").is_file()
