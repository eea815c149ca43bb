"""The Redis bus: a bounded stream of events, pub/sub topics, a hash of workers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis

from asyncq.events import FORGET_AFTER, MAX_EVENTS, decode, encode

__all__ = ["RedisBus", "events_key", "workers_key"]


def events_key(app: str) -> str:
    return f"asyncq:events:{{{app}}}"


def workers_key(app: str) -> str:
    return f"asyncq:workers:{{{app}}}"


class _Subscription:
    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub

    async def get(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
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

    async def emit(self, events: Sequence[Mapping[str, Any]]) -> None:
        if not events:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(self._events, {"e": encode(event)}, maxlen=MAX_EVENTS,
                          approximate=True)
            await pipe.execute()

    async def follow(self, history: int = 0) -> AsyncIterator[dict[str, Any]]:
        last = "$"
        if history > 0:
            entries: Any = await self._client.xrevrange(self._events, count=history)
            for ref, fields in reversed(entries):
                last = ref
                event = decode(fields.get(b"e", b""))
                if event is not None:
                    yield event
        while True:
            reply: Any = await self._client.xread({self._events: last}, block=1000,
                                                  count=500)
            for _stream, entries in reply or []:
                for ref, fields in entries:
                    last = ref
                    event = decode(fields.get(b"e", b""))
                    if event is not None:
                        yield event

    async def recent(self, count: int) -> list[dict[str, Any]]:
        if count <= 0:
            return []
        entries: Any = await self._client.xrevrange(self._events, count=count)
        events = [decode(fields.get(b"e", b"")) for _ref, fields in reversed(entries)]
        return [event for event in events if event is not None]

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


def _age(info: dict[str, Any]) -> float:
    try:
        return time.time() - float(info.get("ts", 0))
    except (TypeError, ValueError):
        return float("inf")
