"""Deliveries reach the AMQP consumer through aiormq's callback, as a light Received
(asyncq/brokers/amqp/_received.py); a consumer whose callback is aio-pika's again (as
after aio-pika restored it on a reconnect) swaps back at its first delivery."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator

import aio_pika.queue
import pytest

import asyncq
from asyncq.brokers import Consumer, Delivery, Settlement
from asyncq.brokers.amqp import AmqpBroker
from asyncq.brokers.amqp._received import Received


@pytest.fixture
async def app(amqp_url: str, redis_url: str) -> AsyncIterator[asyncq.App]:
    queue = f"path-{uuid.uuid4().hex[:8]}"
    app = asyncq.App(f"path{uuid.uuid4().hex[:6]}", broker=amqp_url, backend=redis_url,
                     default_queue=queue)
    yield app
    async with app:
        await app.broker.delete_queue(queue)


async def _fetch(consumer: Consumer, n: int) -> list[Delivery]:
    got: list[Delivery] = []
    for _ in range(50):
        got += await consumer.fetch(n - len(got), 0.2)
        if len(got) == n:
            return got
    raise AssertionError(f"{len(got)} of {n} deliveries came")


async def test_deliveries_come_as_received_and_the_fast_callback_comes_back(
        app: asyncq.App) -> None:
    @app.task
    async def echo(x: int) -> int:
        return x

    async with app:
        broker = app.broker
        assert isinstance(broker, AmqpBroker)
        consumer = broker.consumer([app.default_queue], prefetch=10, lease=30)
        await consumer.fetch(1, 0.01)  # starts consuming
        await echo.enqueue(1)
        [first] = await _fetch(consumer, 1)
        message = first.tag.message
        assert isinstance(message, Received)
        assert message.correlation_id
        assert message.message_id
        assert message.body
        assert message.headers == {}
        assert not message.redelivered
        raw = message.channel
        [(tag, fast)] = raw.consumers.items()
        # what aio-pika's restore registers: its own wrapper around the slow callback
        wrapper = functools.partial(aio_pika.queue.consumer, _slow_of(consumer, tag),
                                    no_ack=False)

        async def aio_pikas(delivered: object) -> None:
            await wrapper(delivered)

        raw.consumers[tag] = aio_pikas
        await echo.enqueue(2)
        [second] = await _fetch(consumer, 1)
        assert not isinstance(second.tag.message, Received)  # aio-pika's IncomingMessage
        assert raw.consumers[tag] is fast  # swapped back by that delivery
        await echo.enqueue(3)
        [third] = await _fetch(consumer, 1)
        assert isinstance(third.tag.message, Received)
        await consumer.ack([Settlement(d) for d in (first, second, third)])
        await consumer.close()
        assert await broker.queue_size(app.default_queue) == 0


def _slow_of(consumer: Consumer, tag: str) -> object:
    """The aio-pika callback the consumer registered for ``tag`` (aio-pika keeps it to
    consume again after a reconnect)."""
    for queue in consumer._declared.values():  # type: ignore[attr-defined]
        kwargs = queue._consumers.get(tag)
        if kwargs is not None:
            return kwargs["callback"]
    raise AssertionError("aio-pika does not know the consumer")
