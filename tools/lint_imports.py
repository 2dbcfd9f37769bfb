"""Check the layering contract in ``.importlinter`` with import-linter (``make test`` runs this).

``neurosynth.datasets``, ``neurosynth.hardware`` and ``neurosynth.apps`` live in the top-level folders
``datasets/``, ``hardware/`` and ``apps/`` (``setup.py`` maps them), a layout grimp (import-linter's import graph) cannot follow. This lays
the packages' ``.py`` files out as they are installed in a temporary folder and runs ``lint-imports`` there.
Extra arguments go to ``lint-imports`` (e.g. ``--verbose``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYOUT = {"neurosynth": "neurosynth", "datasets": "neurosynth/datasets", "hardware": "neurosynth/hardware",
          "snn_nas": "snn_nas", "apps": "neurosynth/apps"}


def main(argv: list[str]) -> int:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        print("error: lint-imports not found; install the dev extra: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="neurosynth-layers-") as tmp:
        for src, dst in LAYOUT.items():
            for f in (ROOT / src).rglob("*.py"):
                if "__pycache__" in f.parts:
                    continue
                out = Path(tmp) / dst / f.relative_to(ROOT / src)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, out)
        shutil.copyfile(ROOT / ".importlinter", Path(tmp) / ".importlinter")
        env = {**os.environ, "PYTHONPATH": tmp}
        return subprocess.call([str(exe), "--no-cache", *argv], cwd=tmp, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
