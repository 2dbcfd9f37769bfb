"""The ``neurosynth`` command line.

Each command is a module of this package (or of another NeuroSynth package) exposing
``register(subparsers)`` and ``run(args) -> int``. Modules import heavy dependencies (torch models,
Lava, Ray, tonic, torchattacks) only inside ``run``, so ``neurosynth --help`` stays instant.

What every command shares lives here, once: ``--help`` shows each option's default
(:class:`DefaultsHelpFormatter`), and every command takes ``--threads N`` (torch CPU threads, default
:data:`DEFAULT_THREADS` on every command), applied by :func:`main` before the command runs.
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


# torch CPU threads, the default of every command's --threads: one number on every command and every machine, so a
# command's result does not change with the core count (the float sums run in the same order); small SNNs on few,
# shared cores run fastest with 1-2 threads anyway. Pass --threads N for more.
DEFAULT_THREADS = 1


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to every option's help unless the help already says it or there is none."""

    def _get_help_string(self, action):
        h = action.help or ""
        if (not action.option_strings or action.default is None or action.default is False
                or action.default == argparse.SUPPRESS or "default" in h
                or isinstance(action, argparse._HelpAction)):
            return h
        return f"{h} (default: %(default)s)" if h else "default: %(default)s"


class ScriptHelpFormatter(DefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The examples' ``--help``: the description as written (their module docstring) and every default shown."""

    def add_argument(self, action):
        if (action.help is None and action.option_strings and action.default is not None
                and action.default is not False and action.default != argparse.SUPPRESS):
            action.help = "default: %(default)s"  # argparse formats no help string for an option without help
        super().add_argument(action)


def finish_parser(p: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The options and help layout every command shares (called once per command by the tables below)."""
    p.formatter_class = DefaultsHelpFormatter
    for action in p._actions:  # options without help get one, so their default shows
        if action.help is None and action.option_strings and action.default is not None and action.default is not False:
            action.help = "default: %(default)s"
    if not any("--plugin" in a.option_strings for a in p._actions):
        p.add_argument("--plugin", action="append", default=None, metavar="FILE.py|MODULE",
                       help="import a Python file or module that registers custom neurons (repeatable); installed "
                            "packages register theirs under the 'neurosynth.neurons' entry-point group")
    if not any("--threads" in a.option_strings for a in p._actions):
        p.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                       help="torch CPU threads (the same default on every command; results can differ with N)")
    return p


def apply_threads(n: int | None) -> None:
    """Set torch's CPU thread count (the one place the CLI does it)."""
    if n is None:
        return
    from neurosynth.errors import UserError

    if n < 1:
        raise UserError(f"--threads must be a positive integer (e.g. --threads 1); got {n}")
    import torch

    torch.set_num_threads(int(n))


def load_plugins(refs: list[str] | None) -> None:
    """Import the ``--plugin`` files/modules and the installed ``neurosynth.neurons`` entry points (the one place
    the CLI does it, before the command runs)."""
    from neurosynth.plugins import load_entry_points, load_plugin

    load_entry_points()
    for ref in refs or ():
        load_plugin(ref)


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
        formatter_class=DefaultsHelpFormatter,
    )
    from neurosynth import __version__

    parser.add_argument("--version", action="version", version=f"neurosynth {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        mod = _load(module)
        if mod is None:
            continue
        p = mod.register(sub)
        p.set_defaults(_run=mod.run)
        _finish_tree(p, name)
    return parser


def _finish_tree(p: argparse.ArgumentParser, name: str) -> None:
    p.formatter_class = DefaultsHelpFormatter
    if p._subparsers is None:
        finish_parser(p, name)
        return
    for action in p._subparsers._group_actions:
        for sub_name, sp in getattr(action, "choices", {}).items():
            _finish_tree(sp, f"{name} {sub_name}")


def add_group(subparsers, name: str, help: str, table: dict[str, str]) -> argparse.ArgumentParser:
    """A command with sub-commands, each a module exposing ``register``/``run`` (used by search, export)."""
    p = subparsers.add_parser(name, help=help, description=help, formatter_class=DefaultsHelpFormatter)
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
    from neurosynth.errors import run_script

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    return run_script(_dispatch, args)  # a user's mistake (bad input, unusable path, full disk): one error line


def _dispatch(args) -> int:
    load_plugins(getattr(args, "plugin", None))
    apply_threads(getattr(args, "threads", None))
    return int(args._run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
