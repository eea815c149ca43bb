"""RabbitMQ broker on aio-pika (``amqp://`` or ``amqps://``).

Safety: queues are durable (quorum queues with ``quorum=True`` or ``?queue_type=quorum``),
messages persistent, every publish is mandatory and waits for the publisher confirm — an
unroutable, refused or unconfirmed message raises :class:`~asyncq.errors.PublishError`.
Consumers use manual acks and ``basic.qos`` prefetch = what the worker asks for, per queue
consumed (global QoS is deprecated and refused by quorum queues, so a worker consuming n
queues may hold up to n x prefetch, as with Celery). The connection is
``connect_robust``: it and its consumers come back after a broker restart.

Layout::

    asyncq                    durable direct exchange; queue Q bound with routing key Q
    asyncq.dlx                dead-letter exchange; Q.dead bound with routing key Q
    Q                         x-dead-letter-exchange=asyncq.dlx (quorum: x-delivery-limit)
    Q.dead                    dead letters: the original body, asyncq headers say why
    asyncq.delay.<ms>.<Q>     delay buckets (below), deleted when idle (x-expires)

Routing, as in Celery. By default a message goes to the ``asyncq`` exchange with routing
key = its queue; the queue (and its dead-letter queue) is declared on first use. A task
route or call may name ``exchange`` and ``routing_key``: the exchange must exist and be
declared durable by the application, and whatever it routes to must be bound::

    broker = AmqpBroker(url, exchanges={"events": "topic"},
                        bindings=[("images", "events", "image.*")])
    # or at run time:
    await broker.declare_exchange("events", "topic")      # direct, topic or fanout
    await broker.bind("images", "events", "image.*")      # declares the queue too

A message nothing is bound for is returned by RabbitMQ and raises PublishError.
Workers consume queues by name, so declare bindings before producers publish. Every
message carries ``correlation_id`` = its task id, and ``reply_to`` when the RPC result
backend (``asyncq.results.amqp``) is in use.

Delays. A message with a future ``eta`` never waits unacked in a consumer: it is
published to a delay queue ``asyncq.delay.<bucket>.<target>`` whose ``x-message-ttl`` is
the bucket and whose dead-letter target is the destination. Buckets are powers of two
milliseconds (16 ms up to 2^31 ms) and the largest bucket not longer than the remaining
delay is used, so a message never expires early in a queue. On arrival a consumer reads
the ``x-asyncq-eta`` header: while still early it republishes the message to the next
smaller bucket and acks, without handing it to the worker. A delay takes about
log2(delay / 16 ms) hops; a message runs no earlier than its eta (by the consumer's clock)
and typically 5-40 ms after it (more when every prefetch slot is busy, since an early
arrival waits for one like any message). Idle delay queues are deleted by RabbitMQ (``x-expires``);
a process re-declares a delay queue it publishes to every 5 minutes, so one never expires
with messages inside.

Redeliveries. ``Delivery.delivery_count`` is exact on quorum queues (``x-delivery-count``),
which also dead-letter after ``delivery_limit`` deliveries as a last resort (RabbitMQ sets
the reason; the worker's ``max_deliveries`` normally acts first). Classic queues only
flag a redelivery; so the consumer republishes a redelivered message with a counter
header (confirmed, then acks the original) and the count stays exact there too. A
republished message goes to the back of its queue.

Dead letters. ``Consumer.dead_letter`` publishes the body to ``asyncq.dlx`` (confirmed)
with headers ``x-asyncq-reason``, ``-task-id``, ``-task``, ``-deliveries``, ``-dead-at``,
then acks the original. A dead letter's ``ref`` is its AMQP ``message_id``. Listing reads
up to ``limit`` messages with ``basic.get`` and returns them all to the queue at the end:
it is not atomic (a concurrent listing or requeue sees fewer), and on a quorum dead-letter
queue it raises the letters' ``x-delivery-count``.

Settling. There is no lease in RabbitMQ, so ``renew`` does nothing; a delivery unacked
for longer than the server's ``consumer_timeout`` (default 30 minutes) makes RabbitMQ
close the consumer's channel and redeliver everything on it: raise ``consumer_timeout``
for tasks that run longer. An ack for a delivery whose channel died is logged and
dropped (the message is redelivered: at-least-once). ``server_id`` is ``None``: results
are stored before the ack, never atomically with it.

Options (keyword or URL query): ``queue_type=quorum``, ``delivery_limit`` (quorum only,
default 20), ``max_priority`` (classic only; then ``priority`` orders messages). Keywords
only: ``exchange`` (default ``asyncq``), ``exchanges``, ``bindings``, ``timeout`` (the
deadline of every network wait, default 10 s) and ``reconnect_interval``. Other query
parameters (``heartbeat``...) are aio-pika's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from urllib.parse import unquote, urlsplit

import aio_pika
import aiormq.abc
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aio_pika.connection import make_url
from aiormq import exceptions as amqp_errors
from aiormq import spec

from asyncq._urls import redact
from asyncq.brokers import WORKER_GROUP, Broker, Consumer, DeadLetter, Outgoing
from asyncq.brokers._amqp_layout import EXCHANGE_TYPES, Layout, bucket_ms, queue_kind, split_url
from asyncq.brokers._amqp_publisher import Publisher, Returned
from asyncq.brokers._amqp_replies import ReplyRoutes
from asyncq.errors import (
    AsyncqError,
    BrokerError,
    BrokerUnavailable,
    ConfigurationError,
)

__all__ = ["AmqpBroker", "ReplyRoutes", "Returned"]

logger = logging.getLogger("asyncq.brokers.amqp")
logger.addHandler(logging.NullHandler())

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    amqp_errors.AMQPConnectionError, amqp_errors.ChannelInvalidStateError,
    ConnectionError, OSError, TimeoutError,
)


class AmqpBroker(Broker):
    """RabbitMQ transport; see the module docstring for layout, routing and delays."""

    scheme = "amqp"

    def __init__(self, url: str, *, quorum: bool | None = None, exchange: str = "asyncq",
                 exchanges: Mapping[str, str] | None = None,
                 bindings: Sequence[tuple[str, str, str]] = (),
                 delivery_limit: int | None = None, max_priority: int | None = None,
                 timeout: float = 10.0, reconnect_interval: float = 2.0) -> None:
        super().__init__(url)
        self._amqp_url, options = split_url(url)
        self._password = unquote(urlsplit(url).password or "")
        self.timeout = timeout
        self.reconnect_interval = reconnect_interval
        self._exchanges = dict(exchanges or {})
        for name, kind in self._exchanges.items():
            if kind not in EXCHANGE_TYPES:
                raise ConfigurationError(f"exchange {name!r}: type must be one of "
                                         f"{sorted(EXCHANGE_TYPES)}, not {kind!r}")
        self._bindings = list(bindings)
        self.layout = Layout(self.raw_channel,
                             queue_kind(options, quorum, delivery_limit, max_priority),
                             exchange)
        self.replies = ReplyRoutes()
        self._conn: AbstractRobustConnection | None = None
        self._publisher: AbstractRobustChannel | None = None
        self._lock: asyncio.Lock | None = None
        self.publisher = Publisher(self)

    @property
    def exchange(self) -> str:
        return self.layout.exchange

    @property
    def quorum(self) -> bool:
        return self.layout.kind.quorum

    # -- connection ------------------------------------------------------------------
    async def connect(self) -> None:
        if self._conn is not None and not self._conn.is_closed:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed:
                return
            with self.errors("connect"):
                await self._open()

    async def _open(self) -> None:
        # Not aio_pika.connect_robust: when its first attempt is cancelled (our deadline)
        # it loses the connection, whose reconnect task then retries forever and ignores
        # cancellation, so asyncio.run never returns. Holding it lets us close it.
        conn = aio_pika.RobustConnection(
            make_url(self._amqp_url), reconnect_interval=self.reconnect_interval,
            client_properties={"connection_name":
                               f"asyncq {socket.gethostname()}:{os.getpid()}"})
        try:
            async with asyncio.timeout(self.timeout):
                await conn.connect(timeout=self.timeout)
            async with asyncio.timeout(self.timeout):
                publisher = await conn.channel(publisher_confirms=True, on_return_raises=True)
            self._conn, self._publisher = conn, publisher
            await self.layout.setup(self._exchanges, self._bindings)
        except BaseException:
            self._conn = self._publisher = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), self.timeout)
            raise

    async def close(self) -> None:
        await self.publisher.close()
        conn, self._conn, self._publisher = self._conn, None, None
        self.layout.reset()
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), self.timeout)
            except Exception as exc:
                logger.warning("closing the RabbitMQ connection: %s", self.describe(exc))

    def connection(self) -> AbstractRobustConnection:
        if self._conn is None:
            raise BrokerUnavailable(f"RabbitMQ broker at {self.safe_url} is not connected")
        return self._conn

    async def ping(self) -> None:
        with self.errors("ping"):
            async with self.raw_channel():
                pass

    @contextlib.asynccontextmanager
    async def raw_channel(self, *, unbounded: bool = False
                          ) -> AsyncIterator[aiormq.abc.AbstractChannel]:
        """A short-lived plain channel (no recovery).

        The block runs under the broker's timeout unless ``unbounded`` (the caller then
        gives each operation its own deadline).
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

    # -- routing -----------------------------------------------------------------------
    async def declare_exchange(self, name: str, type: str = "direct") -> None:
        """Declare a durable exchange (direct, topic or fanout), again on every connect."""
        self._exchanges[name] = type
        await self.connect()
        with self.errors("declare exchange"):
            await self.layout.declare_exchange(name, type)

    async def bind(self, queue: str, exchange: str, routing_key: str = "") -> None:
        """Declare ``queue`` and bind it to ``exchange``, again on every connect."""
        if (queue, exchange, routing_key) not in self._bindings:
            self._bindings.append((queue, exchange, routing_key))
        await self.connect()
        with self.errors("bind"):
            await self.layout.bind(queue, exchange, routing_key)

    # -- publishing (asyncq/brokers/_amqp_publisher.py) -----------------------------------
    async def publish(self, message: Outgoing) -> None:
        await self.publisher.publish(message)

    async def publish_many(self, messages: Sequence[Outgoing]) -> None:
        await self.publisher.publish_many(messages)

    async def send(self, exchange: str, routing_key: str, body: bytes,
                   properties: spec.Basic.Properties) -> None:
        """Publish one message (mandatory) and wait for its confirm; failures raise
        PublishError or BrokerUnavailable."""
        await self.publisher.send(exchange, routing_key, body, properties)

    async def redelay(self, queue: str, body: bytes, properties: spec.Basic.Properties,
                      remaining_ms: int) -> None:
        """Send an early arrival back to wait in a delay bucket towards ``queue``."""
        name = await self.layout.delay_queue(bucket_ms(remaining_ms), "", queue)
        await self.send("", name, body, properties)

    @property
    def publishing_channel(self) -> AbstractRobustChannel | None:
        return self._publisher

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.connected.is_set()

    # -- consuming and operating ---------------------------------------------------------
    def consumer(
        self, queues: Sequence[str], *, prefetch: int, lease: float, group: str = WORKER_GROUP
    ) -> Consumer:
        from asyncq.brokers._amqp_consumer import AmqpConsumer

        return AmqpConsumer(self, list(queues), prefetch=prefetch)

    async def queue_size(self, queue: str) -> int:
        await self.connect()
        with self.errors("queue size"):
            return await self.layout.message_count(queue)

    async def delete_exchange(self, name: str) -> None:
        """Delete an exchange this app declared (and stop declaring it on connect)."""
        self._exchanges.pop(name, None)
        self._bindings = [b for b in self._bindings if b[1] != name]
        await self.connect()
        with self.errors("delete exchange"):
            await self.layout.delete_exchange(name)

    async def delete_queue(self, queue: str) -> None:
        await self.connect()
        with self.errors("delete queue"):
            await self.layout.delete(queue)

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        from asyncq.brokers import _amqp_dead

        await self.connect()
        with self.errors("list dead letters"):
            return await _amqp_dead.list_dead(self, queue, limit)

    async def purge_dead(self, queue: str) -> int:
        from asyncq.brokers import _amqp_dead

        await self.connect()
        with self.errors("purge dead letters"):
            return await _amqp_dead.purge_dead(self, queue)

    async def requeue_dead(self, queue: str, refs: Sequence[str]) -> int:
        from asyncq.brokers import _amqp_dead

        if not refs:
            return 0
        await self.connect()
        with self.errors("requeue dead letters"):
            return await _amqp_dead.requeue_dead(self, queue, refs)

