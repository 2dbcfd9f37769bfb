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
