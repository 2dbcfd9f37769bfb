"""The ``neurosynth`` command line.

Each command is a module of this package (or of another NeuroSynth package) exposing
``register(subparsers)`` and ``run(args) -> int``. Modules import heavy dependencies (torch models,
Lava, Ray, tonic, torchattacks) only inside ``run``, so ``neurosynth --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command name -> module path. Groups (search, export) have their own sub-command tables.
COMMANDS: dict[str, str] = {
    "train": "neurosynth.apps.cli.train",
    "demo": "neurosynth.apps.cli.demo",
    "data": "neurosynth.apps.cli.data",
    "search": "neurosynth.apps.cli.search",
    "export": "neurosynth.apps.cli.export",
    "energy": "neurosynth.apps.cli.energy",
    "convert": "neurosynth.apps.cli.convert",
    "robustness": "neurosynth.apps.cli.robustness",
}


def _load(module: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:  # a command whose module is not part of this install
        if e.name and module.startswith(e.name):
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neurosynth",
        description="Spiking neural networks: train, search, export to Loihi 2 / NIR, estimate energy.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _name, module in COMMANDS.items():
        mod = _load(module)
        if mod is None:
            continue
        p = mod.register(sub)
        p.set_defaults(_run=mod.run)
    return parser


def add_group(subparsers, name: str, help: str, table: dict[str, str]) -> argparse.ArgumentParser:
    """A command with sub-commands, each a module exposing ``register``/``run`` (used by search, export)."""
    p = subparsers.add_parser(name, help=help, description=help)
    inner = p.add_subparsers(dest=f"{name}_command", metavar="KIND")
    for _sub_name, module in table.items():
        mod = _load(module)
        if mod is None:
            continue
        sp = mod.register(inner)
        sp.set_defaults(_run=mod.run)
    p.set_defaults(_run=lambda args: _group_usage(p))
    return p


def _group_usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    from neurosynth.errors import UserError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
