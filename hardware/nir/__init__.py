"""NIR interchange: :func:`to_nir` / :func:`from_nir` between neurosynth models and ``nir.NIRGraph``.

See :mod:`neurosynth.hardware.nir.convert` for the time discretisation (``beta = 1 - dt/tau``), the reset
convention and the supported layers.
"""

from .convert import (
    DEFAULT_DT,
    NIR_EXPORTERS,
    NIR_IMPORTERS,
    ExportContext,
    ImportContext,
    from_nir,
    read_nir,
    to_nir,
    write_nir,
)

__all__ = ["DEFAULT_DT", "NIR_EXPORTERS", "NIR_IMPORTERS", "ExportContext", "ImportContext", "from_nir",
           "read_nir", "to_nir", "write_nir"]
