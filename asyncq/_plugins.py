"""Registries of classes by URL scheme: brokers and result backends plug in here.

A class is registered as ``"module:Class"`` and imported only when a URL with one of
its schemes is used, so a client library that is not installed costs nothing until
then, and then fails with one line naming the pip extra that installs it. Packages
outside asyncq register through an entry point group instead (``name = scheme``,
``value = "module:Class"``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from asyncq._urls import mask_url, scheme_of
from asyncq.errors import ConfigurationError

__all__ = ["Registry"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Entry:
    path: str
    extra: str | None


class Registry(Generic[T]):
    """Scheme -> class, filled by ``register`` calls and the entry point ``group``."""

    def __init__(self, what: str, group: str) -> None:
        self._what = what
        self._group = group
        self._entries: dict[str, _Entry] = {}
        self._scanned = False

    def register(self, schemes: Iterable[str], path: str, *, extra: str | None = None) -> None:
        if ":" not in path:
            raise ConfigurationError(f"{self._what} path {path!r} is not module:Class")
        for scheme in schemes:
            self._entries[scheme.lower()] = _Entry(path, extra)

    def schemes(self) -> list[str]:
        self._scan()
        return sorted(self._entries)

    def lookup(self, url: str) -> type[T]:
        scheme = scheme_of(url)
        entry = self._entries.get(scheme)
        if entry is None:
            self._scan()
            entry = self._entries.get(scheme)
        if entry is None:
            raise ConfigurationError(
                f"no {self._what} for URL {mask_url(url)} (schemes: {', '.join(self.schemes())})")
        return self._load(scheme, entry)

    def _scan(self) -> None:
        """Add entry points of other packages (once; registered schemes win)."""
        if self._scanned:
            return
        self._scanned = True
        from importlib.metadata import entry_points  # only for a scheme not registered

        for point in entry_points(group=self._group):
            self._entries.setdefault(point.name.lower(), _Entry(point.value, None))

    def _load(self, scheme: str, entry: _Entry) -> type[T]:
        module_name, _, attr = entry.path.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if entry.extra is None or (exc.name or "").startswith("asyncq"):
                raise
            raise ConfigurationError(
                f"{scheme}:// needs a client that is not installed ({exc.name}): "
                f"pip install 'asyncq[{entry.extra}]'") from None
        found: type[T] = getattr(module, attr)
        return found
