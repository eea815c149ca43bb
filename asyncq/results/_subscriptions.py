"""The subscriptions of a result listener, and the waits for an id's own channel.

:class:`Subscriptions` holds the one pub/sub connection of a
:class:`~asyncq.results._listener.Listener` and what goes on it: channels subscribed
(many per ``SUBSCRIBE``) and confirmed, unsubscribed once nobody waits on them, and
the waits of ids that are not this process's (``app.result(task_id)`` for a task
another process sent), each on the id's own channel. The listener adds the reply
channel and the read loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from asyncq import _redis
from asyncq._batch import Coalescer
from asyncq._record_signing import genuine
from asyncq.records import decode_record, is_final
from asyncq.results import ResultBackend

__all__ = ["Subscriptions", "Waiting"]

#: (task id, the futures waiting for its record)
Waiting = tuple[str, list["asyncio.Future[bytes]"]]


class Subscriptions:
    """A backend's pub/sub connection, its subscriptions, and the per-id waits."""

    def __init__(self, backend: ResultBackend, client: Redis) -> None:
        self._backend = backend
        self._client = client
        self._pubsub: PubSub | None = None
        #: per-id waits: channel -> (task id, futures)
        self._waiters: dict[str, Waiting] = {}
        self._confirm: dict[str, list[asyncio.Future[None]]] = {}
        self._lock = asyncio.Lock()
        self._subscriber: Coalescer[str, None] = Coalescer(self._subscribe_batch)
        self._unsubscriber: Coalescer[str, None] = Coalescer(self._unsubscribe_batch)

    def _ensure_reader(self) -> None:
        """Start the task that reads the connection (the listener's)."""
        raise NotImplementedError

    async def wait(self, task_id: str, channel: str) -> bytes:
        """Wait on ``task_id``'s own channel ``channel``."""
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        entry = self._waiters.setdefault(channel, (task_id, []))
        entry[1].append(fut)
        try:
            # a second waiter too while the first one's subscription is unconfirmed:
            # reading the key before it is could miss a record stored in between
            if len(entry[1]) == 1 or channel in self._confirm:
                await self._subscribe(channel)
            return await self._read_or(task_id, fut)
        finally:
            self._drop(channel, fut)

    async def _read_or(self, task_id: str, fut: asyncio.Future[bytes]) -> bytes:
        """The stored final record if there is one (read after the subscription is
        confirmed), else what ``fut`` gets."""
        raw = await self._backend._load(task_id)
        if is_final(raw):
            assert raw is not None
            return raw
        if raw is not None:  # a record that is not final must at least be one
            decode_record(raw, max_size=self._backend.max_size)
        return await fut

    # -- subscriptions ----------------------------------------------------------------
    async def _subscribe(self, channel: str) -> None:
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirm.setdefault(channel, []).append(confirmed)
        try:
            with _redis.mapped_errors("Redis result backend", self._backend.url):
                await self._subscriber.submit(channel)
            await confirmed
        finally:
            waiting = self._confirm.get(channel)
            if waiting and confirmed in waiting:
                waiting.remove(confirmed)
                if not waiting:
                    del self._confirm[channel]

    async def _subscribe_batch(self, channels: Sequence[str]) -> Sequence[None]:
        async with self._lock:
            await self._subscribe_on(self._ensure_pubsub(), channels)
            self._ensure_reader()
        return [None] * len(channels)

    # the pub/sub commands: a Redis Cluster's listener overrides these (sharded pub/sub)
    async def _subscribe_on(self, pubsub: Any, channels: Sequence[str]) -> None:
        await pubsub.subscribe(*channels)

    async def _unsubscribe_on(self, pubsub: Any, channels: Sequence[str]) -> None:
        await pubsub.unsubscribe(*channels)

    async def _next_message(self, pubsub: Any, timeout: float) -> Any:
        return await pubsub.get_message(timeout=timeout)

    def _ensure_pubsub(self) -> PubSub:
        if self._pubsub is None:
            self._pubsub = self._client.pubsub()
        return self._pubsub

    def _drop(self, channel: str, fut: asyncio.Future[bytes]) -> None:
        entry = self._waiters.get(channel)
        if entry is None:
            return
        if fut in entry[1]:
            entry[1].remove(fut)
        if entry[1]:
            return
        del self._waiters[channel]
        if self._pubsub is not None:
            # not awaited: the caller has its result; a failed unsubscribe (the
            # connection is gone, and the channel with it) is only logged
            self._unsubscriber.post(channel)

    async def _unsubscribe_batch(self, channels: Sequence[str]) -> Sequence[None]:
        idle = [ch for ch in channels if ch not in self._waiters]
        if idle and self._pubsub is not None:
            async with self._lock:
                await self._unsubscribe_on(self._pubsub, idle)
        return [None] * len(channels)

    def _genuine(self, channel: str, raw: bytes) -> bool:
        entry = self._waiters.get(channel)
        return entry is None or genuine(raw, entry[0], self._backend.signer)
