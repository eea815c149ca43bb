"""The in-process bus of the memory broker: for tests and ``memory://`` apps."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from asyncq.events import MAX_EVENTS, Event, as_event, rows_of

__all__ = ["MemoryBus"]


@dataclass
class _Hub:
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))
    followers: set[asyncio.Queue[dict[str, Any]]] = field(default_factory=set)
    topics: dict[str, set[asyncio.Queue[bytes]]] = field(default_factory=dict)
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)


_HUBS: dict[tuple[str, str], _Hub] = {}


class _Subscription:
    def __init__(self, hub: _Hub, topic: str) -> None:
        self._hub, self._topic = hub, topic
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=MAX_EVENTS)
        hub.topics.setdefault(topic, set()).add(self._queue)

    async def get(self, timeout: float) -> bytes | None:
        try:
            async with asyncio.timeout(timeout):
                return await self._queue.get()
        except TimeoutError:
            return None

    async def aclose(self) -> None:
        self._hub.topics.get(self._topic, set()).discard(self._queue)


class MemoryBus:
    """Events, topics and the worker registry in this process's memory."""

    def __init__(self, url: str, app: str) -> None:
        self._hub = _HUBS.setdefault((url, app), _Hub())

    async def emit(self, events: Sequence[Event]) -> None:
        for item in events:
            for row in rows_of(item):
                event = as_event(row)
                if event is not None:
                    self._keep(event)

    def _keep(self, event: dict[str, Any]) -> None:
        self._hub.events.append(dict(event))
        for follower in self._hub.followers:
            with contextlib.suppress(asyncio.QueueFull):  # a slow reader loses events
                follower.put_nowait(dict(event))

    async def follow(self, history: int = 0) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=MAX_EVENTS)
        self._hub.followers.add(queue)
        try:
            for event in await self.recent(history):
                yield event
            while True:
                yield await queue.get()
        finally:
            self._hub.followers.discard(queue)

    async def recent(self, count: int) -> list[dict[str, Any]]:
        if count <= 0:
            return []
        return list(self._hub.events)[-count:]

    async def broadcast(self, topic: str, body: bytes) -> None:
        for queue in self._hub.topics.get(topic, set()):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(body)

    async def subscribe(self, topic: str) -> _Subscription:
        return _Subscription(self._hub, topic)

    async def put_worker(self, name: str, info: Mapping[str, Any]) -> None:
        self._hub.workers[name] = dict(info)

    async def drop_worker(self, name: str) -> None:
        self._hub.workers.pop(name, None)

    async def workers(self) -> list[dict[str, Any]] | None:
        return [dict(info) for info in self._hub.workers.values()]

    async def aclose(self) -> None:
        return None
