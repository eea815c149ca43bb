"""The result-backend seam: store a task's outcome, wait for it, expire, forget.

The record format and the first-final-writer-wins rule belong to
:mod:`asyncq.records`; a backend implements four hooks (``_load``, ``_put``,
``_delete``, ``_wait``) plus where a record lives (``key_for``, ``channel_for``), and
the base class does encoding, decoding and timeouts. Backends register their URL
schemes here (:func:`register_backend`); ``App`` picks one by the URL's scheme.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Awaitable, Generator, Iterable, Sequence
from typing import Any, Final

from asyncq import codec
from asyncq._plugins import Registry
from asyncq._record_signing import open_record, sign_record
from asyncq._urls import mask_url
from asyncq.errors import ResultTimeout
from asyncq.records import (
    REJECTED,
    KeyWrite,
    ResultRecord,
    decode_record,
    encode_record,
    encode_success,
)
from asyncq.results._deadlines import Deadlines, awaiting
from asyncq.signing import Signer

__all__ = [
    "DEFAULT_RESULT_TTL",
    "REJECTED",
    "ResultBackend",
    "ResultRecord",
    "backend_class",
    "register_backend",
]

DEFAULT_RESULT_TTL: Final = 24 * 3600.0


class ResultBackend(abc.ABC):
    """Stores records; the base class does encoding, waiting and timeouts.

    Implementations fill ``_load``, ``_put`` (applying first-final-writer-wins, see
    :mod:`asyncq.records`), ``_delete``, ``_wait`` and ``key_for``.
    """

    def __init__(self, url: str, *, ttl: float = DEFAULT_RESULT_TTL,
                 max_size: int = codec.DEFAULT_MAX_SIZE) -> None:
        self.url = url
        self.ttl = ttl
        self.max_size = max_size

    @classmethod
    def create(cls, url: str, *, ttl: float, max_size: int,
               broker: object = None) -> ResultBackend:
        """Build one for an App (``broker`` is the App's, for backends that travel over
        it, such as RPC results)."""
        return cls(url, ttl=ttl, max_size=max_size)

    @property
    def safe_url(self) -> str:
        return mask_url(self.url)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.safe_url}>"

    #: Its connections belong to the event loop that opened them (see Broker.loop_bound).
    loop_bound: bool = True

    #: Equal to a consumer's ``server_id`` when the broker can apply our writes with its ack.
    server_id: str | None = None
    #: The App's signing keys (set by the App when signing is on): records written are
    #: signed, records read must be (:mod:`asyncq._record_signing`).
    signer: Signer | None = None
    #: Stamped on the handles ``enqueue`` makes (``TaskResult(since=...)``); a backend
    #: that can tell, from it, that a handle's record will reach it without a read of
    #: the key bumps it (the Redis backend's reply channel: :mod:`._listener`).
    generation: int = 0
    #: the shared timers of waits with a timeout (made on the first one)
    _deadlines: Deadlines | None = None

    async def connect(self) -> None:  # noqa: B027
        """Open connections (idempotent)."""

    async def close(self) -> None:  # noqa: B027
        """Close connections and wake waiters."""

    # -- hooks -------------------------------------------------------------------
    @abc.abstractmethod
    async def _load(self, task_id: str) -> bytes | None:
        """The stored bytes, or None."""

    @abc.abstractmethod
    async def _put(self, writes: Sequence[KeyWrite]) -> None:
        """Apply writes, each under first-final-writer-wins, and notify final ones."""

    @abc.abstractmethod
    async def _delete(self, task_id: str) -> None: ...

    @abc.abstractmethod
    async def _wait(self, task_id: str) -> bytes:
        """Return the stored bytes once a final record exists (no timeout here)."""

    def _waiting(self, task_id: str, since: int | None) -> Awaitable[bytes]:
        """``_wait`` for a handle stamped with ``since`` (see ``generation``)."""
        return self._wait(task_id)

    def wait_now(self, task_id: str, since: int | None) -> asyncio.Future[bytes] | None:
        """A future of ``task_id``'s record when the backend can wait with no coroutine
        (``await handle``, the hot path of a process awaiting its tasks), else None. Who
        gives up such a wait before it is done calls :meth:`abandon`."""
        return None

    def abandon(self, task_id: str, waiting: asyncio.Future[bytes]) -> None:
        """Forget a wait of :meth:`wait_now` given up (cancelled, say)."""
        return None

    @abc.abstractmethod
    def key_for(self, task_id: str) -> str: ...

    def channel_for(self, task_id: str) -> str | None:
        return None

    def reply_for(self, task_id: str) -> str | None:
        """Where the process that sent ``task_id`` hears of all its tasks' final records
        (None: nowhere but ``channel_for``)."""
        return None

    # -- template methods ----------------------------------------------------------
    def key_write(self, task_id: str, record: ResultRecord) -> KeyWrite:
        """The write that stores ``record`` (applied by us or by a co-located broker)."""
        value = encode_record(record)
        return KeyWrite(
            key=self.key_for(task_id),
            value=value if self.signer is None else sign_record(value, task_id, self.signer),
            ttl_ms=int(self.ttl * 1000),
            channel=self.channel_for(task_id) if record.ready else None,
            final=record.ready,
            reply=self.reply_for(task_id) if record.ready else None,
        )

    def success_write(self, task_id: str, value: Any, attempt: int, task: str | None
                      ) -> KeyWrite:
        """``key_write`` of a SUCCESS record (the common case, built directly)."""
        raw = encode_success(value, attempt, task, time.time())
        if self.signer is not None:
            raw = sign_record(raw, task_id, self.signer)
        return KeyWrite(self.key_for(task_id), raw, int(self.ttl * 1000),
                        self.channel_for(task_id), True, self.reply_for(task_id))

    async def store(self, task_id: str, record: ResultRecord) -> None:
        await self._put([self.key_write(task_id, record)])

    async def store_writes(self, writes: Sequence[KeyWrite]) -> None:
        if writes:
            await self._put(writes)

    async def get(self, task_id: str) -> ResultRecord | None:
        raw = await self._load(task_id)
        return None if raw is None else self.decode(task_id, raw)

    async def wait(self, task_id: str, timeout: float | None = None, *,
                   since: int | None = None) -> ResultRecord:
        """The final record, raising :class:`ResultTimeout` after ``timeout`` seconds
        (``since``: the ``generation`` a handle of ``enqueue`` was stamped with)."""
        return self.decode(task_id, await self.wait_raw(task_id, timeout, since))

    def wait_raw(self, task_id: str, timeout: float | None, since: int | None
                 ) -> Awaitable[bytes]:
        """:meth:`wait`'s bytes, not decoded nor checked (:meth:`decode` does that). With
        no timeout, the backend's own wait itself: no coroutine of ours around it."""
        if timeout is None:
            return self._waiting(task_id, since)
        return self._within(task_id, timeout, since)

    async def _within(self, task_id: str, timeout: float, since: int | None) -> bytes:
        waiting = self._waiting(task_id, since)
        return await awaiting(self.timed(waiting, task_id, timeout, asyncio.get_running_loop()))

    def timed(self, waiting: Awaitable[bytes], task_id: str, timeout: float,
              loop: asyncio.AbstractEventLoop) -> Generator[Any, None, bytes]:
        """``waiting`` (a wait of ``task_id``'s, on the running ``loop``) within ``timeout``
        seconds, else :class:`ResultTimeout`; steps for ``yield from`` in the waiting task.
        (Not ``asyncio.timeout``: a timer per wait churned the loop's heap, see
        :mod:`._deadlines`.)"""
        deadlines = self._deadlines
        if deadlines is None:
            deadlines = self._deadlines = Deadlines()
        try:
            return (yield from deadlines.waiting(waiting, timeout, loop))
        except TimeoutError:
            raise ResultTimeout(f"no result for task {task_id} within {timeout} s") from None

    def decode(self, task_id: str, raw: bytes) -> ResultRecord:
        """A stored record of ``task_id``; with signing on, only a genuine signed one
        (else :class:`~asyncq.errors.SignatureError`, a DecodeError)."""
        if self.signer is not None:
            raw = open_record(raw, task_id, self.signer)
        return decode_record(raw, max_size=self.max_size)

    async def forget(self, task_id: str) -> None:
        await self._delete(task_id)


_REGISTRY: Registry[ResultBackend] = Registry("result backend", "asyncq.backends")


def register_backend(schemes: Iterable[str], path: str, *, extra: str | None = None) -> None:
    """Register a result backend class (``"module:Class"``) for URL ``schemes``;
    ``extra`` names the pip extra that installs its client. Packages outside asyncq
    can instead declare an entry point in the ``asyncq.backends`` group."""
    _REGISTRY.register(schemes, path, extra=extra)


def backend_class(url: str) -> type[ResultBackend]:
    """The registered backend class for ``url``'s scheme (ConfigurationError if none)."""
    return _REGISTRY.lookup(url)


register_backend(["memory"], "asyncq.results.memory:MemoryResultBackend")
register_backend(["redis", "rediss", "unix", "redis+sentinel"],
                 "asyncq.results.redis:RedisResultBackend", extra="redis")
register_backend(["redis+cluster", "rediss+cluster"],
                 "asyncq.results.redis_cluster:RedisClusterResultBackend", extra="redis")
register_backend(["rpc", "amqp", "amqps"], "asyncq.results.rpc:RpcResultBackend", extra="amqp")
