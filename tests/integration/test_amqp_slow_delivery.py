"""A delivery that takes longer to arrive than aiormq's stuck-connection grace
(3 x (heartbeat + 1) s) keeps its connection: asyncq's frame reader reads a delivery
whole before it hands aiormq a frame, so the bytes it reads on the way must count as
signs of life (aiormq's own reader, one frame at a time, saw a frame every frame_max
bytes). Before, the connection was dropped as stuck in the middle of the message, which
came back after the reconnect and was dropped again: it was never consumed."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

import asyncq
from asyncq.brokers import Settlement
from asyncq.brokers.amqp import AmqpBroker

pytestmark = pytest.mark.amqp

_RATE = 64 * 1024  # bytes per second from RabbitMQ to the client
_BODY = 640 * 1024  # about 10 s at _RATE; heartbeat=1 gives a grace of 6 s


class SlowProxy:
    """Forwards TCP to ``upstream``, the server's bytes at ``_RATE`` once ``slow``."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.slow = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers += [writer, up_writer]
        for src, dst, down in ((reader, up_writer, False), (up_reader, writer, True)):
            task = asyncio.create_task(self._pump(src, dst, down))
            self._tasks.add(task)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    down: bool) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await src.read(_RATE // 8 if down and self.slow else 65536):
                dst.write(data)
                await dst.drain()
                if down and self.slow:
                    await asyncio.sleep(len(data) / _RATE)
        dst.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.fixture
async def proxy(amqp_url: str) -> AsyncIterator[tuple[SlowProxy, str]]:
    parts = urlsplit(amqp_url)
    made = SlowProxy((parts.hostname or "127.0.0.1", parts.port or 5672))
    port = await made.start()
    userinfo = parts.netloc.rpartition("@")[0]
    yield made, parts._replace(netloc=f"{userinfo}@127.0.0.1:{port}", query="heartbeat=1").geturl()
    await made.stop()


async def test_a_delivery_slower_than_the_heartbeat_grace_keeps_its_connection(
        proxy: tuple[SlowProxy, str], amqp_url: str) -> None:
    slow, url = proxy
    queue = f"slow-{uuid.uuid4().hex[:8]}"
    app = asyncq.App(f"slow{uuid.uuid4().hex[:6]}", broker=url, backend="memory://",
                     default_queue=queue)
    producer = asyncq.App(app.name, broker=amqp_url, backend="memory://", default_queue=queue)

    @producer.task(name="blob")
    async def blob(data: str) -> int:
        return len(data)

    async with app, producer:
        broker = app.broker
        assert isinstance(broker, AmqpBroker)
        try:
            consumer = broker.consumer([queue], prefetch=1, lease=60)
            await consumer.start()
            connection = broker.conn.connection().transport.connection
            slow.slow = True
            await blob.enqueue("x" * _BODY)  # straight to RabbitMQ, not through the proxy
            got = await consumer.fetch(1, 40.0)
            slow.slow = False
            assert len(got) == 1
            assert not got[0].tag.message.redelivered  # the first delivery made it
            assert not connection.is_closed
            await consumer.ack([Settlement(got[0])])
            await consumer.close()
        finally:
            slow.slow = False
            await broker.delete_queue(queue)
