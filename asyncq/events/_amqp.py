"""The RabbitMQ bus: a fanout exchange of events, a direct exchange of topics.

Each listener of events declares its own exclusive, auto-delete queue, bounded with
``x-max-length``, ``x-max-length-bytes`` and ``x-overflow: drop-head`` (a slow listener
loses the oldest events, never blocks a worker). Events are sent in batches of at most
:data:`~asyncq.events.ROWS_PER_ENTRY` events, one msgpack array per message, so
the queue's bound counts about that many events per message and at most
:data:`LISTENER_BYTES` in all (a whole flush of 10,000 rows per message let one listener
hold gigabytes). RabbitMQ keeps no history and no worker registry: :meth:`AmqpBus.recent`
returns ``[]`` and :meth:`AmqpBus.workers` ``None``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage

from asyncq.events import MAX_EVENTS, Event, chunks, pack_events, unpack_events

#: Bytes one listener's queue holds at most (the oldest messages go first).
LISTENER_BYTES: Final = 16 * 2**20
#: Arguments of a listener's queue: at most this many messages and bytes, oldest dropped.
LISTENER_QUEUE: Final[dict[str, Any]] = {"x-max-length": MAX_EVENTS,
                                         "x-max-length-bytes": LISTENER_BYTES,
                                         "x-overflow": "drop-head"}

if TYPE_CHECKING:
    from asyncq.brokers.amqp import AmqpBroker

__all__ = ["AmqpBus"]


class _Subscription:
    def __init__(self, channel: AbstractChannel) -> None:
        self._channel = channel
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=MAX_EVENTS)

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(message.body)

    async def get(self, timeout: float) -> bytes | None:
        try:
            async with asyncio.timeout(timeout):
                return await self.queue.get()
        except TimeoutError:
            return None

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self._channel.close()


class AmqpBus:
    """Uses the broker's connection (``AmqpBroker.conn.connection()``)."""

    def __init__(self, broker: AmqpBroker, app: str) -> None:
        self._broker = broker
        self._events_name = f"asyncq.events.{app}"
        self._bus_name = f"asyncq.bus.{app}"
        self._channel: AbstractChannel | None = None
        self._declared: tuple[AbstractExchange, AbstractExchange] | None = None
        self._lock = asyncio.Lock()

    async def _exchanges(self, channel: AbstractChannel
                         ) -> tuple[AbstractExchange, AbstractExchange]:
        events = await channel.declare_exchange(self._events_name, aio_pika.ExchangeType.FANOUT)
        bus = await channel.declare_exchange(self._bus_name, aio_pika.ExchangeType.DIRECT)
        return events, bus

    async def _open(self) -> tuple[AbstractExchange, AbstractExchange]:
        """The publishing channel's exchanges, declared once per channel."""
        async with self._lock:
            if self._channel is None or self._channel.is_closed or self._declared is None:
                await self._broker.connect()
                self._channel = await self._broker.conn.connection().channel()
                self._declared = await self._exchanges(self._channel)
            return self._declared

    async def emit(self, events: Sequence[Event]) -> None:
        if events:
            exchange, _ = await self._open()
            for chunk in chunks(events):
                await exchange.publish(aio_pika.Message(pack_events(chunk)), routing_key="")

    async def follow(self, history: int = 0) -> AsyncIterator[dict[str, Any]]:
        await self._broker.connect()
        channel = await self._broker.conn.connection().channel()
        try:
            events, _ = await self._exchanges(channel)
            queue = await channel.declare_queue(
                exclusive=True, auto_delete=True,
                arguments=LISTENER_QUEUE)
            await queue.bind(events)
            async with queue.iterator(no_ack=True) as messages:
                async for message in messages:
                    for event in unpack_events(message.body):
                        yield event
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    async def recent(self, count: int) -> list[dict[str, Any]]:
        return []

    async def broadcast(self, topic: str, body: bytes) -> None:
        _, exchange = await self._open()
        await exchange.publish(aio_pika.Message(body), routing_key=topic)

    async def subscribe(self, topic: str) -> _Subscription:
        await self._broker.connect()
        channel = await self._broker.conn.connection().channel()
        subscription = _Subscription(channel)
        try:
            _, bus = await self._exchanges(channel)
            queue = await channel.declare_queue(
                exclusive=True, auto_delete=True,
                arguments=LISTENER_QUEUE)
            await queue.bind(bus, routing_key=topic)
            await queue.consume(subscription.on_message, no_ack=True)
        except BaseException:
            await subscription.aclose()
            raise
        return subscription

    async def put_worker(self, name: str, info: Mapping[str, Any]) -> None:
        return None

    async def drop_worker(self, name: str) -> None:
        return None

    async def workers(self) -> list[dict[str, Any]] | None:
        return None

    async def aclose(self) -> None:
        channel, self._channel, self._declared = self._channel, None, None
        if channel is not None:
            with contextlib.suppress(Exception):
                await channel.close()
