"""Redis result backend: ``asyncq:result:<id>`` with a TTL, completion over pub/sub.

Waiting uses one shared pub/sub connection per backend (per process): each waited
id subscribes its own channel on that connection, confirmed before the key is read,
so a result that lands in between is never missed. After a reconnect every waiter
re-reads its key; a slow recheck (``recheck_interval``) is a safety net only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from redis.asyncio.client import PubSub

from asyncq import _redis
from asyncq._batch import Coalescer
from asyncq._record_signing import open_record
from asyncq.codec import DEFAULT_MAX_SIZE
from asyncq.errors import DecodeError
from asyncq.records import KeyWrite, decode_record, is_final
from asyncq.results import DEFAULT_RESULT_TTL, ResultBackend

__all__ = ["RedisResultBackend", "result_channel", "result_key"]

logger = logging.getLogger("asyncq.results.redis")


def result_key(task_id: str) -> str:
    return f"asyncq:result:{task_id}"


def result_channel(task_id: str) -> str:
    return f"asyncq:done:{task_id}"


class RedisResultBackend(ResultBackend):
    #: how a script notifies waiters (``SPUBLISH`` on a cluster)
    publish_command = "PUBLISH"

    def __init__(self, url: str, *, ttl: float = DEFAULT_RESULT_TTL,
                 max_size: int = DEFAULT_MAX_SIZE, recheck_interval: float = 30.0) -> None:
        super().__init__(url, ttl=ttl, max_size=max_size)
        self.client: Any = self._make_client(url)
        self.server_id = self._server_of(url)
        self.replication = _redis.replication_of(url)
        self._store_script = self.client.register_script(
            _redis.load_lua("asyncq.results", "store_result", publish=self.publish_command))
        self._listener = self._listener_class(self, recheck_interval)
        self._reader: Coalescer[str, bytes | None] = Coalescer(self._get_batch)

    @property
    def _listener_class(self) -> type[_Listener]:
        return _Listener

    def _make_client(self, url: str) -> Any:
        return _redis.make_client(url)

    def _server_of(self, url: str) -> str | None:
        return _redis.server_id(url)

    def key_for(self, task_id: str) -> str:
        return result_key(task_id)

    def channel_for(self, task_id: str) -> str | None:
        return result_channel(task_id)

    async def close(self) -> None:
        await self._listener.aclose()
        await self._reader.aclose()
        await self.client.aclose()

    async def _load(self, task_id: str) -> bytes | None:
        with _redis.mapped_errors("Redis result backend", self.url):
            return await self._reader.submit(self.key_for(task_id))

    async def _get_batch(self, keys: Sequence[str]) -> Sequence[bytes | BaseException | None]:
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(key)
            replies: list[bytes | BaseException | None] = await pipe.execute(raise_on_error=False)
            return replies

    async def _put(self, writes: Sequence[KeyWrite]) -> None:
        with _redis.mapped_errors("Redis result backend", self.url):
            batch = _redis.ScriptBatch(self.client, self.replication)
            for w in writes:
                batch.script(self._store_script,
                             [w.key], [w.ttl_ms, "1" if w.final else "0", w.channel or "", w.value])
            await batch.execute()

    async def _delete(self, task_id: str) -> None:
        with _redis.mapped_errors("Redis result backend", self.url):
            await self.client.delete(self.key_for(task_id))

    async def _wait(self, task_id: str) -> bytes:
        return await self._listener.wait(task_id)


class _Listener:
    """One pub/sub connection shared by every waiter of a backend."""

    def __init__(self, backend: RedisResultBackend, recheck_interval: float) -> None:
        self._backend = backend
        self._recheck_interval = recheck_interval
        self._pubsub: PubSub | None = None
        self._waiters: dict[str, tuple[str, list[asyncio.Future[bytes]]]] = {}
        self._confirm: dict[str, list[asyncio.Future[None]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._subscriber: Coalescer[str, None] = Coalescer(self._subscribe_batch)
        self._unsubscriber: Coalescer[str, None] = Coalescer(self._unsubscribe_batch)

    async def wait(self, task_id: str) -> bytes:
        channel = self._backend.channel_for(task_id)
        assert channel is not None
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        entry = self._waiters.setdefault(channel, (task_id, []))
        entry[1].append(fut)
        try:
            if len(entry[1]) == 1:
                await self._subscribe(channel)
            raw = await self._backend._load(task_id)
            if is_final(raw):
                assert raw is not None
                return raw
            if raw is not None:  # a record that is not final must at least be one
                decode_record(raw, max_size=self._backend.max_size)
            return await fut
        finally:
            self._drop(channel, fut)

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

    async def _subscribe_on(self, pubsub: Any, channels: Sequence[str]) -> None:
        await pubsub.subscribe(*channels)

    async def _unsubscribe_on(self, pubsub: Any, channels: Sequence[str]) -> None:
        await pubsub.unsubscribe(*channels)

    async def _next_message(self, pubsub: Any, timeout: float) -> Any:
        return await pubsub.get_message(timeout=timeout)

    def _ensure_pubsub(self) -> PubSub:
        if self._pubsub is None:
            self._pubsub = self._backend.client.pubsub()
        return self._pubsub

    def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read_loop())

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

    async def _read_loop(self) -> None:
        recheck_due = False
        loop = asyncio.get_running_loop()
        next_recheck = loop.time() + self._recheck_interval
        while self._pubsub is not None and (self._waiters or self._confirm):
            try:
                message = await self._next_message(self._pubsub, 1.0)
            except _redis.connection_errors as exc:
                logger.warning("result listener lost its connection (%s); reconnecting",
                               type(exc).__name__)
                recheck_due = True
                await asyncio.sleep(0.5)
                continue
            if message is not None:
                self._dispatch(message)
            if recheck_due or loop.time() >= next_recheck:
                recheck_due = not await self._recheck()
                next_recheck = loop.time() + self._recheck_interval

    def _dispatch(self, message: dict[str, object]) -> None:
        channel = _text(message.get("channel"))
        kind = message.get("type")
        if kind in ("subscribe", "ssubscribe"):
            for fut in self._confirm.pop(channel, []):
                if not fut.done():
                    fut.set_result(None)
        elif kind in ("message", "smessage"):
            data = message.get("data")
            if isinstance(data, bytes) and self._genuine(channel, data):
                self._resolve(channel, data)

    def _genuine(self, channel: str, raw: bytes) -> bool:
        """With signing on, a notification must carry a genuine record: one published
        by anyone else is ignored (the waiter goes on waiting for the real one)."""
        entry = self._waiters.get(channel)
        signer = self._backend.signer
        if entry is None or signer is None:
            return True
        try:
            open_record(raw, entry[0], signer)
        except DecodeError:
            logger.warning("ignored a forged result notification for task %s", entry[0])
            return False
        return True

    def _resolve(self, channel: str, raw: bytes) -> None:
        entry = self._waiters.get(channel)
        for fut in entry[1] if entry else []:
            if not fut.done():
                fut.set_result(raw)

    async def _recheck(self) -> bool:
        """Re-read every waited key (after a reconnect); False if the server is still away."""
        try:
            for channel, (task_id, _) in list(self._waiters.items()):
                raw = await self._backend._load(task_id)
                if is_final(raw):
                    assert raw is not None
                    self._resolve(channel, raw)
        except Exception:  # BrokerUnavailable: try again on the next turn
            return False
        return True

    async def aclose(self) -> None:
        await self._subscriber.aclose()
        await self._unsubscriber.aclose()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if self._pubsub is not None:
            pubsub, self._pubsub = self._pubsub, None
            await pubsub.aclose()  # type: ignore[no-untyped-call]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
