"""The RabbitMQ revoke bus: one stream queue per app, read by every worker.

A stream queue is an append-only log that consumers read without removing anything,
each from an offset of its own: a worker starts reading at the start of the window
(``x-stream-offset`` = a timestamp) and then follows new entries, so one queue both
keeps the window (``x-max-age``) and broadcasts. Needs RabbitMQ 3.9 or newer. To know
when it has read the window, a worker appends a marker of its own and waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from aiormq import spec

from asyncq.control import OnRevoke, Revocation, RevokeBus
from asyncq.errors import DecodeError

__all__ = ["AmqpRevokeBus", "revoked_queue"]

logger = logging.getLogger("asyncq.control")

_MARKER = b"asyncq-sync:"


def revoked_queue(app_name: str) -> str:
    return f"asyncq.control.{app_name}.revoked"


class AmqpRevokeBus(RevokeBus):
    def __init__(self, broker: Any, app_name: str, window: float, max_entries: int) -> None:
        super().__init__(broker, app_name, window, max_entries)
        self._broker = broker
        self._queue = revoked_queue(app_name)
        self._declared = False

    def _arguments(self) -> dict[str, Any]:
        return {"x-queue-type": "stream", "x-max-age": f"{max(1, int(self.window))}s",
                "x-stream-max-segment-size-bytes": 1_000_000,
                "x-max-length-bytes": max(10_000_000, self.max_entries * 200)}

    async def _send(self, body: bytes) -> None:
        await self._broker.connect()
        with self._broker.conn.errors("revoke"):
            if not self._declared:
                async with self._broker.raw_channel() as channel:
                    await channel.queue_declare(self._queue, durable=True,
                                                arguments=self._arguments())
                self._declared = True
            await self._broker.send("", self._queue, body,
                                    spec.Basic.Properties(delivery_mode=2))

    async def publish(self, revocation: Revocation) -> None:
        await self._send(revocation.encode())

    async def clear(self) -> None:
        await self._broker.connect()
        with self._broker.conn.errors("delete the revoke stream"):
            async with self._broker.raw_channel() as channel:
                await channel.queue_delete(self._queue)
        self._declared = False

    async def listen(self, on_revoke: OnRevoke, ready: asyncio.Event) -> None:
        await self._broker.connect()
        marker = _MARKER + os.urandom(8).hex().encode()

        async def deliver(message: AbstractIncomingMessage) -> None:
            if message.body == marker:
                ready.set()
            elif not message.body.startswith(_MARKER):
                _deliver(on_revoke, message.body)
            await message.ack()

        channel = await self._broker.conn.connection().channel(publisher_confirms=False)
        try:
            await channel.set_qos(prefetch_count=1000)
            queue = await channel.declare_queue(self._queue, durable=True,
                                                arguments=self._arguments())
            since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=self.window)
            await queue.consume(deliver, arguments={"x-stream-offset": since})
            await self._send(marker)
            await asyncio.Event().wait()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(channel.close(), 5)


def _deliver(on_revoke: OnRevoke, data: bytes) -> None:
    try:
        revocation = Revocation.decode(data)
    except (DecodeError, TypeError, ValueError):
        logger.warning("ignored a malformed revocation from the server")
        return
    on_revoke(revocation)
