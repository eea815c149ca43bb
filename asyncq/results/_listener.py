"""Waiting for Redis result records over pub/sub: one connection per backend.

Two kinds of waits share it:

- **This process's own tasks** (ids that start with :func:`~asyncq.message.process_token`,
  as every id this process makes does) wait on ONE channel, this process's reply
  channel ``asyncq:reply:<token>``, and its batch twin ``asyncq:replies:<token>``:
  whoever stores final records also publishes them there (a script's many records as
  one message: :func:`~asyncq.records.lua_prelude`). Thousands of handles cost one
  subscription.
  The channel stays subscribed while such waits come, and for ``REPLY_IDLE`` seconds
  after the last one.
- **Any other id** (``app.result(task_id)`` for a task another process sent) subscribes
  its own channel ``asyncq:done:<id>`` for as long as it waits.

Either way the subscription is confirmed before the key is read, so a record stored
in between is never missed. A handle that ``enqueue`` made while the reply channel was
live (``wait_mine``'s ``since``) reads no key: its record comes over the channel, or
came before and waits in an :class:`~asyncq.results._early.EarlyResults`. After the
connection is lost, every waiter re-reads its key once the subscriptions are back; a
slow recheck of every waited key (``recheck_interval``) is the safety net for anything
else (a record stored by a writer that did not notify, a reader that failed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from redis.asyncio import Redis

from asyncq import _redis
from asyncq._record_signing import genuine
from asyncq.errors import ResultUnavailable
from asyncq.records import (
    REPLY_BATCH_PREFIX,
    REPLY_PREFIX,
    is_final,
    reply_of_twin,
    reply_twin,
)
from asyncq.results import ResultBackend, _pubsub
from asyncq.results._early import EarlyResults
from asyncq.results._keys import KeyReads, ReadMany
from asyncq.results._subscriptions import Subscriptions, Waiting

__all__ = ["REPLY_IDLE", "REPLY_PREFIX", "Listener"]

logger = logging.getLogger("asyncq.results.redis")

#: Seconds the reply channel stays subscribed after its last waiter is done.
REPLY_IDLE: Final = 1.0
#: After a reconnect, the seconds to wait for the subscriptions' confirmation before
#: re-reading the waited keys anyway.
_RESUBSCRIBE_WAIT: Final = 2.0

_LoadMany = Callable[[Sequence[str]], Awaitable[list[bytes | BaseException | None]]]


class Listener(Subscriptions):
    """One pub/sub connection shared by every waiter of a backend."""

    def __init__(
        self,
        backend: ResultBackend,
        client: Redis,
        recheck_interval: float,
        *,
        key_of: Callable[[str], str],
        load_many: _LoadMany,
        read_many: ReadMany,
    ) -> None:
        super().__init__(backend, client)
        self._recheck_interval = recheck_interval
        self._key_of = key_of
        self._load_many = load_many
        #: reads the keys of the waits on the reply channel that need it
        self._keys = KeyReads(backend, key_of, read_many)
        #: waits on the reply channel: result key (bytes) -> (task id, futures)
        self._mine: dict[bytes, Waiting] = {}
        #: the reply channel while it is subscribed (confirmed), and when it fell idle
        self._reply: str | None = None
        self._opening: asyncio.Future[None] | None = None
        self._idle_since = 0.0
        self._reader: asyncio.Task[None] | None = None
        self._resubscribed = True
        #: the backend's generation since which the reply channel is live (subscribed,
        #: confirmed, nothing lost since), None while it is not (see ``wait_mine``)
        self._live: int | None = None
        # records dropped: a new generation (live only if the channel still is)
        self._early = EarlyResults(lambda: self._new_generation(live=self._live is not None))

    def _new_generation(self, *, live: bool) -> None:
        """Handles made from now on (``live``), or none (not ``live``), may skip reading
        their key: after a (re)subscription, a loss of messages, giving the channel up."""
        backend = self._backend
        backend.generation += 1
        self._live = backend.generation if live else None

    # -- waiting -------------------------------------------------------------------
    async def wait_mine(self, task_id: str, channel: str, since: int | None = None) -> bytes:
        """Wait on this process's reply channel ``channel`` for ``task_id``'s record.

        ``since``: the backend's ``generation`` when ``enqueue`` made the handle (None
        for any other handle). At or after the one the channel went live at, the task
        was published while the channel was subscribed: its record comes over the
        channel (or came, and waits in ``self._early``), so its key is not read.
        """
        key = self._key_of(task_id).encode()
        # only the stamped handle, which reads no key, claims an early record
        early = self._early.take(key) if since is not None else self._early.peek(key)
        if early is not None:
            if genuine(early, task_id, self._backend.signer):
                return early
            since = None  # a forged one may have replaced the genuine one: read the key
        reader = self._reader  # its loop is ours (get_running_loop: a system call on 3.11)
        loop = asyncio.get_running_loop() if reader is None or reader.done() else reader.get_loop()
        fut: asyncio.Future[bytes] = loop.create_future()
        self._enter(key, task_id, fut)
        try:
            if self._reply != channel:
                await self._open_reply(channel)
            reader = self._reader
            if reader is None or reader.done():  # (_ensure_reader, inline: once per wait)
                self._ensure_reader()
            live = self._live
            if since is None or live is None or since < live:
                # the stored record, read once the channel is confirmed, resolves
                # ``fut`` too: one wait per handle (many handles' reads share an MGET)
                self._keys.add(task_id, fut)
            return await fut
        finally:
            self.drop_mine(key, fut)  # (nothing left to drop when a message resolved it)

    def wait_mine_now(self, task_id: str, channel: str, since: int | None
                      ) -> asyncio.Future[bytes] | None:
        """:meth:`wait_mine` as a bare future, when it can be one: a stamped handle on
        the live reply channel, with no key to read and no early record to claim (else
        None: wait with :meth:`wait_mine`). A message resolving it removes its entry;
        a wait given up, :meth:`drop_mine`; one resolved by a key read (after a
        reconnect), the next recheck (:meth:`_prune`)."""
        live, reader = self._live, self._reader
        if (since is None or live is None or since < live or self._reply != channel
                or reader is None or reader.done()):
            return None
        key = self._key_of(task_id).encode()
        if self._early.peek(key) is not None:
            return None  # (the coroutine's path checks and claims it)
        fut: asyncio.Future[bytes] = reader.get_loop().create_future()
        self._enter(key, task_id, fut)
        return fut

    def _enter(self, key: bytes, task_id: str, fut: asyncio.Future[bytes]) -> None:
        entry = self._mine.get(key)
        if entry is None:
            self._mine[key] = (task_id, [fut])
        else:
            entry[1].append(fut)

    def drop_mine(self, key: bytes, fut: asyncio.Future[bytes]) -> None:
        """Forget ``fut``, a wait for ``key`` that ended or was given up (its entry may
        be gone already: a message resolving it removes it)."""
        entry = self._mine.get(key)
        if entry is not None and fut in entry[1]:
            entry[1].remove(fut)
            if not entry[1]:
                self._remove(key)

    def _remove(self, key: bytes) -> None:
        """Drop ``key``'s entry; the reply channel falls idle with the last one."""
        del self._mine[key]
        if not self._mine:
            self._idle_since = asyncio.get_running_loop().time()

    async def _open_reply(self, channel: str) -> None:
        """Subscribe the reply channel: one subscription for all who wait meanwhile."""
        opening = self._opening
        if opening is None or opening.done():
            opening = self._opening = asyncio.ensure_future(self._subscribe_reply(channel))
        await asyncio.shield(opening)
        self._reply = channel

    async def _subscribe_reply(self, channel: str) -> None:
        """The reply channel, then its batch twin (confirmed second: then both are live)."""
        await asyncio.gather(self._subscribe(channel), self._subscribe(reply_twin(channel)))

    def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    async def _release_reply(self) -> None:
        """Unsubscribe the reply channel once no waiter used it for ``REPLY_IDLE`` s
        (a process that stopped waiting should not read every record it caused)."""
        channel, self._reply = self._reply, None
        async with self._lock:
            if self._mine:  # a waiter came meanwhile: keep the channel
                self._reply = channel
            elif channel is not None and self._pubsub is not None:
                self._new_generation(live=False)
                self._early.clear()
                await self._unsubscribe_on(self._pubsub, [channel, reply_twin(channel)])

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
                self._new_generation(live=False)
                await asyncio.sleep(0.5)
                continue
            except Exception:  # never leave waiters without a reader: recheck instead
                logger.exception("result listener failed; re-reading the waited keys")
                self._new_generation(live=self._live is not None)  # a message may be lost
                lost_at = lost_at or loop.time()
                await asyncio.sleep(0.5)
            now = loop.time()
            if lost_at is not None and (self._resubscribed or now - lost_at > _RESUBSCRIBE_WAIT):
                lost_at = None if await self._recheck() else now
            self._early.age()
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
        await _pubsub.read_buffered(pubsub, self._on_message, self._dispatch)

    def _dispatch(self, message: dict[str, object]) -> None:
        kind = message.get("type")
        data = message.get("data")
        if kind in ("message", "smessage") and isinstance(data, bytes):
            self._on_message(_text(message.get("channel")), data)
        elif kind in ("subscribe", "ssubscribe"):
            self._resubscribed = True
            channel = _text(message.get("channel"))
            if channel.startswith(REPLY_BATCH_PREFIX):  # (subscribed after the reply channel)
                self._reply_confirmed(reply_of_twin(channel))
            for fut in self._confirm.pop(channel, []):
                if not fut.done():
                    fut.set_result(None)

    def _reply_confirmed(self, channel: str) -> None:
        """The reply channel is (again) subscribed. Again (a reconnect redis-py made on
        its own): what was published meanwhile is lost, so every wait reads its key."""
        self._new_generation(live=True)
        if self._reply == channel:
            for task_id, futs in list(self._mine.values()):
                for fut in futs:
                    self._keys.add(task_id, fut)

    def _on_message(self, channel: str, data: bytes) -> None:
        if channel.startswith(REPLY_BATCH_PREFIX):
            self._dispatch_batch(data)
        elif channel.startswith(REPLY_PREFIX):  # one record: ``key value``
            key, _, raw = data.partition(b" ")
            self._dispatch_record(key, raw)
        elif self._genuine(channel, data):
            self._resolve(self._waiters.get(channel), data)

    def _dispatch_batch(self, data: bytes) -> None:
        """The records of this process's tasks that one script stored, as one message."""
        records = _pubsub.batch_records(data)
        if records is None:
            logger.warning("ignored a reply batch that is not one (%d bytes)", len(data))
            return
        for key, raw in records:
            self._dispatch_record(key, raw)

    def _dispatch_record(self, key: bytes, raw: bytes) -> None:
        entry = self._mine.get(key)
        if entry is None:
            self._early.keep(key, raw)  # checked when claimed (the task id is not known)
        elif self._backend.signer is None or genuine(raw, entry[0], self._backend.signer):
            self._remove(key)  # (a coroutine's wait finds it gone; a bare future has no other)
            self._resolve(entry, raw)

    @staticmethod
    def _resolve(entry: Waiting | None, raw: bytes) -> None:
        for fut in entry[1] if entry else []:
            if not fut.done():
                fut.set_result(raw)

    async def _recheck(self) -> bool:
        """Re-read every waited key; False if the server is still away."""
        self._prune()
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

    def _prune(self) -> None:
        """Drop the reply waits nobody waits for any more: bare futures of
        :meth:`wait_mine_now` cancelled, or resolved by a key read, not by a message."""
        for key in [key for key, (_, futs) in self._mine.items() if all(f.done() for f in futs)]:
            self._remove(key)

    async def aclose(self) -> None:
        await self._subscriber.aclose()
        await self._unsubscriber.aclose()
        await self._keys.aclose()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        self._new_generation(live=False)
        self._early.clear()
        self._reply = None
        for _, futs in [*self._waiters.values(), *self._mine.values()]:
            for fut in futs:  # nothing reads for them any more
                if not fut.done():
                    fut.set_exception(ResultUnavailable("the result backend was closed"))
        if self._pubsub is not None:
            pubsub, self._pubsub = self._pubsub, None
            await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
