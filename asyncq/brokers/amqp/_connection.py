"""The AMQP broker's connection: one robust connection and its publishing channel,
short-lived raw channels, and the mapping of client errors to asyncq's.

Every other part of the broker (layout, publisher, consumer, dead letters) gets this
object, not the broker: it is all they need of the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from urllib.parse import unquote, urlsplit

import aiormq.abc
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aiormq import exceptions as amqp_errors

from asyncq._urls import mask_url, redact
from asyncq.brokers.amqp._hosts import NodeRing, first_node, node_urls
from asyncq.errors import AsyncqError, BrokerError, BrokerUnavailable, PublishError

__all__ = ["Connection", "Returned"]


class Returned(PublishError):
    """RabbitMQ returned a mandatory message: nothing is bound for its routing key."""

logger = logging.getLogger("asyncq.brokers.amqp")

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    amqp_errors.AMQPConnectionError, amqp_errors.ChannelInvalidStateError,
    ConnectionError, OSError, TimeoutError,
)

OnOpen = Callable[[], Awaitable[None]]


class Connection:
    """``connect_robust`` with deadlines; ``on_open`` runs after each fresh connect."""

    def __init__(self, url: str, amqp_url: str, *, timeout: float,
                 reconnect_interval: float) -> None:
        self.url = url
        self.safe_url = mask_url(url)
        self._nodes = node_urls(amqp_url)  # several with amqp://u:p@h1,h2/ (_hosts.py)
        self._next = first_node(len(self._nodes))
        self._password = unquote(urlsplit(url).password or "")
        self.timeout = timeout
        self.reconnect_interval = reconnect_interval
        self.on_open: OnOpen | None = None
        self._conn: AbstractRobustConnection | None = None
        self._publisher: AbstractRobustChannel | None = None
        self._lock: asyncio.Lock | None = None

    @property
    def opened(self) -> bool:
        """Whether :meth:`connect` would return at once (a connection, not closed)."""
        return self._conn is not None and not self._conn.is_closed

    async def connect(self) -> None:
        if self.opened:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.opened:
                return
            with self.errors("connect"):
                await self._open()

    async def _open(self) -> None:
        """Connect to the first node that answers, trying each once from the next one."""
        error: BaseException | None = None
        for _ in self._nodes:
            start, self._next = self._next, (self._next + 1) % len(self._nodes)
            try:
                await self._open_at(start)
                return
            except _UNAVAILABLE as exc:
                error = exc
        assert error is not None
        raise error

    async def _open_at(self, node: int) -> None:
        # Not aio_pika.connect_robust: when its first attempt is cancelled (our deadline)
        # it loses the connection, whose reconnect task then retries forever and ignores
        # cancellation, so asyncio.run never returns. Holding it lets us close it.
        conn = NodeRing(
            self._nodes, node, reconnect_interval=self.reconnect_interval,
            client_properties={"connection_name":
                               f"asyncq {socket.gethostname()}:{os.getpid()}"})
        try:
            async with asyncio.timeout(self.timeout):
                await conn.connect(timeout=self.timeout)
            async with asyncio.timeout(self.timeout):
                publisher = await conn.channel(publisher_confirms=True, on_return_raises=True)
            self._conn, self._publisher = conn, publisher
            if self.on_open is not None:
                await self.on_open()
        except BaseException:
            self._conn = self._publisher = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), self.timeout)
            raise

    async def close(self) -> None:
        conn, self._conn, self._publisher = self._conn, None, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), self.timeout)
            except Exception as exc:
                logger.warning("closing the RabbitMQ connection: %s", self.describe(exc))

    def connection(self) -> AbstractRobustConnection:
        if self._conn is None:
            raise BrokerUnavailable(f"RabbitMQ broker at {self.safe_url} is not connected")
        return self._conn

    @property
    def publishing_channel(self) -> AbstractRobustChannel | None:
        return self._publisher

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.connected.is_set()

    @contextlib.asynccontextmanager
    async def raw_channel(self, *, unbounded: bool = False
                          ) -> AsyncIterator[aiormq.abc.AbstractChannel]:
        """A short-lived plain channel (no recovery).

        The block runs under the connection's timeout unless ``unbounded`` (the caller
        then gives each operation its own deadline).
        """
        conn = self.connection()
        async with asyncio.timeout(None if unbounded else self.timeout):
            async with asyncio.timeout(self.timeout):
                await conn.ready()
                transport = conn.transport
                if transport is None:
                    raise BrokerUnavailable(f"RabbitMQ at {self.safe_url} is reconnecting")
                channel = await transport.connection.channel(publisher_confirms=False)
            try:
                yield channel
            finally:
                if not channel.is_closed:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(channel.close(), self.timeout)

    def describe(self, exc: BaseException) -> str:
        """An exception's text with the URL and password masked."""
        text = redact(str(exc), self.url)
        if self._password:
            text = text.replace(self._password, "***")
        if not text and isinstance(exc, TimeoutError):
            text = f"no answer within {self.timeout:g} s (is it a RabbitMQ server?)"
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

    @contextlib.contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Connection failures become BrokerUnavailable; other AMQP errors BrokerError."""
        try:
            yield
        except Exception as exc:
            raise self.mapped(exc, what) from None

    def mapped(self, exc: Exception, what: str) -> Exception:
        """``exc`` as :meth:`errors` raises it."""
        if isinstance(exc, AsyncqError):
            return exc
        if isinstance(exc, _UNAVAILABLE):
            return BrokerUnavailable(f"RabbitMQ at {self.safe_url} is unavailable ({what}): "
                                     f"{self.describe(exc)}")
        if isinstance(exc, amqp_errors.AMQPError):
            return BrokerError(f"RabbitMQ at {self.safe_url}: {what} failed: "
                               f"{self.describe(exc)}")
        return exc
