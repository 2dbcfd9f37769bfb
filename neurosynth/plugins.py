"""Custom neurons from outside the package: ``--plugin FILE.py|MODULE`` and the ``neurosynth.neurons`` entry points.

A plugin is a Python file or an importable module that registers neurons with ``@register_neuron`` (see
``docs/tutorials/02_custom_neurons.py``). The CLI imports each ``--plugin`` once, before the command runs
(:func:`load_plugin`), and the installed distributions that declare
``[project.entry-points."neurosynth.neurons"]`` (:func:`load_entry_points`). Both are explicit choices of the user
(a flag, an installed package): **opening a run never imports anything on its own.** Instead a run records, in its
``arch.json``, which plugin each non-built-in neuron came from (:func:`requirements`, written by
``RunDir.save_model``), and :func:`check_spec` refuses a spec whose neurons are not registered, naming the exact
``--plugin`` to pass.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path

from .errors import UserError
from .neurons import NEURONS

ENTRY_POINTS = "neurosynth.neurons"  # entry-point group: value = a module that registers neurons on import
SPEC_FIELD = "neuron_plugins"  # ArchSpec field: {neuron name: the --plugin that registers it}
#: neuron name -> the plugin reference that registered it (a file's absolute path, a module name, or
#: "entry point NAME (DIST)")
PROVIDERS: dict[str, str] = {}
_LOADED: dict[str, list[str]] = {}  # plugin reference -> the neurons it registered


def _import_file(path: Path):
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"neurosynth_plugin_{path.stem if path.stem.isidentifier() else 'file'}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"--plugin {path}: not a Python file that can be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_plugin(ref: str) -> list[str]:
    """Import ``ref`` (a ``.py`` file or a module name) and return the neuron names it registered.

    Raises :class:`UserError` for a missing file or module, or for an error while importing it."""
    ref = str(ref)
    is_file = ref.endswith(".py") or os.sep in ref or (os.altsep and os.altsep in ref)
    key = str(Path(ref).resolve()) if is_file else ref
    if key in _LOADED:
        return list(_LOADED[key])
    before = set(NEURONS.names())
    try:
        if is_file:
            path = Path(key)
            if not path.is_file():
                raise UserError(f"--plugin {ref}: no such file (pass a Python file that registers neurons, or an "
                                "importable module name)")
            _import_file(path)
        else:
            if not all(part.isidentifier() for part in ref.split(".")):
                raise UserError(f"--plugin {ref!r} is neither a .py file nor a module name like my_package.neurons")
            importlib.import_module(ref)
    except UserError:
        raise
    except ModuleNotFoundError as e:
        raise UserError(f"--plugin {ref}: module {e.name!r} is not importable ({e}); pass a .py file or a module "
                        "on the Python path") from e
    except Exception as e:
        raise UserError(f"--plugin {ref} failed while importing: {type(e).__name__}: {e}") from e
    added = sorted(set(NEURONS.names()) - before)
    for name in added:
        PROVIDERS[name] = key
    _LOADED[key] = added
    return added


def load_entry_points() -> list[str]:
    """Import the modules installed distributions declare under ``neurosynth.neurons``; returns the neuron names
    they registered. A broken entry point is an error naming it (not a silent skip)."""
    from importlib.metadata import entry_points

    try:
        eps = list(entry_points(group=ENTRY_POINTS))
    except Exception:  # pragma: no cover - broken metadata of some unrelated distribution
        return []
    added: list[str] = []
    for ep in eps:
        key = f"entry point {ep.name} ({ep.value})"
        if key in _LOADED:
            continue
        before = set(NEURONS.names())
        try:
            ep.load()
        except Exception as e:
            raise UserError(f"the installed neuron plugin {ep.name!r} ({ep.value}, entry-point group "
                            f"{ENTRY_POINTS}) failed to import: {type(e).__name__}: {e}") from e
        new = sorted(set(NEURONS.names()) - before)
        for name in new:
            PROVIDERS[name] = key
        _LOADED[key] = new
        added += new
    return added


def loaded_plugins() -> list[str]:
    """The ``--plugin`` references loaded in this process (files as absolute paths, modules by name), in load
    order: what a spawned worker process loads again (entry points it finds itself)."""
    return [k for k in _LOADED if not k.startswith("entry point ")]


def _neuron_names(obj) -> set[str]:
    """Every neuron name a spec (any nesting: sequential layers, a DAG's cells) refers to."""
    found: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "neuron" and isinstance(v, str):
                found.add(v.lower())
            elif k != SPEC_FIELD:
                found |= _neuron_names(v)
    elif isinstance(obj, list):
        for v in obj:
            found |= _neuron_names(v)
    return found


def requirements(spec: dict) -> dict[str, str]:
    """``{neuron: plugin}`` for the neurons of ``spec`` that a plugin registered in this process."""
    return {n: PROVIDERS[n] for n in sorted(_neuron_names(spec)) if n in PROVIDERS}


def with_requirements(spec: dict) -> dict:
    """``spec`` with its :data:`SPEC_FIELD` set (a copy) when it uses plugin neurons, else ``spec`` itself."""
    if not isinstance(spec, dict):
        return spec
    req = {**(spec.get(SPEC_FIELD) or {}), **requirements(spec)}
    if not req:
        return spec
    return {**spec, SPEC_FIELD: req}


def plugin_flag(ref: str) -> str:
    """The command-line option that loads ``ref`` (entry points: the install that provides them)."""
    if ref.startswith("entry point "):
        return f"the installed package that provides {ref} (pip install it)"
    return f"--plugin {ref}"


def check_spec(spec: dict, where: str = "arch.json") -> None:
    """Refuse (UserError) a spec that uses neurons no plugin has registered in this process, naming the
    ``--plugin`` the run recorded for each (never importing anything)."""
    if not isinstance(spec, dict):
        return
    missing = sorted(n for n in _neuron_names(spec) if n not in NEURONS)
    if not missing:
        return
    recorded = spec.get(SPEC_FIELD) or {}
    if not isinstance(recorded, dict):
        recorded = {}
    flags = sorted({plugin_flag(str(recorded[n])) for n in missing if n in recorded})
    names = ", ".join(repr(n) for n in missing)
    if flags and all(n in recorded for n in missing):
        raise UserError(f"{where} uses the custom neuron {names}, registered by a plugin; pass "
                        f"{' '.join(flags)} (a run never imports code on its own)")
    raise UserError(f"{where} uses the neuron {names}, which is not registered (built-in: {', '.join(NEURONS.names())}); "
                    f"pass the file or module that registers it with --plugin FILE.py|MODULE"
                    + (f" (this run recorded {' '.join(flags)})" if flags else ""))
