"""Errors a user can fix: the CLI prints them as ``error: ...`` and exits with status 2."""


class UserError(Exception):
    """Bad input, a missing file, a missing optional dependency: something the user can fix.

    The message should name the problem and the fix.
    """


class MissingExtraError(UserError, ImportError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str, what: str = ""):
        msg = f"{what + ' needs ' if what else ''}the optional package '{package}', which is not installed. "
        msg += f"Install it with: pip install 'neurosynth[{extra}]'"
        super().__init__(msg)
        self.package, self.extra = package, extra


def run_script(main, *args, **kwargs) -> int:
    """Run an example script's ``main`` the way the CLI runs a command: a :class:`UserError` becomes one
    ``error: ...`` line on stderr and exit status 2 (no traceback), and so does a path the user gave that cannot be
    written or a full disk (:func:`path_error`); Ctrl-C exit status 130.

    Use as ``sys.exit(run_script(main))`` under ``if __name__ == "__main__":``."""
    import sys

    try:
        rc = main(*args, **kwargs)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        user = path_error(e)
        if user is None:
            raise
        print(f"error: {user}", file=sys.stderr)
        return 2
    return rc if isinstance(rc, int) else 0


#: ``OSError`` numbers that say a path the user named cannot be used as given (not a bug of ours)
_PATH_ERRNOS = ("EACCES", "EPERM", "EROFS", "ENOTDIR", "EISDIR", "EEXIST", "ENAMETOOLONG")


def path_error(e: BaseException) -> UserError | None:
    """The one :class:`UserError` to print for an exception a user can fix by choosing another path or freeing space:
    a full disk (:func:`disk_full_error`), or an ``OSError`` naming a file that cannot be created or opened as asked
    (permission denied, a read-only file system, a file where a folder should be, ...). None for anything else (a
    missing input file is the reader's to report; an ``OSError`` without a file name is not the user's)."""
    import errno

    full = disk_full_error(e)
    if full is not None:
        return full
    codes = {getattr(errno, name) for name in _PATH_ERRNOS if hasattr(errno, name)}
    if isinstance(e, OSError) and e.errno in codes and e.filename:
        reason = e.strerror or type(e).__name__
        return UserError(f"cannot use {e.filename}: {reason}; choose a path you can write to (e.g. another --out) "
                         "and run the command again")
    return None


_DISK_FULL = ("no space left on device", "database or disk is full", "disk quota exceeded", "errno = 28",
              "file write failed")


def disk_full_error(e: BaseException) -> UserError | None:
    """A full disk (or quota) surfaces as ``OSError(ENOSPC)``, SQLite's "database or disk is full", torch's
    "PytorchStreamWriter failed writing file" or an h5py write error: the one ``UserError`` to print for it, or
    None when ``e`` is something else. The writers are atomic, so the previous files are intact."""
    import errno
    import re

    seen: set[int] = set()
    chain = []
    while e is not None and id(e) not in seen:  # the cause chain: torch/h5py wrap the OSError
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or e.__context__
    for err in chain:
        text = str(err).lower()
        full = (isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)) or \
            any(k in text for k in _DISK_FULL) or ("pytorchstreamwriter" in text and "writ" in text) or \
            (isinstance(err, OSError) and re.search(r"\d+ requested and \d+ written", text) is not None)  # numpy
        if full:
            where = f" while writing {err.filename}" if isinstance(err, OSError) and err.filename else ""
            return UserError(f"the disk is full{where} (no space left on device); free some space and run the command "
                             "again (files written before are unchanged)")
    return None
