"""Closing an AMQP consumer while RabbitMQ is still sending it prefetched deliveries:
the ones that arrive while it closes are handed back (copy, then ack) before its
channel closes. An ack after the channel's Channel.Close made RabbitMQ drop the whole
connection (CHANNEL_ERROR - expected 'channel.open'), and the copies' originals came
back too (duplicates); fixed in 026bcd4, this test failed 3 of 3 runs before it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

import asyncq
from asyncq.brokers import Settlement
from asyncq.brokers.amqp import AmqpBroker

pytestmark = pytest.mark.amqp


@pytest.fixture
async def app(amqp_url: str) -> AsyncIterator[asyncq.App]:
    app = asyncq.App(f"closeheld{uuid.uuid4().hex[:6]}", broker=amqp_url, backend="memory://",
                     default_queue=f"closeheld-{uuid.uuid4().hex[:8]}")
    yield app
    async with app:
        await app.broker.delete_queue(app.default_queue)


async def test_closing_while_deliveries_arrive_keeps_the_connection_and_every_message(
        app: asyncq.App) -> None:
    @app.task
    async def noop(i: int) -> int:
        return i

    async with app:
        broker = app.broker
        assert isinstance(broker, AmqpBroker)
        await app.enqueue_many([noop.s(i) for i in range(300)])
        connection = broker.conn.connection().transport.connection
        consumer = broker.consumer([app.default_queue], prefetch=100, lease=30)
        got = await consumer.fetch(100, 5.0)
        assert got
        await consumer.ack([Settlement(d) for d in got])  # RabbitMQ sends more meanwhile
        await consumer.close()
        await asyncio.sleep(0.3)  # a CHANNEL_ERROR closes the connection by then
        assert not connection.is_closed
        assert broker.conn.connection().transport.connection is connection
        assert await broker.queue_size(app.default_queue) == 300 - len(got)
