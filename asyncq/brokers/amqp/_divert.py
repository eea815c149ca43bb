"""What the RabbitMQ consumer does itself with some deliveries before the worker sees
them: an early delayed message goes back to its delay bucket, and (on a classic queue,
which counts no deliveries) a redelivered message is republished with its counter raised
and the original acked; a copy that comes before its original's ack waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from asyncq.brokers.amqp._connection import Connection
from asyncq.brokers.amqp._layout import (
    ETA_HEADER,
    REDELIVERIES_HEADER,
    Layout,
    copy_properties,
    header_count,
    header_int,
)
from asyncq.brokers.amqp._publisher import Publisher
from asyncq.brokers.amqp._received import Message

__all__ = ["Diverter"]

logger = logging.getLogger("asyncq.brokers.amqp")

#: the consumer's ack (or requeue) of messages, which never raises
Settle = Callable[..., Awaitable[int]]


class Diverter:
    """Early delayed messages and (classic-queue) redeliveries of one consumer."""

    def __init__(self, conn: Connection, layout: Layout, publisher: Publisher,
                 settle: Settle) -> None:
        self._conn = conn
        self._layout = layout
        self._publisher = publisher
        self._settle = settle
        #: message id -> set once the original of a republished copy is acked
        self._copies: dict[str, asyncio.Event] = {}

    def special(self, message: Message) -> bool:
        """A copy whose original is being settled, a (classic) redelivery or a delayed
        message: the consumer hands it to :meth:`diverted` in a task of its own."""
        if self._copies and (message.message_id or "") in self._copies:
            return True
        if message.redelivered and not self._layout.kind.quorum:
            return True
        headers = message.headers
        return bool(headers) and ETA_HEADER in headers

    async def diverted(self, queue: str, message: Message) -> bool:
        """Wait for the original of a copy to be settled; True if the message was sent
        back to wait or republished (``_divert``) and is not for the worker."""
        try:
            original_settled = self._copies.get(message.message_id or "")
            if original_settled is not None:
                await original_settled.wait()
            return await self._divert(queue, message)
        except Exception as exc:
            logger.warning("could not republish a redelivered message of %r (%s); "
                           "handing it over as is", queue, self._conn.describe(exc))
            return False

    async def _divert(self, queue: str, message: Message) -> bool:
        """Handle early and (classic-queue) redelivered messages; True if handled."""
        remaining = header_int(message.headers, ETA_HEADER) - int(time.time() * 1000)
        if remaining > 0:
            await self._redelay(queue, message, remaining)
            return True
        if message.redelivered and not self._layout.kind.quorum:
            await self._recount(queue, message)
            return True
        return False

    async def _recount(self, queue: str, message: Message) -> None:
        """Republish a redelivered message with its counter raised, then ack it.

        RabbitMQ may deliver the copy before the original's ack is on the wire; the copy
        waits for it (in :meth:`diverted`), so a task that kills its worker cannot leave
        both behind and keep the counter from growing.
        """
        count = header_count(message.headers, REDELIVERIES_HEADER) + 1
        properties = copy_properties(message, {REDELIVERIES_HEADER: count})
        key = properties.message_id or ""
        self._copies[key] = settled = asyncio.Event()
        try:
            await self._publisher.send("", queue, message.body, properties)
            await self._settle([message], ack=True)
        finally:
            settled.set()
            del self._copies[key]

    async def _redelay(self, queue: str, message: Message,
                       remaining: int) -> None:
        try:
            await self._publisher.redelay(queue, message.body, copy_properties(message, {}),
                                       remaining)
        except Exception as exc:
            logger.warning("could not send an early message of %r back to wait (%s); "
                           "returning it to the queue", queue, self._conn.describe(exc))
            await asyncio.sleep(min(remaining / 1000, 1.0))
            await self._settle([message], ack=False)
            return
        await self._settle([message], ack=True)
