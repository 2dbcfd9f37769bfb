"""NIR interchange: :func:`to_nir` / :func:`from_nir` between neurosynth models and ``nir.NIRGraph``.

See :mod:`neurosynth.hardware.nir.convert` for the time discretisation (``beta = 1 - dt/tau``), the reset
convention and the supported layers. Names are imported lazily (PEP 562) so that the CLI, which imports
``neurosynth.apps.cli.export_nir``, does not pay for torch and nir at start-up.
"""

from __future__ import annotations

import importlib

__all__ = ["DEFAULT_DT", "NIR_EXPORTERS", "NIR_IMPORTERS", "ExportContext", "ImportContext", "from_nir",
           "read_nir", "to_nir", "write_nir"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module(".convert", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
