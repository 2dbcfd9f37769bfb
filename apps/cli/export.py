"""``neurosynth export loihi|nir``: deploy a trained run directory."""

from . import add_group

EXPORTERS = {
    "loihi": "neurosynth.apps.cli.export_loihi",
    "nir": "neurosynth.apps.cli.export_nir",
}


def register(subparsers):
    return add_group(subparsers, "export", "export a trained model: Loihi 2 netx HDF5 via Lava (loihi) or NIR (nir)",
                     EXPORTERS)


def run(args) -> int:
    return 2
