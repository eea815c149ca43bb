"""Several RabbitMQ nodes in one URL (``amqp://u:p@h1:p1,h2:p2/``): the client connects
to whichever node answers and moves to the next one when its node goes away.

The "nodes" are two TCP proxies in front of the test RabbitMQ, so that one can vanish
(listener and connections closed, as when a node dies) without touching the shared
server; a real cluster's node SIGKILL is the F9 fault run (tests/faults).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import pytest

import asyncq
from asyncq.brokers.amqp import _connection, _hosts
from asyncq.errors import ConfigurationError

pytestmark = pytest.mark.amqp


class Proxy:
    """Forwards loopback TCP connections to ``upstream``; :meth:`die` closes everything."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pumps: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers |= {writer, up_writer}
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            pump = asyncio.create_task(self._pump(src, dst))
            self._pumps.add(pump)
            pump.add_done_callback(self._pumps.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.close()

    async def die(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)


@pytest.fixture
async def proxies(amqp_url: str) -> AsyncIterator[list[Proxy]]:
    parts = urlsplit(amqp_url)
    made = [Proxy((parts.hostname or "127.0.0.1", parts.port or 5672)) for _ in range(2)]
    for proxy in made:
        await proxy.start()
    yield made
    for proxy in made:
        await proxy.die()


def nodes_url(amqp_url: str, ports: list[int]) -> str:
    parts = urlsplit(amqp_url)
    userinfo = parts.netloc.rpartition("@")[0]
    hosts = ",".join(f"127.0.0.1:{port}" for port in ports)
    return parts._replace(netloc=f"{userinfo}@{hosts}").geturl()


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once it is closed


def test_node_urls_split_the_host_list() -> None:
    assert _hosts.node_urls("amqp://u:p@a:1,b:2/vh?heartbeat=5") == [
        "amqp://u:p@a:1/vh?heartbeat=5",
        "amqp://u:p@b:2/vh?heartbeat=5",
    ]
    assert _hosts.node_urls("amqp://u:p@a:1/") == ["amqp://u:p@a:1/"]
    with pytest.raises(ConfigurationError, match="empty host"):
        _hosts.node_urls("amqp://u:p@a:1,,b:2/")
    # the hook the reconnect loop calls is aio-pika's private step: it must still exist
    assert callable(getattr(_hosts.aio_pika.RobustConnection, _hosts.ATTEMPT, None))


@pytest.mark.parametrize("first", [0, 1])
async def test_connects_to_whichever_node_answers(
    first: int, amqp_url: str, monkeypatch: pytest.MonkeyPatch, unique: Callable[[str], str]
) -> None:
    monkeypatch.setattr(_connection, "first_node", lambda count: first)
    live = urlsplit(amqp_url).port or 5672
    url = nodes_url(amqp_url, [dead_port(), live])
    app = asyncq.App(unique("nodes"), broker=url, backend="memory://", default_queue=unique("q"))
    async with app:
        await app.broker.ping()
        await app.broker.delete_queue(app.default_queue)


async def test_moves_to_the_next_node_when_its_node_dies(
    proxies: list[Proxy],
    amqp_url: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    unique: Callable[[str], str],
) -> None:
    monkeypatch.setattr(_connection, "first_node", lambda count: 0)
    url = nodes_url(amqp_url, [p.port for p in proxies])
    app = asyncq.App(unique("nodes"), broker=url, backend=redis_url, default_queue=unique("q"))

    @app.task
    async def double(n: int) -> int:
        return 2 * n

    async with app:
        async with asyncq.Worker(app, concurrency=4):
            assert await (await double.enqueue(1)).get(timeout=10) == 2
            assert app.broker.conn.connection().url.port == proxies[0].port
            await proxies[0].die()  # the node the producer and the worker use
            handle = None
            for _ in range(100):  # a publish during the reconnect fails: the caller retries
                try:
                    handle = await double.enqueue(21)
                    break
                except asyncq.BrokerUnavailable:
                    await asyncio.sleep(0.1)
            assert handle is not None
            assert await handle.get(timeout=20) == 42  # the worker moved on too
            assert app.broker.conn.connection().url.port == proxies[1].port
        await app.broker.delete_queue(app.default_queue)
