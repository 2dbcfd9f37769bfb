"""Errors raised by ``neurosynth.datasets``: each names the dataset, the file and the fix.

Both derive from :class:`neurosynth.errors.UserError`, so the CLI prints them as ``error: ...`` and
exits with status 2; library code can also catch them as ``FileNotFoundError`` / ``ValueError``.
"""

from __future__ import annotations

from neurosynth.errors import UserError


class DatasetNotFoundError(UserError, FileNotFoundError):
    """The files of a dataset are not where they are expected (and ``download=False``)."""


class CorruptFileError(UserError, ValueError):
    """A source or cache file is truncated, corrupt or holds data of the wrong type."""
