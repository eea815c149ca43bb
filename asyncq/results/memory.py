"""In-process result backend (``memory://``), for users' own tests.

Backends with the same URL share one store, also across event loops and threads: a
waiter on another loop gets its result through that loop's ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from asyncq._loops import call_in_loop
from asyncq.codec import DEFAULT_MAX_SIZE
from asyncq.records import KeyWrite, is_final, may_replace
from asyncq.results import DEFAULT_RESULT_TTL, ResultBackend

__all__ = ["MemoryResultBackend"]


class _Store:
    def __init__(self) -> None:
        self.values: dict[str, tuple[bytes, float]] = {}
        self.waiters: dict[str, list[asyncio.Future[bytes]]] = {}

    def get(self, key: str) -> bytes | None:
        item = self.values.get(key)
        if item is None:
            return None
        if item[1] < time.monotonic():
            del self.values[key]
            return None
        return item[0]

    def put(self, write: KeyWrite) -> None:
        if not may_replace(self.get(write.key), final=write.final):
            return
        self.values[write.key] = (write.value, time.monotonic() + write.ttl_ms / 1000)
        if write.final:
            for fut in self.waiters.pop(write.key, []):
                call_in_loop(fut.get_loop(), _resolve, fut, write.value)


def _resolve(fut: asyncio.Future[bytes], value: bytes) -> None:
    if not fut.done():
        fut.set_result(value)


_STORES: dict[str, _Store] = {}


class MemoryResultBackend(ResultBackend):
    """Results in a dict shared by every backend with the same ``memory://`` URL."""

    loop_bound = False

    def __init__(self, url: str = "memory://", *, ttl: float = DEFAULT_RESULT_TTL,
                 max_size: int = DEFAULT_MAX_SIZE) -> None:
        super().__init__(url, ttl=ttl, max_size=max_size)
        self._store = _STORES.setdefault(url, _Store())

    def key_for(self, task_id: str) -> str:
        return task_id

    async def _load(self, task_id: str) -> bytes | None:
        return self._store.get(task_id)

    async def _put(self, writes: Sequence[KeyWrite]) -> None:
        for write in writes:
            self._store.put(write)

    async def _delete(self, task_id: str) -> None:
        self._store.values.pop(task_id, None)

    async def _wait(self, task_id: str) -> bytes:
        raw = self._store.get(task_id)
        if raw is not None and is_final(raw):
            return raw
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._store.waiters.setdefault(task_id, []).append(fut)
        try:
            return await fut
        finally:
            waiters = self._store.waiters.get(task_id)
            if waiters and fut in waiters:
                waiters.remove(fut)
