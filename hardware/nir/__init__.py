"""NIR interchange: :func:`to_nir` / :func:`from_nir` between neurosynth models and ``nir.NIRGraph``.

:mod:`.export` (model -> NIR), :mod:`.importer` (NIR -> model) and :mod:`.common` (the time discretisation
``beta = 1 - dt/tau``, the reset convention, file I/O). Names are imported lazily (PEP 562) so that the CLI, which imports
``neurosynth.apps.cli.export_nir``, does not pay for torch and nir at start-up.
"""

from __future__ import annotations

import importlib

__all__ = ["DEFAULT_DT", "DEFAULT_FORM", "NIR_EXPORTERS", "NIR_FORMS", "NIR_IMPORTERS", "ExportContext",
           "ImportContext", "NirForm", "from_nir", "identical_readers", "read_nir", "to_nir", "write_nir"]


_HOMES = {"DEFAULT_DT": ".common", "DEFAULT_FORM": ".common", "NIR_FORMS": ".common", "NirForm": ".common",
          "identical_readers": ".export", "read_nir": ".common", "write_nir": ".common", "NIR_EXPORTERS": ".export",
          "ExportContext": ".export", "to_nir": ".export", "NIR_IMPORTERS": ".importer", "ImportContext": ".importer",
          "from_nir": ".importer"}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
