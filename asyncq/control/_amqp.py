"""The RabbitMQ revoke bus: a fanout exchange tells workers at once; a stream keeps the
window.

- Live: every worker binds an exclusive, auto-deleted queue of its own to the fanout
  exchange ``asyncq.control.<app>`` (transient and auto-deleted: it disappears with the
  last worker), so a revocation reaches all of them at once.
- Kept: the first revocation of an app declares a stream queue
  ``asyncq.control.<app>.revoked`` (``x-max-age`` = the window; RabbitMQ 3.9 or newer)
  bound to that exchange. A stream is an append-only log that consumers read without
  removing anything, each from an offset of its own: a starting worker reads it from the
  start of the window (``x-stream-offset`` = a timestamp), up to a marker it appends
  itself, and stops there; it reads it again after a reconnect, for what it missed. An
  app that never revokes has no stream, so workers leave nothing behind on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
from typing import Any

from aio_pika import ExchangeType
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from aiormq import spec
from aiormq.exceptions import ChannelNotFoundEntity

from asyncq.control import OnRevoke, Revocation, RevokeBus, deliver_revocation, until_either

__all__ = ["AmqpRevokeBus", "revoke_exchange", "revoked_queue"]

logger = logging.getLogger("asyncq.control")

_MARKER = b"asyncq-sync:"
#: How long reading the kept window may take before a worker goes on without it.
HISTORY_TIMEOUT = 10.0


def revoke_exchange(app_name: str) -> str:
    return f"asyncq.control.{app_name}"


def revoked_queue(app_name: str) -> str:
    return f"asyncq.control.{app_name}.revoked"


class AmqpRevokeBus(RevokeBus):
    def __init__(self, broker: Any, app_name: str, window: float, max_entries: int) -> None:
        super().__init__(broker, app_name, window, max_entries)
        self._exchange = revoke_exchange(app_name)
        self._queue = revoked_queue(app_name)

    def _arguments(self) -> dict[str, Any]:
        return {"x-queue-type": "stream", "x-max-age": f"{max(1, int(self.window))}s",
                "x-stream-max-segment-size-bytes": 1_000_000,
                "x-max-length-bytes": max(10_000_000, self.max_entries * 200)}

    async def publish(self, revocation: Revocation) -> None:
        await self.broker.connect()
        with self.broker.conn.errors("revoke"):
            async with self.broker.raw_channel() as channel:  # again each time: revokes
                await channel.exchange_declare(  # are rare, and the exchange comes and goes
                    self._exchange, exchange_type="fanout", durable=False, auto_delete=True)
                await channel.queue_declare(self._queue, durable=True,
                                            arguments=self._arguments())
                await channel.queue_bind(self._queue, self._exchange, routing_key="")
            await self.broker.send(self._exchange, "", revocation.encode(),
                                   spec.Basic.Properties(delivery_mode=2))

    async def clear(self) -> None:
        await self.broker.connect()
        with self.broker.conn.errors("delete the revoke stream"):
            async with self.broker.raw_channel() as channel:
                await channel.queue_delete(self._queue)

    async def listen(self, on_revoke: OnRevoke, ready: asyncio.Event,
                     stop: asyncio.Event) -> None:
        await self.broker.connect()
        conn: AbstractRobustConnection = self.broker.conn.connection()
        missed = asyncio.Event()

        def on_reconnect(*_: object) -> None:
            missed.set()

        conn.reconnect_callbacks.add(on_reconnect)
        channel = await conn.channel(publisher_confirms=False)
        try:
            await self._follow(channel, on_revoke)
            await self._read_window(conn, on_revoke)
            ready.set()
            while True:
                await until_either(missed, stop)
                if stop.is_set():
                    return
                missed.clear()
                await self._read_window(conn, on_revoke)
        finally:
            with contextlib.suppress(Exception):
                conn.reconnect_callbacks.discard(on_reconnect)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(channel.close(), 5)

    async def _follow(self, channel: Any, on_revoke: OnRevoke) -> None:
        """Bind a queue of this worker's own to the exchange and consume it."""
        exchange = await channel.declare_exchange(self._exchange, ExchangeType.FANOUT,
                                                  durable=False, auto_delete=True)
        name = (f"{self._exchange}.{socket.gethostname()}.{os.getpid()}."
                f"{os.urandom(4).hex()}")
        queue = await channel.declare_queue(name, exclusive=True, auto_delete=True,
                                            arguments={"x-max-length": self.max_entries})
        await queue.bind(exchange)

        async def deliver(message: AbstractIncomingMessage) -> None:
            deliver_revocation(on_revoke, message.body)

        await queue.consume(deliver, no_ack=True)

    async def _read_window(self, conn: AbstractRobustConnection, on_revoke: OnRevoke) -> None:
        """Deliver the stream's revocations of the window, if the app has a stream."""
        try:
            async with self.broker.raw_channel() as probe:
                await probe.queue_declare(self._queue, passive=True)
        except ChannelNotFoundEntity:
            return  # nothing was ever revoked (or the stream was deleted)
        marker = _MARKER + os.urandom(8).hex().encode()
        done = asyncio.Event()

        async def deliver(message: AbstractIncomingMessage) -> None:
            if message.body == marker:
                done.set()
            elif not message.body.startswith(_MARKER):
                deliver_revocation(on_revoke, message.body)
            await message.ack()

        channel = await conn.channel(publisher_confirms=False)
        try:
            await channel.set_qos(prefetch_count=1000)
            stream = await channel.get_queue(self._queue, ensure=False)
            since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=self.window)
            await stream.consume(deliver, arguments={"x-stream-offset": since})
            await self.broker.send("", self._queue, marker, spec.Basic.Properties())
            try:
                await asyncio.wait_for(done.wait(), HISTORY_TIMEOUT)
            except TimeoutError:
                logger.warning("revocations of the last %gs not read within %gs; going on",
                               self.window, HISTORY_TIMEOUT)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(channel.close(), 5)

