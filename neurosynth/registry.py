"""A small generic registry: the one mechanism behind neurons, surrogates, layers, strategies, ..."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> object map with a decorator to add entries and helpful errors for unknown names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, *, overwrite: bool = False) -> Callable[[T], T]:
        key = name.lower()

        def deco(obj: T) -> T:
            if key in self._entries and not overwrite and self._entries[key] is not obj:
                raise ValueError(f"{self.kind} '{name}' is already registered; pass overwrite=True to replace it")
            self._entries[key] = obj
            return obj

        return deco

    def add(self, name: str, obj: T, *, overwrite: bool = False) -> T:
        return self.register(name, overwrite=overwrite)(obj)

    def get(self, name: str) -> T:
        key = str(name).lower()
        if key not in self._entries:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise ValueError(f"unknown {self.kind} '{name}'; registered {self.kind}s: {known}")
        return self._entries[key]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


class TypeRegistry(Generic[T]):
    """Python type -> object, looked up along the MRO (most specific class first).

    For per-layer handlers keyed by module class (the NIR exporters, the op-count rules): a subclass without an
    entry of its own uses its nearest registered base class.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[type, T] = {}

    def register(self, *types: type) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            for t in types:
                self._entries[t] = obj
            return obj

        return deco

    def lookup(self, obj: object) -> T | None:
        """The entry for ``type(obj)`` or its nearest registered base class; ``None`` if there is none."""
        for cls in type(obj).__mro__:
            if cls in self._entries:
                return self._entries[cls]
        return None

    def names(self) -> list[str]:
        return sorted(t.__name__ for t in self._entries)

    def __repr__(self) -> str:
        return f"TypeRegistry({self.kind!r}, {self.names()})"
