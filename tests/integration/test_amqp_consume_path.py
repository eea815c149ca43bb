"""Deliveries reach the AMQP consumer through aiormq's callback, as a light Received
(asyncq/brokers/amqp/_received.py); a consumer whose callback is aio-pika's again (as
after aio-pika restored it on a reconnect) swaps back at its first delivery."""

from __future__ import annotations

import asyncio
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


async def test_a_waiting_fetch_returns_when_a_delivery_comes_and_leaves_none_behind(
        app: asyncq.App) -> None:
    echo = app.task(_identity)
    async with app:
        consumer = await _consuming(app)
        waiting = asyncio.create_task(consumer.fetch(10, 60.0))
        await asyncio.sleep(0.05)
        await echo.enqueue(1)
        [first] = await asyncio.wait_for(waiting, 10)  # not after the 60 s
        await app.enqueue_many([echo.s(i) for i in range(2, 5)])
        rest = await _fetch(consumer, 3)
        assert sorted(app.codec.decode(d.body, d.queue).args[0] for d in rest) == [2, 3, 4]
        assert await consumer.fetch(10, 0.05) == []
        await consumer.ack([Settlement(d) for d in (first, *rest)])
        await consumer.close()
        assert await app.broker.queue_size(app.default_queue) == 0


async def test_two_fetches_waiting_at_once_each_return_when_deliveries_come(
        app: asyncq.App) -> None:
    echo = app.task(_identity)
    async with app:
        consumer = await _consuming(app)
        waiting = [asyncio.create_task(consumer.fetch(1, 60.0)) for _ in range(2)]
        await asyncio.sleep(0.05)
        await app.enqueue_many([echo.s(1), echo.s(2)])
        try:
            got = await asyncio.wait_for(asyncio.gather(*waiting), 10)  # not after 60 s
        finally:
            for task in waiting:
                task.cancel()
        deliveries = [d for batch in got for d in batch]
        assert sorted(app.codec.decode(d.body, d.queue).args[0] for d in deliveries) == [1, 2]
        await consumer.ack([Settlement(d) for d in deliveries])
        await consumer.close()


async def test_a_fetch_woken_by_a_delivery_another_fetch_took_waits_on(
        app: asyncq.App) -> None:
    """Both waiting fetches wake when one delivery arrives; the one that finds the inbox
    empty again waits out its own timeout, not returning empty (the delivery after it
    would wait for the next fetch)."""
    echo = app.task(_identity)
    async with app:
        consumer = await _consuming(app)
        waiting = [asyncio.create_task(consumer.fetch(1, 60.0)) for _ in range(2)]
        try:
            await asyncio.sleep(0.05)
            await echo.enqueue(1)
            await asyncio.wait(waiting, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            await asyncio.sleep(0.2)  # the other one was woken too
            done = [task for task in waiting if task.done()]
            assert len(done) == 1, [task.result() for task in done]
            [first] = done[0].result()
            await echo.enqueue(2)
            [other] = [task for task in waiting if task is not done[0]]
            [second] = await asyncio.wait_for(other, 10)
        finally:
            for task in waiting:
                task.cancel()
        values = [app.codec.decode(d.body, d.queue).args[0] for d in (first, second)]
        assert values == [1, 2]
        await consumer.ack([Settlement(first), Settlement(second)])
        await consumer.close()


async def test_fetches_that_time_out_leave_no_waiter_behind(app: asyncq.App) -> None:
    """An idle worker's fetch times out again and again: each wait is gone after it."""
    async with app:
        consumer = await _consuming(app)
        for _ in range(5):
            assert await consumer.fetch(1, 0.01) == []
        assert consumer._arrivals == []  # type: ignore[attr-defined]
        assert consumer._waiting == set()  # type: ignore[attr-defined]
        await consumer.close()


async def _consuming(app: asyncq.App) -> Consumer:
    """A consumer of the app's default queue that has started consuming."""
    consumer = app.broker.consumer([app.default_queue], prefetch=10, lease=30)
    assert await consumer.fetch(10, 0.01) == []
    return consumer


async def _identity(x: int) -> int:
    return x


def _slow_of(consumer: Consumer, tag: str) -> object:
    """The aio-pika callback the consumer registered for ``tag`` (aio-pika keeps it to
    consume again after a reconnect)."""
    for queue in consumer._declared.values():  # type: ignore[attr-defined]
        kwargs = queue._consumers.get(tag)
        if kwargs is not None:
            return kwargs["callback"]
    raise AssertionError("aio-pika does not know the consumer")


async def test_the_installed_aiormq_and_aio_pika_still_have_what_the_frame_reader_uses(
) -> None:
    """asyncq's connections read frames with their own reader (``_reader.py``), handed
    over at aiormq's private connection loop, and are built by a reimplementation of
    aio-pika's private connection attempt (``_hosts.NodeRing._attempt``). An upgrade that
    moves either must fail here, not hang or slow down in production."""
    import inspect

    import aio_pika.connection
    import aiormq.channel
    import aiormq.connection

    from asyncq.brokers.amqp import _hosts, _reader

    connect = inspect.getsource(aiormq.connection.Connection.connect)
    assert "frame_receiver = FrameReceiver(reader)" in connect
    assert "self.__reader(frame_receiver)" in connect
    assert callable(getattr(aiormq.connection.Connection, _reader.READER, None))
    loop = inspect.getsource(getattr(aiormq.connection.Connection, _reader.READER))
    assert "async for weight, channel, frame in frame_receiver" in loop
    assert "await ch.frames.put((weight, frame))" in loop  # a channel's queue of frames
    # the stuck-connection check, told of a large delivery's progress (_reader.LAST_FRAME)
    assert "self.__last_frame_time = self.loop.time()" in loop
    assert _reader.LAST_FRAME.endswith("__last_frame_time")
    stuck = aiormq.connection.Connection.is_connection_was_stuck
    assert "self.__last_frame_time" in inspect.getsource(stuck.fget)
    receiver = aiormq.connection.FrameReceiver(asyncio.StreamReader())
    assert receiver.reader is not None
    channel = inspect.getsource(aiormq.channel.Channel.__init__)
    assert "self.consumers: dict[str, ConsumerCallback] = {}" in channel
    assert "self.frames: asyncio.Queue" in channel
    deliver = inspect.getsource(aiormq.channel.Channel._on_deliver_frame)
    assert "self.consumers.get(frame.consumer_tag)" in deliver
    # publisher confirms, settled by _reader._confirm / _settle as aiormq settles them
    confirm = inspect.getsource(aiormq.channel.Channel._on_confirm_frame)
    assert "if frame.delivery_tag not in self.confirmations:" in confirm
    assert "if frame.delivery_tag >= delivery_tag:" in confirm
    settle = inspect.getsource(aiormq.channel.Channel._confirm_delivery)
    for line in ("confirmation = self.confirmations.pop(delivery_tag)",
                 "if isinstance(confirmation, Returning):",
                 "confirmation.set_result(frame)",
                 "DeliveryError(None, frame)"):
        assert line in settle
    returning = inspect.getsource(aiormq.channel.Channel._on_return_frame)
    assert "self.confirmations[delivery_tag] = Returning()" in returning
    attempt = inspect.getsource(getattr(aio_pika.RobustConnection, _hosts.ATTEMPT))
    assert "await Connection.connect(self, self.__connect_timeout)" in attempt
    assert "self.__fail_fast_future.set_result(None)" in attempt
    assert _hosts.TIMEOUT.endswith("__connect_timeout")
    assert _hosts.FIRST_ATTEMPT.endswith("__fail_fast_future")
    pika_connect = inspect.getsource(aio_pika.connection.Connection.connect)
    assert "self.transport = await UnderlayConnection.connect(" in pika_connect
    assert "await self._on_connected()" in pika_connect
    # the publisher's early writes (_frames.write_now): aiormq's writer loop keeps the
    # stream and writes a frame in the step it takes it off the write queue
    assert "self._writer_task = self.create_task(self.__writer(writer))" in connect
    pins = {
        getattr(aiormq.connection.Connection, _reader.WRITER): (
            "frame_iterator = FrameGenerator(self.write_queue)",
            "async for channel_frame in frame_iterator:",
            "writer.write(channel_frame.payload)"),
        aiormq.connection.FrameGenerator.__anext__: (
            "frame: ChannelFrame = await self.queue.get()",),
        aiormq.channel.Channel.__init__: (  # _frames._PRIVATE_LOCK, _frames._CLOSE_EVENT
            "self.__lock = asyncio.Lock()",
            "self.__close_event: asyncio.Event = asyncio.Event()"),
    }
    for function, lines in pins.items():
        source = inspect.getsource(function)
        assert all(line in source for line in lines), (function, lines)


async def test_only_asyncqs_connections_read_with_asyncqs_reader(
        app: asyncq.App, amqp_url: str) -> None:
    """An application's own aio-pika connection keeps aiormq's connection class (and
    aio-pika's message objects); the broker's connection is asyncq's."""
    import aio_pika
    import aiormq.connection

    from asyncq.brokers.amqp._reader import AsyncqConnection

    async with app:
        broker = app.broker
        assert isinstance(broker, AmqpBroker)
        transport = broker.conn.connection().transport
        assert transport is not None
        assert type(transport.connection) is AsyncqConnection
        own = await aio_pika.connect_robust(amqp_url)
        try:
            assert own.transport is not None
            assert type(own.transport.connection) is aiormq.connection.Connection
            channel = await own.channel()
            queue = await channel.declare_queue(exclusive=True)
            await channel.default_exchange.publish(aio_pika.Message(b"hi"), queue.name)
            message = await queue.get(timeout=5)
            assert isinstance(message, aio_pika.IncomingMessage)
            assert message.body == b"hi"
            await message.ack()
        finally:
            await own.close()
