"""RPC-style result backend: results travel back over AMQP to the process that sent the task.

How it works. Each process declares one exclusive reply queue
(``asyncq.reply.<host>.<pid>.<random>``) on its AMQP broker's connection and consumes it.
The broker stamps every task it publishes with ``reply_to`` = that queue and
``correlation_id`` = the task id (AMQP's own RPC properties, so nothing is added to the
task's envelope). A worker's consumer remembers the ``reply_to`` of each delivery it holds
(``AmqpBroker.replies``); when the worker stores a record, this backend publishes it
there (confirmed) before the worker acks. Retries the worker publishes keep the original
``reply_to``, and so do dead letters put back with ``requeue_dead``.

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
import contextlib
import logging
import os
import socket
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel

from asyncq.brokers import Broker, KeyWrite
from asyncq.brokers._amqp_layout import new_properties
from asyncq.brokers.amqp import AmqpBroker, Returned
from asyncq.codec import DEFAULT_MAX_SIZE
from asyncq.errors import ConfigurationError, ResultUnavailable
from asyncq.results import DEFAULT_RESULT_TTL, ResultBackend, is_final_raw, is_settled_raw

__all__ = ["AmqpResultBackend"]

logger = logging.getLogger("asyncq.results.amqp")
logger.addHandler(logging.NullHandler())


@dataclass(slots=True)
class _Entry:
    raw: bytes | None = None
    expires: float = 0.0
    waiters: list[asyncio.Future[bytes]] = field(default_factory=list)


class AmqpResultBackend(ResultBackend):
    """Results sent back to the producer's reply queue; see the module docstring."""

    def __init__(self, url: str, *, ttl: float = DEFAULT_RESULT_TTL,
                 broker: Broker | None = None, max_size: int = DEFAULT_MAX_SIZE,
                 max_results: int = 100_000) -> None:
        super().__init__(url, ttl=ttl, max_size=max_size)
        if not isinstance(broker, AmqpBroker):
            raise ConfigurationError(
                "the AMQP result backend sends results back over the AMQP broker's "
                "connection: use it with an amqp:// broker, or give the App another "
                "backend (e.g. redis://)")
        self.broker = broker
        self.max_results = max_results
        self.reply_queue = (f"asyncq.reply.{socket.gethostname()}.{os.getpid()}."
                            f"{os.urandom(4).hex()}")
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._channel: AbstractRobustChannel | None = None
        self._gone: set[str] = set()

    def key_for(self, task_id: str) -> str:
        return task_id

    # -- lifecycle -------------------------------------------------------------------
    async def connect(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            return
        broker = self.broker
        await broker.connect()
        with broker.errors("open the reply queue"):
            async with asyncio.timeout(broker.timeout):
                channel = await broker.connection().channel(publisher_confirms=False)
            try:
                async with asyncio.timeout(broker.timeout):
                    queue = await channel.declare_queue(self.reply_queue, exclusive=True,
                                                        auto_delete=True)
                    await queue.consume(self._on_reply, no_ack=True)
            except BaseException:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(channel.close(), broker.timeout)
                raise
        self._channel = channel
        broker.replies.own = self.reply_queue
        broker.replies.sent = self._expect

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if self.broker.replies.own == self.reply_queue:
            self.broker.replies.own = None
            self.broker.replies.sent = None
        for entry in self._entries.values():
            for fut in entry.waiters:
                if not fut.done():
                    fut.set_exception(ResultUnavailable("the result backend was closed"))
        if channel is not None:
            try:
                await asyncio.wait_for(channel.close(), self.broker.timeout)
            except Exception as exc:
                logger.debug("closing the reply channel: %s", self.broker.describe(exc))

    # -- the producer side -------------------------------------------------------------
    def _expect(self, task_id: str) -> None:
        """A task was sent with our reply queue: its records will come here."""
        if task_id not in self._entries:
            self._entries[task_id] = _Entry(expires=time.monotonic() + self.ttl)
            self._sweep()

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        if message.correlation_id:
            self._record(message.correlation_id, message.body)

    def _record(self, task_id: str, raw: bytes) -> None:
        entry = self._entries.get(task_id)
        if entry is None:
            entry = self._entries[task_id] = _Entry()
        elif is_settled_raw(entry.raw):
            return  # the first final record wins (a rejection gives way)
        entry.raw = raw
        entry.expires = time.monotonic() + self.ttl
        self._entries.move_to_end(task_id)
        if is_final_raw(raw):
            for fut in entry.waiters:
                if not fut.done():
                    fut.set_result(raw)
        self._sweep()

    def _sweep(self) -> None:
        """Drop expired records, and the oldest beyond ``max_results`` (never waited ones)."""
        now = time.monotonic()
        for _ in range(len(self._entries)):
            task_id, entry = next(iter(self._entries.items()))
            if entry.expires > now and len(self._entries) <= self.max_results:
                return
            if entry.waiters:
                self._entries.move_to_end(task_id)
            else:
                del self._entries[task_id]

    async def _get(self, task_id: str) -> bytes | None:
        entry = self._entries.get(task_id)
        if entry is None or (entry.expires < time.monotonic() and not entry.waiters):
            return None
        return entry.raw

    async def _wait_raw(self, task_id: str) -> bytes:
        entry = self._entries.get(task_id)
        if entry is None:
            raise ResultUnavailable(
                f"the result of task {task_id} cannot reach this process: the AMQP result "
                "backend delivers a result only to the process that sent the task, for "
                f"{self.ttl:g}s. To wait on a task by id elsewhere, use a Redis backend")
        if entry.raw is not None and is_final_raw(entry.raw):
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
    async def _set_many(self, writes: Sequence[KeyWrite]) -> None:
        sends = []
        for write in writes:
            reply_to = self.broker.replies.lookup(write.key)
            if reply_to is not None:
                sends.append(self._send(reply_to, write))
            elif write.key in self._entries:
                self._record(write.key, write.value)  # a task this process sent itself
            else:
                logger.debug("task %s came with no reply address; record dropped", write.key)
        results = await asyncio.gather(*sends, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _send(self, reply_to: str, write: KeyWrite) -> None:
        properties = new_properties(headers={}, correlation_id=write.key, reply_to=None,
                                    persistent=False)
        try:
            with self.broker.errors("send a result"):
                await self.broker.send("", reply_to, write.value, properties)
        except Returned:
            if reply_to not in self._gone:
                if len(self._gone) > 1000:
                    self._gone.clear()
                self._gone.add(reply_to)
                logger.warning("the producer behind reply queue %s is gone; results for "
                               "it are dropped", reply_to)
