"""The Redis bus: a bounded stream of events, pub/sub topics, a hash of workers.

Events are written in batches: each flush of a worker becomes one stream entry per
:data:`ROWS_PER_ENTRY` events at most (a msgpack array in the field ``m``), so a worker
running thousands of tasks a second adds a few entries a second, and an entry stays
small (about 60 kB for 500 outcome rows). The stream is trimmed by entries
(``XADD ... MAXLEN ~`` :data:`MAX_ENTRIES`), which with rows capped per entry bounds it by
events: it keeps about :data:`MAX_STREAM_EVENTS` recent events (some more while Redis
trims whole nodes; about 12 MB of outcome rows), however large the batches.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Final

import redis.asyncio as aioredis

from asyncq.events import (
    FORGET_AFTER,
    ROWS_PER_ENTRY,
    Event,
    chunks,
    decode,
    encode,
    pack_events,
    unpack_events,
)

__all__ = ["MAX_ENTRIES", "MAX_STREAM_EVENTS", "ROWS_PER_ENTRY", "RedisBus", "events_key",
           "workers_key"]

#: Recent events the stream keeps, about (it is trimmed by entries).
MAX_STREAM_EVENTS: Final = 100_000
#: Entries the stream keeps, approximately (``XADD ... MAXLEN ~``).
MAX_ENTRIES: Final = MAX_STREAM_EVENTS // ROWS_PER_ENTRY


def events_key(app: str) -> str:
    return f"asyncq:events:{{{app}}}"


def workers_key(app: str) -> str:
    return f"asyncq:workers:{{{app}}}"


class _Subscription:
    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub

    async def get(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        task = asyncio.current_task()
        while (left := deadline - time.monotonic()) > 0:
            if task is not None and task.cancelling():
                raise asyncio.CancelledError  # a cancellation the client swallowed
            message = await self._pubsub.get_message(ignore_subscribe_messages=True,
                                                     timeout=left)
            if message is not None and message.get("type") == "message":
                data = message["data"]
                return data if isinstance(data, bytes) else str(data).encode()
        return None

    async def aclose(self) -> None:
        await self._pubsub.aclose()


class RedisBus:
    """Uses the broker's own client (``RedisBroker.client``)."""

    def __init__(self, client: aioredis.Redis, app: str) -> None:
        self._client = client
        self._app = app
        self._events = events_key(app)
        self._workers = workers_key(app)

    def _channel(self, topic: str) -> str:
        return f"asyncq:bus:{{{self._app}}}:{topic}"

    async def emit(self, events: Sequence[Event]) -> None:
        """One stream entry per :data:`ROWS_PER_ENTRY` events (field ``m``: a msgpack
        array), in one round trip, so a busy worker adds a few entries a second, not one
        per event, and the stream's size is bounded by events."""
        batches = chunks(events)
        if len(batches) == 1:
            await self._client.xadd(self._events, {"m": pack_events(batches[0])},
                                    maxlen=MAX_ENTRIES, approximate=True)
            return
        if batches:
            async with self._client.pipeline(transaction=False) as pipe:
                for chunk in batches:
                    pipe.xadd(self._events, {"m": pack_events(chunk)}, maxlen=MAX_ENTRIES,
                              approximate=True)
                await pipe.execute()

    async def follow(self, history: int = 0) -> AsyncIterator[dict[str, Any]]:
        last: Any = "$"
        if history > 0:
            entries, last = await self._tail(history)
            for event in entries:
                yield event
        task = asyncio.current_task()
        while task is None or not task.cancelling():  # a swallowed cancel ends it too
            reply: Any = await self._client.xread({self._events: last}, block=1000,
                                                  count=100)
            for _stream, entries in reply or []:
                for ref, fields in entries:
                    last = ref
                    for event in _batch(fields):
                        yield event

    async def _tail(self, count: int) -> tuple[list[dict[str, Any]], Any]:
        """The last ``count`` events and the id of the newest entry (``$`` if none)."""
        events: list[dict[str, Any]] = []
        newest: Any = "$"
        end: Any = "+"
        page = 2  # an entry holds up to ROWS_PER_ENTRY events: read few, then more
        while len(events) < count:
            entries: Any = await self._client.xrevrange(self._events, max=end, count=page)
            if newest == "$" and entries:
                newest = entries[0][0]
            for _ref, fields in entries:
                events[:0] = _batch(fields)
            if len(entries) < page:
                break
            end = "(" + _text(entries[-1][0])
            page = min(page * 2, 50)
        return events[-count:], newest

    async def recent(self, count: int) -> list[dict[str, Any]]:
        if count <= 0:
            return []
        events, _ = await self._tail(count)
        return events

    async def broadcast(self, topic: str, body: bytes) -> None:
        await self._client.publish(self._channel(topic), body)

    async def subscribe(self, topic: str) -> _Subscription:
        pubsub = self._client.pubsub()
        await pubsub.subscribe(self._channel(topic))
        return _Subscription(pubsub)

    async def put_worker(self, name: str, info: Mapping[str, Any]) -> None:
        await self._client.hset(self._workers, name, encode(info))

    async def drop_worker(self, name: str) -> None:
        await self._client.hdel(self._workers, name)

    async def workers(self) -> list[dict[str, Any]] | None:
        raw: dict[Any, Any] = await self._client.hgetall(self._workers)
        out: list[dict[str, Any]] = []
        stale: list[Any] = []
        for name, value in raw.items():
            info = decode(value)
            if info is None or _age(info) > FORGET_AFTER:
                stale.append(name)
            else:
                out.append(info)
        if stale:
            await self._client.hdel(self._workers, *stale)
        return out

    async def aclose(self) -> None:
        return None


def _batch(fields: dict[bytes, bytes]) -> list[dict[str, Any]]:
    return unpack_events(fields.get(b"m", b"\x90"))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _age(info: dict[str, Any]) -> float:
    try:
        return time.time() - float(info.get("ts", 0))
    except (TypeError, ValueError):
        return float("inf")
