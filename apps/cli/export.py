"""``neurosynth export loihi|nir``: deploy a trained run directory.

The commands are the exporters the hardware targets name (``Target.exporter`` in ``neurosynth.hardware.targets``);
a target with a new exporter adds its command module here.
"""

from . import add_group

# export command -> its CLI module (imported on use, so `neurosynth --help` stays light)
EXPORTERS = {
    "loihi": "neurosynth.apps.cli.export_loihi",
    "nir": "neurosynth.apps.cli.export_nir",
}


def register(subparsers):
    from neurosynth.hardware.targets import exporters

    deploys = "; ".join(f"{cmd}: targets {', '.join(names)}" for cmd, names in exporters().items())
    return add_group(subparsers, "export", f"export a trained model: Loihi 2 netx HDF5 via Lava (loihi) or NIR (nir) "
                     f"({deploys})", EXPORTERS)


def run(args) -> int:
    return 2
