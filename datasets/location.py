"""Where a split of a dataset lives on disk (shared by the tonic-read and the generated event datasets)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Location:
    """Where a split lives on disk and how to get it."""

    path: Path  # the folder or file that must exist
    needed: tuple[str, ...]  # what must be inside (human-readable)
    url: str
    present: bool
