"""Where workflow state lives: a small record per workflow and each chord's progress.

The state is kept on the result backend's server, never in a producer: a
:class:`CanvasStore` wraps the App's result backend. Redis keeps it with a Lua script
(:mod:`asyncq.canvas._redis`); ``memory://`` keeps it in the process (for tests). A
backend with no shared store (``rpc://``: results travel back to the one producer
that sent the task) cannot hold it, and workflows are refused there.
"""

from __future__ import annotations

import abc
import sys
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, ClassVar

from asyncq import codec
from asyncq.errors import ConfigurationError, DecodeError

if TYPE_CHECKING:
    from asyncq.results import ResultBackend

__all__ = ["CanvasStore", "MemoryCanvasStore", "store_for"]


class CanvasStore(abc.ABC):
    """Workflow records and chord counting on the result backend's server."""

    def __init__(self, backend: ResultBackend) -> None:
        # weakly: stores are kept in a WeakKeyDictionary by backend, and a value that
        # held its key would keep the backend (its client, its loop) alive for ever
        self._backend = weakref.ref(backend)

    @property
    def backend(self) -> ResultBackend:
        backend = self._backend()
        if backend is None:  # (its callers hold the backend they found it by)
            raise RuntimeError("this workflow store's result backend is gone")
        return backend

    @property
    def ttl_ms(self) -> int:
        return int(self.backend.ttl * 1000)

    @abc.abstractmethod
    async def put_workflow(self, workflow_id: str, info: dict[str, Any]) -> None:
        """Store the small record that rebuilds a workflow handle from its id."""

    @abc.abstractmethod
    async def _get_raw(self, workflow_id: str) -> bytes | None: ...

    async def get_workflow(self, workflow_id: str) -> dict[str, Any] | None:
        raw = await self._get_raw(workflow_id)
        if raw is None:
            return None
        info = codec.loads(raw, max_size=self.backend.max_size)
        if not isinstance(info, dict) or not isinstance(info.get("k"), str):
            raise DecodeError(f"workflow record {workflow_id} has an unknown shape")
        return info

    @abc.abstractmethod
    async def chord_done(self, chord_id: str, n: int, index: int, record: bytes
                         ) -> list[bytes] | None:
        """Record member ``index``'s final ``record`` (idempotent: the first one stays).

        Returns every member's record, in order, when all ``n`` are in and the
        callback has not been sent yet (every caller until :meth:`chord_sent`, so a
        crash between here and the send is repaired by the redelivery); else None.
        """

    @abc.abstractmethod
    async def chord_sent(self, chord_id: str) -> None:
        """The callback is on the broker: later :meth:`chord_done` calls return None."""


class MemoryCanvasStore(CanvasStore):
    """State in this process, shared by every backend with the same ``memory://`` URL."""

    _shared: ClassVar[dict[str, dict[str, Any]]] = {}
    _guard = threading.Lock()

    def __init__(self, backend: ResultBackend) -> None:
        super().__init__(backend)
        self._data = self._shared.setdefault(backend.url, {})

    async def put_workflow(self, workflow_id: str, info: dict[str, Any]) -> None:
        with self._guard:
            self._data[f"wf:{workflow_id}"] = (codec.dumps(info), time.monotonic())

    async def _get_raw(self, workflow_id: str) -> bytes | None:
        item = self._data.get(f"wf:{workflow_id}")
        return None if item is None else bytes(item[0])

    async def chord_done(self, chord_id: str, n: int, index: int, record: bytes
                         ) -> list[bytes] | None:
        with self._guard:
            members: dict[int, bytes] = self._data.setdefault(f"chord:{chord_id}", {})
            members.setdefault(index, record)
            if len(members) < n or self._data.get(f"fired:{chord_id}") == "sent":
                return None
            self._data[f"fired:{chord_id}"] = "firing"
            return [members[i] for i in range(n)]

    async def chord_sent(self, chord_id: str) -> None:
        with self._guard:
            self._data[f"fired:{chord_id}"] = "sent"


_STORES: weakref.WeakKeyDictionary[ResultBackend, CanvasStore] = weakref.WeakKeyDictionary()


def store_for(backend: ResultBackend) -> CanvasStore:
    """The canvas store of ``backend``; ConfigurationError if it cannot keep state."""
    store = _STORES.get(backend)
    if store is None:
        store = _STORES[backend] = _make(backend)
    return store


def _make(backend: ResultBackend) -> CanvasStore:
    from asyncq.results.memory import MemoryResultBackend

    if isinstance(backend, MemoryResultBackend):
        return MemoryCanvasStore(backend)
    redis_results = sys.modules.get("asyncq.results.redis")
    if redis_results is not None and isinstance(backend, redis_results.RedisResultBackend):
        from asyncq.canvas._redis import RedisCanvasStore

        return RedisCanvasStore(backend)
    raise ConfigurationError(
        f"workflows (chain, group, chord, link) keep their state on the result backend's "
        f"server, and {backend.safe_url} has none: with rpc:// results go back to the "
        "producer that sent each task. Give the App a shared result backend, e.g. "
        "App(..., backend='redis://localhost:6379/0')")
