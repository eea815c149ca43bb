"""RPC-style result backend (``rpc://``): results travel back to the process that sent
the task, over the broker itself (RabbitMQ's ``reply_to``), with no result store.

It works with any broker that offers :class:`~asyncq.records.ReplyTransport` (the AMQP
broker does), and talks to it only through that protocol. The producer opens a reply
address (on RabbitMQ an exclusive queue ``asyncq.reply.<host>.<pid>.<random>``); the
broker stamps it on every task it publishes (AMQP ``reply_to``, with ``correlation_id``
= the task id, so nothing is added to the envelope) and tells this backend each task id
it sent. A worker asks its broker where a held delivery's records go and sends them
there (confirmed) before it acks. Retries keep the original ``reply_to``, and so do dead
letters put back with ``requeue_dead``.

Limits, by design:

- Results live in the sending process's memory, for ``ttl`` seconds and at most
  ``max_results`` records (the oldest go first); nothing survives that process.
- A handle rebuilt from an id alone (``app.result(task_id)``) in a process that did not
  send the task cannot receive its result: awaiting it raises
  :class:`~asyncq.errors.ResultUnavailable`, and ``state()`` says PENDING. Use a Redis
  result backend (``App(broker="amqp://...", backend="redis://...")``) for that.
- If the producer is gone, its reply queue is gone with it and the result is dropped
  (logged once per reply queue). If its connection drops and comes back, results sent
  in between are lost: a waiter then ends with its timeout.
- A redelivered message cannot find an earlier delivery's result from the worker, so it
  runs again (at-least-once); the producer keeps the first final record it receives.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from asyncq._record_signing import open_record
from asyncq.codec import DEFAULT_MAX_SIZE
from asyncq.errors import ConfigurationError, DecodeError, ResultUnavailable
from asyncq.records import KeyWrite, ReplyTransport, is_final, may_replace
from asyncq.results import DEFAULT_RESULT_TTL, ResultBackend

__all__ = ["RpcResultBackend"]

logger = logging.getLogger("asyncq.results.rpc")

#: A record's tag byte and, when signed, its signature header (key id up to 255 bytes).
_SIGNED_EXTRA = 1 + 2 + 255 + 32
#: seconds between two sweeps of expired records (while under ``max_results``)
_SWEEP_EVERY = 1.0


@dataclass(slots=True)
class _Entry:
    raw: bytes | None = None
    expires: float = 0.0
    waiters: list[asyncio.Future[bytes]] = field(default_factory=list)


class RpcResultBackend(ResultBackend):
    """Results sent back to the producer's reply address; see the module docstring.

    Only records for task ids this process sent (and within ``max_size``) are kept:
    a forged or stray reply is dropped on arrival, so replies cannot grow memory past
    ``max_results`` records of at most ``max_size`` bytes.
    """

    def __init__(self, url: str, *, transport: ReplyTransport, ttl: float = DEFAULT_RESULT_TTL,
                 max_size: int = DEFAULT_MAX_SIZE, max_results: int = 100_000) -> None:
        super().__init__(url, ttl=ttl, max_size=max_size)
        self.transport = transport
        self.max_results = max_results
        self.address: str | None = None
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._gone: set[str] = set()
        self._next_sweep = 0.0
        self.dropped = 0

    @classmethod
    def create(cls, url: str, *, ttl: float, max_size: int,
               broker: object = None) -> ResultBackend:
        if not isinstance(broker, ReplyTransport):
            raise ConfigurationError(
                "RPC results travel back over the broker's own connection: use them with "
                "an amqp:// broker, or give the App a result store (e.g. backend='redis://')")
        return cls(url, transport=broker, ttl=ttl, max_size=max_size)

    def key_for(self, task_id: str) -> str:
        return task_id

    # -- lifecycle -------------------------------------------------------------------
    async def connect(self) -> None:
        if self.address is None:
            self.address = await self.transport.open_replies(self._on_reply, self._expect)

    async def close(self) -> None:
        self.address = None
        for entry in self._entries.values():
            for fut in entry.waiters:
                if not fut.done():
                    fut.set_exception(ResultUnavailable("the result backend was closed"))
        await self.transport.close_replies()

    # -- the producer side -------------------------------------------------------------
    def _expect(self, task_id: str) -> None:
        """A task was sent with our reply address: its records will come here."""
        if task_id not in self._entries:
            self._entries[task_id] = _Entry(expires=time.monotonic() + self.ttl)
            self._sweep()

    def _on_reply(self, task_id: str, raw: bytes) -> None:
        if len(raw) > self.max_size + _SIGNED_EXTRA or task_id not in self._entries:
            self.dropped += 1  # over-size, or for no task this process sent: not kept
            return
        if self.signer is not None:
            try:
                open_record(raw, task_id, self.signer)
            except DecodeError:
                self.dropped += 1  # forged: it must not take the genuine record's place
                return
        self._record(task_id, raw)

    def _record(self, task_id: str, raw: bytes) -> None:
        entry = self._entries.get(task_id)
        if entry is None:
            entry = self._entries[task_id] = _Entry()
        elif not may_replace(entry.raw, final=is_final(raw)):
            return
        entry.raw = raw
        entry.expires = time.monotonic() + self.ttl
        self._entries.move_to_end(task_id)
        if is_final(raw):
            for fut in entry.waiters:
                if not fut.done():
                    fut.set_result(raw)
        self._sweep()

    def _sweep(self) -> None:
        """Drop expired records, and the oldest beyond ``max_results`` (never waited ones).

        At most every ``_SWEEP_EVERY`` seconds while under ``max_results``: a sweep per
        task sent or received was a tenth of a producer's CPU.
        """
        now = time.monotonic()
        if now < self._next_sweep and len(self._entries) <= self.max_results:
            return
        self._next_sweep = now + _SWEEP_EVERY
        for _ in range(len(self._entries)):
            task_id, entry = next(iter(self._entries.items()))
            if entry.expires > now and len(self._entries) <= self.max_results:
                return
            if entry.waiters:
                self._entries.move_to_end(task_id)
            else:
                del self._entries[task_id]

    async def _load(self, task_id: str) -> bytes | None:
        entry = self._entries.get(task_id)
        if entry is None or (entry.expires < time.monotonic() and not entry.waiters):
            return None
        return entry.raw

    async def _wait(self, task_id: str) -> bytes:
        entry = self._entries.get(task_id)
        if entry is None:
            raise ResultUnavailable(
                f"the result of task {task_id} cannot reach this process: RPC results "
                "reach only the process that sent the task, for "
                f"{self.ttl:g}s. To wait on a task by id elsewhere, use a Redis backend")
        if entry.raw is not None and is_final(entry.raw):
            return entry.raw
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        entry.waiters.append(fut)
        try:
            return await fut
        finally:
            entry.waiters.remove(fut)

    async def _delete(self, task_id: str) -> None:
        entry = self._entries.get(task_id)
        if entry is not None and not entry.waiters:
            del self._entries[task_id]
        elif entry is not None:
            entry.raw = None

    # -- the worker side -----------------------------------------------------------------
    async def _put(self, writes: Sequence[KeyWrite]) -> None:
        sends = []
        for write in writes:
            address = self.transport.reply_address(write.key)
            if address is not None:
                sends.append(self._send(address, write))
            elif write.key in self._entries:
                self._record(write.key, write.value)  # a task this process sent itself
            else:
                logger.debug("task %s came with no reply address; record dropped", write.key)
        results = await asyncio.gather(*sends, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _send(self, address: str, write: KeyWrite) -> None:
        if await self.transport.send_reply(address, write.key, write.value):
            return
        if address not in self._gone:
            if len(self._gone) > 1000:
                self._gone.clear()
            self._gone.add(address)
            logger.warning("the producer behind reply address %s is gone; results for "
                           "it are dropped", address)
