"""Atomic file writes: a crash never leaves a half-written file that a later run trusts."""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def file_mode() -> int:
    """The mode a new file gets from the user's umask (0o666 & ~umask), as ``open()`` would give it.

    ``tempfile.mkstemp`` creates 0600 files; the atomic writers set this mode before the rename so run files
    are as readable as anything else the user writes."""
    return 0o666 & ~_umask()


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask(0) would briefly affect other threads)
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temp file next to ``path``; on success fsync and rename it over ``path``.

    On any exception the temp file is removed and ``path`` is left untouched.
    ``mode`` is ``"w"`` (text) or ``"wb"`` (binary). A symlinked ``path`` is followed (its target is replaced);
    anything but a regular file at ``path`` (a directory, a device such as /dev/full, a pipe) is refused.
    """
    path = writable_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to ``path`` for libraries that write by file name (h5py, torch.save,
    matplotlib); rename it over ``path`` on success, delete it on failure. Follows a symlinked ``path`` and
    refuses anything but a regular file there, as :func:`atomic_write`."""
    path = writable_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if os.path.exists(tmp):  # the library may have replaced the file: set the mode on what is there now
            os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


#: what the atomic writers add around a file name for their temp file ("." + name + "." + 8 random + ".tmp")
TEMP_NAME_EXTRA = 16
_RANDOM = "[a-z0-9_]{8}"


def writable_target(path: str | os.PathLike, what: str | None = None) -> Path:
    """The file a write of ``path`` replaces: a symlink is followed to its target (so the link keeps pointing at
    the new file); a directory, a device node (/dev/full, /dev/null), a pipe or a socket is refused with a
    UserError (renaming over it would destroy it). ``what`` names the option in the message (default: the path)."""
    from .errors import UserError

    path = Path(path)
    check_name_length(path, TEMP_NAME_EXTRA, what)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    label = f"{what} {path}" if what else str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise UserError(f"cannot write {label}: {e.strerror or e}") from e
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise UserError(f"{label} is a directory; give a file name inside it")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise UserError(f"{label} is not a regular file (a device, pipe or socket); neurosynth only writes regular "
                        "files: choose a file name")
    check_name_length(path, TEMP_NAME_EXTRA, what)  # a symlink's target too
    return path


def check_name_length(path: str | os.PathLike, extra: int, what: str | None = None) -> None:
    """Refuse (UserError) a file name too long for the filesystem once ``extra`` bytes are added for the temp or
    staging name beside it (``.NAME.partial``, ``.NAME.XXXXXXXX.tmp``): one error line, not an OSError."""
    from .errors import UserError

    path = Path(path)
    name_max = 255
    parent = path.parent
    with contextlib.suppress(OSError, ValueError, AttributeError):
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        name_max = os.pathconf(parent, "PC_NAME_MAX")
    n = len(os.fsencode(path.name))
    if n + extra > name_max:
        label = f"{what} {path.name[:40]}..." if what else f"{path.name[:40]}..."
        raise UserError(f"{label}: the name is {n} bytes long; this filesystem allows {name_max - extra} for a name "
                        "neurosynth writes (it adds a temp name beside it): choose a shorter name")


def require_free_space(folder: str | os.PathLike, nbytes: int, what: str) -> None:
    """Refuse (UserError) to write about ``nbytes`` into ``folder`` when its filesystem has less free space: for
    writers that crash rather than fail on a full disk (h5py, under NIR and Lava files, can segfault)."""
    import shutil

    from .errors import UserError

    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < nbytes:
        raise UserError(f"the disk is full: {what} needs about {nbytes / 2**20:.1f} MiB and {folder} has "
                        f"{free / 2**20:.1f} MiB free; free some space and run the command again")


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def require_memory(nbytes: float, what: str, fix: str) -> None:
    """Refuse (UserError, with the estimate) work whose estimated memory ``nbytes`` exceeds the memory
    available, before allocating anything: an absurd size is one error line, not a crash in the allocator."""
    from .errors import UserError

    avail = available_memory()
    if avail is not None and nbytes > avail:
        raise UserError(f"{what} needs about {_size(nbytes)} of memory and this machine has {_size(avail)} "
                        f"available; {fix}")


def _size(n: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n / 1024:.3g} KiB"


def stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """The temp files a killed atomic write of ``path`` left beside it (``.NAME.XXXXXXXX.tmp`` of
    :func:`atomic_write`, ``.STEM.XXXXXXXX.SUFFIX`` of :func:`atomic_path`). Only delete them while holding the
    writer lock of ``path`` (``neurosynth.rundir.output_file`` does)."""
    path = Path(path)
    pats = [re.compile(rf"\.{re.escape(path.name)}\.{_RANDOM}\.tmp"),
            re.compile(rf"\.{re.escape(path.stem)}\.{_RANDOM}{re.escape(path.suffix or '.tmp')}")]
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    return [path.parent / n for n in names if any(p.fullmatch(n) for p in pats) and (path.parent / n).is_file()]


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=_json_default)
        f.write("\n")
    return Path(path)


def read_json(path: str | os.PathLike) -> Any:
    """Read JSON, turning a missing or corrupt file into a clear error."""
    from .errors import UserError

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e}); the file is corrupt or truncated") from e
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from e


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    try:
        import torch

        if isinstance(o, torch.Tensor):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serialisable")
