"""Waiting for Redis result records over pub/sub: one connection per backend.

Two kinds of waits share it:

- **This process's own tasks** (ids that start with :func:`~asyncq.message.process_token`,
  as every id this process makes does) wait on ONE channel, this process's reply
  channel ``asyncq:reply:<token>``: whoever stores a final record also publishes
  ``key value`` there. Thousands of handles awaited at once cost no subscription each.
  The channel stays subscribed while such waits come, and for ``REPLY_IDLE`` seconds
  after the last one.
- **Any other id** (``app.result(task_id)`` for a task another process sent) subscribes
  its own channel ``asyncq:done:<id>`` for as long as it waits.

Either way the subscription is confirmed before the key is read, so a record stored
in between is never missed. After the connection is lost, every waiter re-reads its
key once the subscriptions are back; a slow recheck of every waited key
(``recheck_interval``) is the safety net for anything else (a record stored by a
writer that did not notify, a reader that failed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from asyncq import _redis
from asyncq._batch import Coalescer
from asyncq._record_signing import open_record
from asyncq.errors import DecodeError, ResultUnavailable
from asyncq.records import decode_record, is_final
from asyncq.results import ResultBackend, _pubsub

__all__ = ["REPLY_IDLE", "REPLY_PREFIX", "Listener"]

logger = logging.getLogger("asyncq.results.redis")

#: Reply channels are this and a process token.
REPLY_PREFIX: Final = "asyncq:reply:"

#: Seconds the reply channel stays subscribed after its last waiter is done.
REPLY_IDLE: Final = 1.0
#: After a reconnect, the seconds to wait for the subscriptions' confirmation before
#: re-reading the waited keys anyway.
_RESUBSCRIBE_WAIT: Final = 2.0

_Waiting = tuple[str, list["asyncio.Future[bytes]"]]
_LoadMany = Callable[[Sequence[str]], Awaitable[list[bytes | BaseException | None]]]
_ReadMany = Callable[[Sequence[str]], Awaitable[Sequence[bytes | BaseException | None]]]
#: Keys read by one MGET of :meth:`Listener._read_keys`.
_READ_BATCH: Final = 1000


class Listener:
    """One pub/sub connection shared by every waiter of a backend."""

    def __init__(
        self,
        backend: ResultBackend,
        client: Redis,
        recheck_interval: float,
        *,
        key_of: Callable[[str], str],
        load_many: _LoadMany,
        read_many: _ReadMany,
    ) -> None:
        self._backend = backend
        self._client = client
        self._recheck_interval = recheck_interval
        self._key_of = key_of
        self._load_many = load_many
        self._read_many = read_many
        #: waits on the reply channel whose key is still to be read, and who reads them
        self._unread: list[tuple[str, asyncio.Future[bytes]]] = []
        self._key_reader: asyncio.Task[None] | None = None
        self._pubsub: PubSub | None = None
        #: per-id waits: channel -> (task id, futures)
        self._waiters: dict[str, _Waiting] = {}
        #: waits on the reply channel: result key (bytes) -> (task id, futures)
        self._mine: dict[bytes, _Waiting] = {}
        #: the reply channel while it is subscribed (confirmed), and when it fell idle
        self._reply: str | None = None
        self._opening: asyncio.Future[None] | None = None
        self._idle_since = 0.0
        self._confirm: dict[str, list[asyncio.Future[None]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._subscriber: Coalescer[str, None] = Coalescer(self._subscribe_batch)
        self._unsubscriber: Coalescer[str, None] = Coalescer(self._unsubscribe_batch)
        self._resubscribed = True

    # -- waiting -------------------------------------------------------------------
    async def wait_mine(self, task_id: str, channel: str) -> bytes:
        """Wait on this process's reply channel ``channel`` for ``task_id``'s record."""
        key = self._key_of(task_id).encode()
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        entry = self._mine.get(key)
        if entry is None:
            entry = self._mine[key] = (task_id, [])
        entry[1].append(fut)
        try:
            if self._reply != channel:
                await self._open_reply(channel)
            self._ensure_reader()
            # the stored record, read once the channel is confirmed, resolves ``fut``
            # too: one wait per handle (the reads of many handles share an MGET)
            self._read_later(task_id, fut)
            return await fut
        finally:
            futs = entry[1]
            futs.remove(fut)
            if not futs and self._mine.get(key) is entry:
                del self._mine[key]
                if not self._mine:
                    self._idle_since = asyncio.get_running_loop().time()

    def _read_later(self, task_id: str, fut: asyncio.Future[bytes]) -> None:
        self._unread.append((task_id, fut))
        keys = self._key_reader
        if keys is None or keys.done():
            self._key_reader = asyncio.get_running_loop().create_task(self._read_keys())

    async def _read_keys(self) -> None:
        """Read the keys of the waits queued by :meth:`_read_later`, a batch at a time
        (the next batch gathers while one is on the wire; a batch leaves the queue once
        read, so that closing the backend fails the waits of the one on the wire too)."""
        while self._unread:
            taken = self._unread[:_READ_BATCH]
            batch = [w for w in taken if not w[1].done()]
            try:
                outcomes: Sequence[bytes | BaseException | None] = await self._read_many(
                    [self._key_of(task_id) for task_id, _ in batch]) if batch else []
            except Exception as exc:  # every wait of the batch gets it
                outcomes = [exc] * len(batch)
            del self._unread[:len(taken)]
            for (_, fut), raw in zip(batch, outcomes, strict=True):
                if not fut.done():
                    self._settle_read(fut, raw)

    def _settle_read(self, fut: asyncio.Future[bytes], raw: bytes | BaseException | None
                     ) -> None:
        """A wait's stored record: final resolves it, none leaves it waiting."""
        if isinstance(raw, BaseException):
            if isinstance(raw, _redis.connection_errors):
                raw = _redis.unavailable("Redis result backend", self._backend.url, raw)
            fut.set_exception(raw)
        elif is_final(raw):
            assert raw is not None
            fut.set_result(raw)
        elif raw is not None:  # a record that is not final must at least be one
            try:
                decode_record(raw, max_size=self._backend.max_size)
            except DecodeError as exc:
                fut.set_exception(exc)

    async def _open_reply(self, channel: str) -> None:
        """Subscribe the reply channel: one subscription for all who wait meanwhile."""
        opening = self._opening
        if opening is None or opening.done():
            opening = self._opening = asyncio.ensure_future(self._subscribe(channel))
        await asyncio.shield(opening)
        self._reply = channel

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

    async def _release_reply(self) -> None:
        """Unsubscribe the reply channel once no waiter used it for ``REPLY_IDLE`` s
        (a process that stopped waiting should not read every record it caused)."""
        channel, self._reply = self._reply, None
        async with self._lock:
            if self._mine:  # a waiter came meanwhile: keep the channel
                self._reply = channel
            elif channel is not None and self._pubsub is not None:
                await self._unsubscribe_on(self._pubsub, [channel])

    # -- reading ------------------------------------------------------------------------
    def _active(self) -> bool:
        return self._pubsub is not None and bool(
            self._waiters or self._confirm or self._mine or self._reply
        )

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_recheck = loop.time() + self._recheck_interval
        lost_at: float | None = None
        while self._active():
            try:
                await self._read_one()
            except _redis.connection_errors as exc:
                logger.warning(
                    "result listener lost its connection (%s); reconnecting", type(exc).__name__
                )
                lost_at, self._resubscribed = loop.time(), False
                await asyncio.sleep(0.5)
                continue
            except Exception:  # never leave waiters without a reader: recheck instead
                logger.exception("result listener failed; re-reading the waited keys")
                lost_at = lost_at or loop.time()
                await asyncio.sleep(0.5)
            now = loop.time()
            if lost_at is not None and (self._resubscribed or now - lost_at > _RESUBSCRIBE_WAIT):
                lost_at = None if await self._recheck() else now
            if now >= next_recheck:
                await self._recheck()
                next_recheck = now + self._recheck_interval
            if self._reply is not None and not self._mine and now - self._idle_since > REPLY_IDLE:
                await self._release_reply()

    async def _read_one(self) -> None:
        pubsub = self._pubsub
        assert pubsub is not None
        message = await self._next_message(pubsub, 1.0)
        if message is not None:
            self._dispatch(message)
            await self._read_buffered(pubsub)

    async def _read_buffered(self, pubsub: Any) -> None:
        """Dispatch every further reply the connection already holds (:mod:`._pubsub`:
        redis-py's per-message cost was a third of a fan-in's CPU)."""
        source = _pubsub.buffered(pubsub)
        if source is None:
            return
        gets, parser = source
        while (reply := gets()) is not _pubsub.EMPTY:
            if isinstance(reply, BaseException):
                raise reply
            if len(reply) == 3 and reply[0] in _pubsub.MESSAGE_KINDS:
                if isinstance(reply[2], bytes):
                    self._on_message(_text(reply[1]), reply[2])
                continue
            # anything else as get_message has it: a RESP3 push through the parser's
            # handler, the health check's answer dropped
            if isinstance(reply, list) and type(reply) is not list:
                reply = await parser.handle_push_response(reply)
            if reply in pubsub.health_check_response:
                continue
            message = await pubsub.handle_message(reply)
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, object]) -> None:
        kind = message.get("type")
        data = message.get("data")
        if kind in ("message", "smessage") and isinstance(data, bytes):
            self._on_message(_text(message.get("channel")), data)
        elif kind in ("subscribe", "ssubscribe"):
            self._resubscribed = True
            for fut in self._confirm.pop(_text(message.get("channel")), []):
                if not fut.done():
                    fut.set_result(None)

    def _on_message(self, channel: str, data: bytes) -> None:
        if channel.startswith(REPLY_PREFIX):
            self._dispatch_mine(data)
        elif self._genuine(channel, data):
            self._resolve(self._waiters.get(channel), data)

    def _dispatch_mine(self, data: bytes) -> None:
        key, _, raw = data.partition(b" ")
        entry = self._mine.get(key)
        if entry is not None and self._genuine_for(entry[0], raw):
            self._resolve(entry, raw)

    def _genuine(self, channel: str, raw: bytes) -> bool:
        entry = self._waiters.get(channel)
        return entry is None or self._genuine_for(entry[0], raw)

    def _genuine_for(self, task_id: str, raw: bytes) -> bool:
        """With signing on, a notification must carry a genuine record: one published
        by anyone else is ignored (the waiter goes on waiting for the real one)."""
        signer = self._backend.signer
        if signer is None:
            return True
        try:
            open_record(raw, task_id, signer)
        except DecodeError:
            logger.warning("ignored a forged result notification for task %s", task_id)
            return False
        return True

    @staticmethod
    def _resolve(entry: _Waiting | None, raw: bytes) -> None:
        for fut in entry[1] if entry else []:
            if not fut.done():
                fut.set_result(raw)

    async def _recheck(self) -> bool:
        """Re-read every waited key; False if the server is still away."""
        entries = [*self._waiters.values(), *self._mine.values()]
        if not entries:
            return True
        outcomes = await self._load_many([self._key_of(task_id) for task_id, _ in entries])
        ok = True
        for entry, raw in zip(entries, outcomes, strict=True):
            if isinstance(raw, BaseException):
                ok = False  # BrokerUnavailable: try again on the next turn
            elif is_final(raw):
                assert raw is not None
                self._resolve(entry, raw)
        return ok

    async def aclose(self) -> None:
        await self._subscriber.aclose()
        await self._unsubscriber.aclose()
        for task in (self._key_reader, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._key_reader = self._reader = None
        for _, fut in self._unread:
            if not fut.done():
                fut.set_exception(ResultUnavailable("the result backend was closed"))
        self._unread.clear()
        self._reply = None
        if self._pubsub is not None:
            pubsub, self._pubsub = self._pubsub, None
            await pubsub.aclose()  # type: ignore[no-untyped-call]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
