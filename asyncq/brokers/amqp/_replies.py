"""Replies for the RPC result backend: this process's reply queue, the reply address
each held delivery came with, and sending records there (the AMQP broker's
:class:`~asyncq.records.ReplyTransport`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Final

from aio_pika.abc import AbstractRobustChannel
from aiormq import spec
from aiormq.abc import DeliveredMessage

from asyncq.brokers.amqp._connection import Connection, Returned
from asyncq.brokers.amqp._layout import new_properties

#: How a record is published: (exchange, routing key, body, properties), confirmed.
Send = Callable[[str, str, bytes, spec.Basic.Properties], Awaitable[None]]

__all__ = ["REPLY_PREFIX", "Replies", "ReplyRoutes"]

logger = logging.getLogger("asyncq.brokers.amqp")

#: Reply queues are named so; a worker sends results to no other queue.
REPLY_PREFIX: Final = "asyncq.reply."


class ReplyRoutes:
    """AMQP ``reply_to`` addresses (:class:`~asyncq.records.ReplyTransport`).

    ``own`` is this process's reply queue, opened by the RPC result backend, which is
    told of each task sent with it through ``sent``. ``lookup`` gives the reply address
    a held delivery came with, so a worker's results and retries go to the waiting
    producer.
    """

    def __init__(self) -> None:
        self.own: str | None = None
        self.sent: Callable[[str], None] | None = None
        self._held: dict[str, tuple[str, int]] = {}

    def hold(self, task_id: str, reply_to: str) -> None:
        _, count = self._held.get(task_id, (reply_to, 0))
        self._held[task_id] = (reply_to, count + 1)

    def release(self, task_id: str) -> None:
        entry = self._held.get(task_id)
        if entry is not None:
            if entry[1] <= 1:
                del self._held[task_id]
            else:
                self._held[task_id] = (entry[0], entry[1] - 1)

    def lookup(self, task_id: str) -> str | None:
        entry = self._held.get(task_id)
        return None if entry is None else entry[0]

    def reply_to_for(self, task_id: str) -> str | None:
        held = self.lookup(task_id)
        if held is not None:
            return held
        if self.own is not None and self.sent is not None:
            self.sent(task_id)
        return self.own


class Replies:
    """Opens this process's reply queue and sends records to others'."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.routes = ReplyRoutes()
        self.sender: Send | None = None
        self._channel: AbstractRobustChannel | None = None

    async def open(self, on_reply: Callable[[str, bytes], None],
                   on_sent: Callable[[str], None]) -> str:
        """Declare an exclusive reply queue and consume it; return its name."""
        conn = self._conn
        name = f"{REPLY_PREFIX}{socket.gethostname()}.{os.getpid()}.{os.urandom(4).hex()}"

        async def deliver(message: DeliveredMessage) -> None:
            task_id = message.header.properties.correlation_id
            if task_id:
                on_reply(task_id, message.body)

        async def consume(channel: AbstractRobustChannel) -> None:
            # aiormq's consumer, not aio-pika's: no IncomingMessage and no second task
            # per reply (a fifth of a producer's CPU while its results come in)
            raw = await channel.get_underlay_channel()
            await raw.basic_consume(name, deliver, no_ack=True)

        async def reconsume(channel: AbstractRobustChannel | None, /) -> None:
            # the channel came back (aio-pika declared the queue again): consume again
            if channel is None:
                return
            try:
                async with asyncio.timeout(conn.timeout):
                    await consume(channel)
            except Exception as exc:
                logger.warning("could not consume the reply queue again: %s",
                               conn.describe(exc))

        with conn.errors("open the reply queue"):
            async with asyncio.timeout(conn.timeout):
                channel = await conn.connection().channel(publisher_confirms=False)
            try:
                async with asyncio.timeout(conn.timeout):
                    await channel.declare_queue(name, exclusive=True, auto_delete=True)
                    await consume(channel)
                channel.reopen_callbacks.add(reconsume)
            except BaseException:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(channel.close(), conn.timeout)
                raise
        self._channel = channel
        self.routes.own, self.routes.sent = name, on_sent
        return name

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        self.routes.own = self.routes.sent = None
        if channel is not None:
            try:
                await asyncio.wait_for(channel.close(), self._conn.timeout)
            except Exception as exc:
                logger.debug("closing the reply channel: %s", self._conn.describe(exc))

    async def send(self, address: str, task_id: str, value: bytes) -> bool:
        """Send a record; False when the reply queue is gone (the producer exited)."""
        assert self.sender is not None
        if not address.startswith(REPLY_PREFIX):  # a forged reply_to: never publish there
            logger.warning("a message asked for its result to go to %r, which is not a "
                           "reply queue; the result is not sent", address[:100])
            return True
        properties = new_properties(headers={}, correlation_id=task_id, reply_to=None,
                                    persistent=False)
        try:
            with self._conn.errors("send a result"):
                await self.sender("", address, value, properties)
        except Returned:
            return False
        return True
