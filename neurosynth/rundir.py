"""The run directory every command writes and reads.

``arch.json`` (ArchSpec), ``model.pt`` (a state_dict, loaded with ``weights_only=True``), ``metrics.json``,
``manifest.json`` (command, config, seed, package versions, hardware, git commit, timestamp, results) and
``plots/*.png``, and ``run.json`` (kind + completeness marker, written last). Every file is written atomically,
and a command writes the whole directory atomically with :meth:`RunDir.create`: it builds the new run in
``.<name>.partial`` beside the target under an exclusive lock (``.<name>.lock``) and swaps it in only when it
is complete, so an interrupted command (even ``kill -9``) never leaves a mixed or half-written run and never
destroys the previous one.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import UserError
from .io import (
    atomic_path,
    check_name_length,
    file_mode,
    read_json,
    stale_temp_files,
    writable_target,
    write_json,
)

MARKER = "run.json"
#: 2: ``arch.json`` is ``neurosynth.arch/2`` (names its hardware target); 1 (release 0.1.0) still loads:
#: :func:`load_run` maps its old ArchSpec strings through ``neurosynth.arch.upgrade``
RUN_FORMAT = "neurosynth.run/2"
RUN_FORMATS = ("neurosynth.run/1", RUN_FORMAT)
#: kinds whose directory holds a model (arch.json + model.pt); legacy model dirs are compatible with these
MODEL_KINDS = {"train", "convert", "example"}
#: the kill point of a test: ``NEUROSYNTH_TEST_KILL=<point>`` makes the process SIGKILL itself there
KILL_ENV = "NEUROSYNTH_TEST_KILL"


def kill_point(name: str) -> None:
    """Test hook: ``kill -9`` this process at ``name`` when ``$NEUROSYNTH_TEST_KILL`` names it."""
    if os.environ.get(KILL_ENV) == name:  # pragma: no cover - the process dies here
        os.kill(os.getpid(), signal.SIGKILL)

PACKAGES = ("neurosynth", "torch", "numpy", "scikit-learn", "tonic", "nir", "lava-nc", "cma", "pymoo", "snntorch",
            "spikingjelly", "torchattacks", "ray")


def package_versions(names=PACKAGES) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    return out


def hardware_info() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(),
                            "cpu_count": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # pragma: no cover
        pass
    return info


def git_commit(cwd: str | Path | None = None) -> str | None:
    here = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        commit = out.stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


#: the datasets this process has loaded, ``{"name/split": {"sha256": ..., ...}}``: every manifest records them, so
#: a run names the exact files it trained and was tested on (filled by the dataset loaders)
_DATASETS: dict[str, dict] = {}


def record_dataset(name: str, split: str, **info) -> None:
    """Note that this process loaded ``split`` of dataset ``name`` (with its ``sha256`` and other facts) for the
    ``datasets`` field of every manifest written afterwards."""
    _DATASETS[f"{name}/{split}"] = {k: v for k, v in info.items() if v is not None}


def recorded_datasets() -> dict[str, dict]:
    return {k: dict(v) for k, v in _DATASETS.items()}


def manifest(command: str | list[str] | None, config: dict, seed: int | None, results: dict | None = None,
             **sections) -> dict:
    """The manifest of a run. ``sections`` add named parts (a training run: ``split`` = how the validation split
    was made, ``selection`` = the rule that chose the epoch and the chosen epoch); ``None`` values are left out."""
    if command is None:
        command = sys.argv
    if isinstance(command, (list, tuple)):
        command = " ".join(map(str, command))
    return {
        "command": command,
        "config": config,
        "seed": seed,
        "versions": package_versions(),
        "hardware": hardware_info(),
        "git_commit": git_commit(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "results": results or {},
        "kernels": _kernel_record(),
        "datasets": recorded_datasets(),
        **{k: v for k, v in sections.items() if v is not None},
    }


def _kernel_record() -> dict:
    """Which fused-kernel implementation ran in this process (the CUDA self-check, generated custom kernels)."""
    from .functional import kernel_record

    return kernel_record()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def read_marker(path: str | os.PathLike) -> dict | None:
    """The ``run.json`` marker of a run directory, or None (no marker: not written by RunDir.create)."""
    f = Path(path) / MARKER
    if not f.is_file():
        return None
    try:
        m = read_json(f)
    except UserError:
        return {"kind": None, "complete": False}
    if not isinstance(m, dict) or not isinstance(m.get("kind"), str) or not isinstance(m.get("complete"), bool):
        return {"kind": None, "complete": False}  # damaged: never trusted as a complete run
    if m.get("format", RUN_FORMATS[0]) not in RUN_FORMATS:
        raise UserError(f"{f} has format {m.get('format')!r}, which this version cannot read (it reads "
                        f"{', '.join(RUN_FORMATS)}); upgrade neurosynth")
    return m


def run_kind(path: str | os.PathLike) -> str | None:
    """The kind of command that wrote ``path`` ("train", "search mse", ...): from ``run.json``, or guessed from
    the manifest command and the files of a directory written before run.json existed; None if unknown."""
    path = Path(path)
    m = read_marker(path)
    if m is not None:
        return _refine(path, m.get("kind"))
    return _refine(path, _legacy_kind(path))


#: kinds written before the method became part of the kind: the method is read from the manifest's config
_METHOD_KINDS = {"search bio": "evo"}


def _refine(path: Path, kind: str | None) -> str | None:
    """``search bio`` runs written before the method was part of their kind: ``search bio <method>`` from the
    manifest (``search bio --method darts`` must never replace an evo search)."""
    if kind not in _METHOD_KINDS:
        return kind
    method = _METHOD_KINDS[kind]
    if (path / "manifest.json").is_file():
        with contextlib.suppress(UserError, AttributeError, TypeError):
            method = str((read_json(path / "manifest.json").get("config") or {}).get("method") or method)
    return f"{kind} {method}"


def _legacy_kind(path: Path) -> str | None:
    """The kind of a directory written before run.json existed: from its files, else its manifest's command."""
    if (path / "archive.sqlite").exists():
        return "search bio" if (path / "genotype.json").exists() or (path / "search.json").exists() else "search mse"
    if (path / "robustness.json").exists():
        return "robustness"
    cmd = ""
    if (path / "manifest.json").is_file():
        with contextlib.suppress(UserError, AttributeError, TypeError):
            cmd = str(read_json(path / "manifest.json").get("command") or "")
    words = cmd.split()
    for i, w in enumerate(words):
        if w.rsplit("/", 1)[-1] == "neurosynth":  # the sub-command follows the program name
            sub = words[i + 1:i + 3]
            for kind in ("search mse", "search bio", "demo", "convert", "robustness", "train"):
                if sub[:len(kind.split())] == kind.split():
                    return kind
            break
    if (path / "arch.json").exists() or (path / "model.pt").exists():
        return "train"
    return None


def _compatible(existing: str | None, kind: str, legacy: bool) -> bool:
    if existing == kind:
        return True
    return legacy and existing in MODEL_KINDS and kind in MODEL_KINDS


class _Lock:
    """An exclusive ``fcntl.flock`` on ``path`` holding the owner's pid; fails at once if another process has it."""

    def __init__(self, path: Path, what: Path):
        import fcntl

        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, file_mode())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
                finally:
                    os.close(fd)
                raise UserError(f"{what} is being written by another neurosynth process (pid {holder}); wait for "
                                "it to finish (or stop it), or choose another --out") from None
            try:  # the file may have been unlinked by its previous holder between our open and flock: retry
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd, self.path = fd, path

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # unlink while still holding the lock, then release
        os.close(self.fd)


@contextlib.contextmanager
def locked(path: str | os.PathLike) -> Iterator[Path]:
    """Hold the writer lock of the run directory (or file) ``path`` while the block adds files to it: the same
    lock ``RunDir.create`` and ``output_file`` take, so a command that adds a result to an existing run (e.g.
    ``neurosynth energy``) cannot interleave with a command rewriting that run."""
    path = Path(os.path.abspath(os.fspath(path)))
    if path.is_symlink():  # the lock of what the link points to, as RunDir.create takes it
        path = Path(os.path.realpath(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = _Lock(path.parent / f".{path.name}.lock", path)
    except OSError as e:
        raise _writable_error(path, e) from e
    try:
        yield path
    finally:
        lock.release()


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0


def swap_in(partial: str | os.PathLike, out: str | os.PathLike) -> None:
    """Replace the directory ``out`` by the complete directory ``partial`` (atomically on Linux; else two
    renames) and remove the old one: a kill at any moment leaves either the old or the new directory whole.
    For directories that are not runs (a generated dataset); runs use :meth:`RunDir.create`."""
    partial, out = Path(partial), Path(out)
    _fsync_dir(partial)
    if out.exists():
        if not _exchange(partial, out):
            old = out.parent / f".{out.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.rename(out, old)
            os.rename(partial, out)
            partial = old
        shutil.rmtree(partial, ignore_errors=True)
    else:
        os.rename(partial, out)
    _fsync_dir(out.parent)


def partial_path(out: str | os.PathLike) -> Path:
    """Where :meth:`RunDir.create` stages the run ``out`` (``.<name>.partial`` beside it): an interrupted run
    stays there for ``--resume``."""
    out = Path(os.path.abspath(os.fspath(out)))
    if out.is_symlink():
        out = Path(os.path.realpath(out))
    return out.parent / f".{out.name}.partial"


def _writable_error(out: Path, e: OSError) -> UserError:
    from .errors import disk_full_error

    full = disk_full_error(e)
    if full is not None:
        return full
    reason = e.strerror or str(e)
    return UserError(f"cannot write --out {out}: {reason} ({e.filename or out}); choose a directory you can write to")


class RunDir:
    """A run directory. ``RunDir(path)`` opens (and creates) ``path`` for plain file writes;
    ``RunDir.create(out, kind=...)`` is how a command writes a whole run atomically (see there)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.final = self.path  # where the run will live once complete (differs while staged)
        self.kind: str | None = None
        self.keep_on_error = False
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"{self.path} exists and is not a directory; choose another --out")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _writable_error(self.path, e) from e

    @classmethod
    @contextlib.contextmanager
    def create(cls, out: str | os.PathLike, kind: str, *, resume: bool = False,
               replace: bool = True) -> Iterator[RunDir]:
        """Write a whole run directory atomically: ``with RunDir.create(out, kind="train") as run: ...``.

        - takes an exclusive lock on ``out`` (``.<name>.lock`` beside it; a second writer gets a UserError naming
          the holder's pid);
        - refuses an ``out`` that holds another kind of run, or that is a non-empty directory not written by
          neurosynth;
        - yields a RunDir on ``.<name>.partial`` (``run.path``; ``run.final`` is ``out``), and when the block
          finishes writes ``run.json`` ({kind, complete: true}) and swaps the partial in place of ``out``
          (atomically on Linux), so an interrupted command leaves the previous run untouched;
        - on an exception removes the partial it created (and any parent folders), unless ``run.keep_on_error`` was set
          (searches set it once evaluations are archived, so ``--resume`` can continue).

        ``resume``: continue from a partial left by an interrupted run, or from a copy of the complete ``out``.
        ``replace=False``: an existing complete run of this kind is an error unless ``resume`` (searches).
        """
        out = Path(os.path.abspath(os.fspath(out)))
        check_name_length(out, len(".partial.lock") + 1, "--out")  # .<name>.partial / .<name>.lock beside it
        if out.is_symlink():  # follow it: the run is written (and swapped) where the link points; the link stays
            out = Path(os.path.realpath(out))
        if not out.name:
            raise UserError(f"--out {out} cannot be a filesystem root; choose a directory below it")
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} exists and is not a directory; choose another --out")
        created = [a for a in [out.parent, *out.parent.parents] if not a.exists()]
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            lock = _Lock(out.parent / f".{out.name}.lock", out)
        except OSError as e:
            _rmdirs(created)
            raise _writable_error(out, e) from e
        except BaseException:
            _rmdirs(created)
            raise
        partial = partial_path(out)
        run = None
        in_body = False
        ours = False  # whether a failure removes the partial: only one this call created (not a resumed one)
        try:
            if not out.exists() and partial.is_dir() and (read_marker(partial) or {}).get("complete"):
                os.rename(partial, out)  # a kill between the two renames of the non-Linux swap: finish it
            legacy = out.is_dir() and read_marker(out) is None
            if out.is_dir() and any(out.iterdir()):
                existing = run_kind(out)
                if existing is None:
                    raise UserError(f"--out {out} is a non-empty directory that is not a neurosynth run; choose a "
                                    "new or empty directory")
                if not _compatible(existing, kind, legacy):
                    raise UserError(f"--out {out} holds a `{existing}` run; `{kind}` will not overwrite it. Choose "
                                    "another --out (or delete that directory first)")
                if not replace and not resume:
                    raise UserError(f"--out {out} already holds a `{kind}` run; pass --resume to continue it, or "
                                    "choose another --out")
            if partial.exists():
                m = read_marker(partial)
                stale = m is None or m.get("complete") or _refine(partial, m.get("kind")) != kind
                if resume and not stale:
                    pass  # continue the interrupted run
                elif not replace and not resume and not stale:
                    raise UserError(f"an interrupted `{kind}` run is in {partial}; pass --resume to continue it, or "
                                    "delete that directory to start over")
                else:
                    shutil.rmtree(partial)
            if not partial.exists():
                ours = True
                if resume and out.is_dir() and any(out.iterdir()):
                    shutil.copytree(out, partial, symlinks=True)
                else:
                    partial.mkdir()
            run = cls(partial)
            run.final, run.kind = out, kind
            write_json(partial / MARKER, {"format": RUN_FORMAT, "kind": kind, "complete": False, "pid": os.getpid(),
                                          "started": _now()})
            in_body = True
            yield run
            in_body = False
            kill_point("rundir:before-commit")
            write_json(partial / MARKER, {"format": RUN_FORMAT, "kind": kind, "complete": True, "finished": _now()})
            _fsync_dir(partial)
            if out.exists():
                if not _exchange(partial, out):
                    old = out.parent / f".{out.name}.old"
                    if old.exists():
                        shutil.rmtree(old)
                    os.rename(out, old)
                    os.rename(partial, out)
                    partial = old
                kill_point("rundir:after-swap")
                shutil.rmtree(partial, ignore_errors=True)
            else:
                os.rename(partial, out)
            _fsync_dir(out.parent)
        except OSError as e:
            if ours and not (run is not None and run.keep_on_error):
                shutil.rmtree(partial, ignore_errors=True)
            lock.release()
            _rmdirs(created)
            if in_body:
                raise
            raise _writable_error(out, e) from e
        except BaseException:
            if ours and not (run is not None and run.keep_on_error):
                shutil.rmtree(partial, ignore_errors=True)
            lock.release()
            _rmdirs(created)
            raise
        lock.release()

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, obj: Any) -> Path:
        return write_json(self.path / name, obj)

    def save_model(self, model, spec: dict | None = None) -> None:
        import torch

        from .arch import to_spec
        from .plugins import with_requirements

        spec = spec if spec is not None else getattr(model, "arch_spec", None) or to_spec(model)
        spec = with_requirements(spec)  # records the --plugin each custom neuron needs (never imported on load)
        self.write_json("arch.json", spec)
        kill_point("rundir:after-arch")
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        with atomic_path(self.path / "model.pt") as tmp:
            torch.save(state, tmp)

    def write_manifest(self, command, config: dict, seed: int | None, results: dict | None = None,
                       **sections) -> Path:
        return self.write_json("manifest.json", manifest(command, config, seed, results, **sections))

    def plot_path(self, name: str) -> Path:
        (self.path / "plots").mkdir(exist_ok=True)
        return self.path / "plots" / (name if name.endswith(".png") else name + ".png")


def check_output(out: str | os.PathLike, *, force: bool = False, what: str = "--out", option: str | None = None) -> Path:
    """The one rule for a single file a command writes, checked before any work: a symlink is followed (the
    file written is its target); a directory, device node, pipe or socket is refused even with ``force``; an
    existing file is refused unless ``force``; a name too long for the temp file beside it is refused.
    Returns the path that will be written (absolute, the link's target for a symlink). ``what`` names the file
    in messages, ``option`` the option to change (default: ``what``)."""
    option = option or what
    out = writable_target(Path(os.path.abspath(os.fspath(out))), what)
    if out.exists() and out.name != MARKER and read_marker(out.parent) is not None:
        raise UserError(f"{what} {out} is a file of the run {out.parent} (written by `{run_kind(out.parent)}`); no "
                        f"other command overwrites a run's files, even with --force: choose another {option}")
    if out.exists() and not force:
        raise UserError(f"{what} {out} already exists; pass --force to overwrite it, or choose another {option}")
    return out


@contextlib.contextmanager
def output_file(out: str | os.PathLike, *, force: bool = False, what: str = "--out",
                side: tuple[str | os.PathLike, ...] = ()) -> Iterator[Path]:
    """Guard a command that writes one output file (``export``, ``energy --out``, ``data plot``...): every path
    (``out`` and the ``side`` files written with it, e.g. ``net.png`` and ``net.manifest.json``) passes
    :func:`check_output` (existing -> needs ``force``; only regular files; symlinks followed), no two of them
    may be the same file, an unwritable location is a UserError, and an exclusive lock (``.<name>.lock``
    beside ``out``) is held while the block writes. Temp files a killed earlier write left beside the paths
    are removed. Yields the path to write (a symlink's target); write it with ``atomic_path``/``atomic_write``."""
    target = check_output(out, force=force, what=what)
    extra = [check_output(p, force=force, what=f"the file written with {what},", option=what) for p in side]
    seen: dict[Path, str] = {}
    for p, label in [(target, f"{what} {out}"), *[(e, f"the side file {e.name}") for e in extra]]:
        if p in seen:
            raise UserError(f"{label} is the same file as {seen[p]}; the command writes both: choose another {what} "
                            f"(e.g. with the extension the command expects)")
        seen[p] = label
    created = [a for a in [target.parent, *target.parent.parents] if not a.exists()]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        lock = _Lock(target.parent / f".{target.name}.lock", target)
    except OSError as e:
        _rmdirs(created)
        raise _writable_error(target, e) from e
    except BaseException:
        _rmdirs(created)
        raise
    ok = False
    try:
        for p in (target, *extra):  # a kill -9 during an earlier write left these: we hold the lock, they are stale
            for stale in stale_temp_files(p):
                with contextlib.suppress(OSError):
                    stale.unlink()
        yield target
        ok = True
    except OSError as e:
        if e.filename and Path(os.path.abspath(os.fspath(e.filename))).parent == target.parent:
            raise _writable_error(target, e) from e
        raise
    finally:
        lock.release()
        if not ok:
            _rmdirs(created)


def _rmdirs(dirs: list[Path]) -> None:
    """Remove the (empty) parent folders a failed command created, deepest first."""
    for d in dirs:
        with contextlib.suppress(OSError):
            d.rmdir()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_run(path: str | os.PathLike, kinds: set[str] | None = None, what: str = "run directory") -> dict | None:
    """Refuse an incomplete run directory (one whose ``run.json`` says it was interrupted) or one of the wrong
    kind (``kinds``: the accepted kinds; None: any). Returns the marker (None for a directory written before
    run.json existed)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file, not a directory; pass the --out directory of the command that "
                        "wrote it")
    if not path.is_dir():
        raise UserError(f"{what} {path} does not exist; pass the --out directory of the command that wrote it")
    m = read_marker(path)
    kind = run_kind(path)
    if m is not None and not m.get("complete"):
        what_run = f"`{kind}` run" if isinstance(kind, str) else "run"
        raise UserError(f"{path} is an incomplete {what_run} (the command was interrupted or is still running, or "
                        f"its {MARKER} is damaged); run the command again to finish it")
    if kinds is not None and kind is not None and kind not in kinds:
        raise UserError(f"{path} holds a `{kind}` run, not a {' / '.join(f'`{k}`' for k in sorted(kinds))} run; "
                        f"pass a {what} of the right kind")
    return m


#: the largest per-sample input an ArchSpec may declare (elements): far above any dataset, far below a crash
MAX_INPUT_ELEMENTS = 2**31


def _check_spec_sizes(spec: Any, where: Path) -> None:
    """Refuse an ``arch.json`` whose ``input_shape`` is not positive integers of a sane size, or whose layers would
    need more memory than the machine has (an arch.json with 10^9 neurons), before anything is allocated."""
    if not isinstance(spec, dict):
        raise UserError(f"{where} is not a valid ArchSpec: it holds a {type(spec).__name__}, not a JSON object")
    shape = spec.get("input_shape")
    if shape is not None:
        ok = isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
        if not ok:
            raise UserError(f"{where}: input_shape must be a list of positive integers (e.g. [64] or [1, 28, 28]); "
                            f"got {shape!r}")
        n = 1
        for d in shape:
            n *= d
        if n > MAX_INPUT_ELEMENTS:
            raise UserError(f"{where}: input_shape {shape} means {n:,} inputs per sample (at most "
                            f"{MAX_INPUT_ELEMENTS:,}); the file is damaged")
    params = 0
    layers = spec.get("layers")
    for layer in layers if isinstance(layers, list) else []:  # other kinds (bionas: "layers" is a depth)
        if not isinstance(layer, dict):
            continue
        ints = {k: v for k, v in layer.items() if isinstance(v, int) and not isinstance(v, bool)}
        k = layer.get("kernel_size", 1)
        k = k * k if isinstance(k, int) else (k[0] * k[1] if isinstance(k, list) and len(k) == 2
                                              and all(isinstance(x, int) for x in k) else 1)
        if "in_features" in ints and "out_features" in ints:
            params += ints["in_features"] * ints["out_features"]
        elif "in_channels" in ints and "out_channels" in ints:
            params += ints["in_channels"] * ints["out_channels"] * k
        for key in ("num_features", "size", "n"):
            params += max(0, ints.get(key, 0))
    from .io import require_memory

    require_memory(8 * params, f"the model of {where} ({params:,} weights)",
                   "the file is damaged or the model is too large for this machine")


def load_run(path: str | os.PathLike, map_location: str = "cpu"):
    """Load ``(model, spec, metrics)`` from a run directory. Never executes code from the files.

    Refuses incomplete runs and directories without a model (a search or robustness directory) with a
    UserError that names the problem."""
    import torch

    from .arch import build, upgrade

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file, not a run directory; pass the --out directory of `neurosynth train` "
                        "(the folder holding arch.json and model.pt)")
    if not path.is_dir():
        raise UserError(f"run directory {path} does not exist; pass the --out directory of `neurosynth train`")
    m = check_run(path)
    for name in ("arch.json", "model.pt"):
        if not (path / name).exists():
            kind = m.get("kind") if m else _legacy_kind(path)
            if kind and kind not in MODEL_KINDS:
                hint = " (its trained model is in best_model/ or best/ when it was run with --train-best)" \
                    if kind.startswith("search") else ""
                raise UserError(f"{path} holds a `{kind}` run, which has no model{hint}; pass a run directory of "
                                "`neurosynth train` or `neurosynth convert`")
            raise UserError(f"{path} is not a complete run directory: {name} is missing")
    spec = upgrade(read_json(path / "arch.json"))  # old module paths -> their new homes (neurosynth.arch/2)
    _check_spec_sizes(spec, path / "arch.json")
    from .plugins import check_spec

    check_spec(spec, str(path / "arch.json"))  # custom neurons: name the --plugin, import nothing
    try:
        model = build(spec)
    except UserError:
        raise
    except (ValueError, TypeError, KeyError, RuntimeError, AttributeError) as e:
        raise UserError(f"{path / 'arch.json'} is not a valid ArchSpec: {e or type(e).__name__}") from e
    if (path / "model.pt").stat().st_size == 0:
        raise UserError(f"{path / 'model.pt'} is empty (0 bytes): the run was interrupted while saving; train again")
    try:
        state = torch.load(path / "model.pt", map_location=map_location, weights_only=True)
    except Exception as e:  # truncated / corrupt / not a state dict
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights only" in str(e).lower() or "weights_only" in str(e):  # never repeat torch's unsafe advice
            reason = ("it holds Python objects, not only tensors (neurosynth never unpickles those: loading them "
                      "could run code)")
        raise UserError(f"cannot load {path / 'model.pt'}: {reason}. The file is corrupt or was not written by "
                        "neurosynth") from e
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise UserError(f"{path / 'model.pt'} holds a {type(state).__name__}, not a state_dict (a dict of named "
                        "tensors); it was not written by neurosynth")
    try:
        model.load_state_dict(state)
    except (RuntimeError, ValueError) as e:
        raise UserError(f"{path / 'model.pt'} does not match {path / 'arch.json'}: {e}") from e
    model.eval()
    metrics = read_json(path / "metrics.json") if (path / "metrics.json").exists() else {}
    return model, spec, metrics


def model_file_bytes(model) -> int:
    """About how many bytes a file holding ``model``'s parameters takes (float64 and 1 MiB of headers: generous),
    for :func:`neurosynth.io.require_free_space` before an export."""
    return 8 * sum(t.numel() for t in [*model.parameters(), *model.buffers()]) + (1 << 20)


def require_finite(model, path: str | os.PathLike, purpose: str) -> None:
    """Refuse a model with a NaN or infinite parameter or buffer (a diverged training): exporters would turn them
    into garbage integers (Loihi) or crash (NIR). Names the first bad tensor and how many values are bad."""
    import torch

    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise UserError(f"{Path(path) / 'model.pt'} has {bad} NaN or infinite value(s) in {name}; it cannot be "
                            f"used for {purpose} (the training diverged: train again, e.g. with a lower --lr)")


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)
