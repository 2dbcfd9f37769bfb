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
