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
    ``error: ...`` line on stderr and exit status 2 (no traceback), Ctrl-C exit status 130.

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
    return rc if isinstance(rc, int) else 0


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
