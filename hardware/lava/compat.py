"""Import lava-nc 0.10.0 on Python 3.11 without editing site-packages.

lava-nc 0.10.0 declares ``python<3.11``. On 3.11 one line stops it from importing:
``lava/magma/compiler/var_model.py`` uses an instance of the ``@dataclass`` ``ByteEncoder`` as the
default of fields of other dataclasses (``x: ByteEncoder = ByteEncoder()``). Python 3.11 rejects any
unhashable default as "mutable" (``ValueError: mutable default ... use default_factory``); a plain
``@dataclass`` sets ``__hash__ = None``, so ``ByteEncoder()`` counts as mutable.

The fix (the same one the research notes used, ``@dataclass(unsafe_hash=True)`` on ``ByteEncoder``)
is applied at import time by a meta-path finder that loads exactly that one module from its
original source with that single decorator changed. The module keeps its real ``__file__`` and
name, so tracebacks and Lava's process-model discovery are unaffected. On a Lava whose source
already imports (Python 3.10, or a future release) the transform finds nothing to change and is a
no-op.

A second, smaller guard: Lava's ``message_infrastructure/multiprocessing.py`` calls
``multiprocessing.set_start_method('fork')`` (without ``force``) when it is imported, which raises
"context has already been set" whenever anything fixed the start method earlier in the process -- a tqdm
progress bar does (its lock creates a multiprocessing ``RLock``). :func:`import_lava` therefore imports that
module with ``set_start_method`` accepting a request for the method already in use; if the process was
fixed to another method (e.g. ``spawn``) it raises a clear error instead, because Lava needs ``fork``.

Every NeuroSynth entry point that touches Lava calls :func:`import_lava` (or :func:`require_lava`)
first; nothing else in the package imports ``lava`` before that.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

from ...errors import MissingExtraError

TARGET = "lava.magma.compiler.var_model"
_BROKEN = "@dataclass\nclass ByteEncoder:"
_FIXED = "@dataclass(unsafe_hash=True)\nclass ByteEncoder:"


def patch_source(source: str) -> str:
    """Return ``source`` with ``ByteEncoder``'s decorator made hashable (unchanged if already fine)."""
    return source.replace(_BROKEN, _FIXED, 1)


class _PatchedLoader(importlib.abc.SourceLoader):
    """Loads one module from its original file with :func:`patch_source` applied."""

    def __init__(self, fullname: str, path: str):
        self.fullname, self.path = fullname, path

    def get_filename(self, fullname: str) -> str:
        return self.path

    def get_data(self, path: str) -> bytes:
        with open(path, "rb") as f:
            data = f.read()
        if path == self.path:
            data = patch_source(data.decode("utf-8")).encode("utf-8")
        return data

    def path_stats(self, path: str):  # no bytecode cache: always compile the patched source
        raise OSError


class _ByteEncoderFix(importlib.abc.MetaPathFinder):
    """Meta-path finder that intercepts only ``lava.magma.compiler.var_model``."""

    def find_spec(self, fullname, path, target=None):
        if fullname != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            return spec
        loader = _PatchedLoader(fullname, spec.origin)
        return importlib.util.spec_from_file_location(fullname, spec.origin, loader=loader)


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (idempotent)."""
    if not any(isinstance(f, _ByteEncoderFix) for f in sys.meta_path):
        sys.meta_path.insert(0, _ByteEncoderFix())


def lava_available() -> bool:
    """True if lava-nc can be imported (with the fix)."""
    try:
        import_lava()
    except (ImportError, RuntimeError):  # MissingExtraError is an ImportError; a broken install counts as absent
        return False
    return True


def import_lava(what: str = "") -> ModuleType:
    """Install the fix and import Lava's compiler entry; raise :class:`MissingExtraError` if absent.

    Returns the ``lava.magma.core.run_configs`` module (the first module every user needs).
    """
    install()
    if importlib.util.find_spec("lava") is None or importlib.util.find_spec("lava.magma") is None:
        raise MissingExtraError("lava-nc", "lava", what or "Loihi export")
    import lava.magma.compiler.var_model  # noqa: F401  (goes through the finder)

    _import_lava_multiprocessing()
    import lava.magma.core.run_configs as run_configs

    return run_configs


def _import_lava_multiprocessing() -> None:
    name = "lava.magma.runtime.message_infrastructure.multiprocessing"
    if name in sys.modules:
        return
    import multiprocessing as mp

    current = mp.get_start_method(allow_none=True)
    if current is None:
        importlib.import_module(name)
        return
    if current != "fork":
        raise RuntimeError(f"Lava needs the 'fork' multiprocessing start method but this process already uses "
                           f"{current!r}; run the Lava step in a fresh process")
    original = mp.set_start_method

    def tolerant(method, force=False):
        if method == mp.get_start_method(allow_none=True):
            return None
        return original(method, force=force)

    mp.set_start_method = tolerant
    try:
        importlib.import_module(name)
    finally:
        mp.set_start_method = original


require_lava = import_lava
