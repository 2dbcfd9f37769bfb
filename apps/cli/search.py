"""``neurosynth search mse|bio``: architecture search (snn_nas)."""

from . import add_group

SEARCHES = {
    "mse": "neurosynth.apps.cli.search_mse",
    "bio": "neurosynth.apps.cli.search_bio",
}


def register(subparsers):
    return add_group(subparsers, "search", "architecture search: MSE-NAS (mse) or BioNAS (bio)", SEARCHES)


def run(args) -> int:  # replaced by the chosen sub-command's run
    return 2
