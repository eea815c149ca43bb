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
backend (``asyncq.results.rpc``) is in use.

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

from collections.abc import Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiormq.abc
from aiormq import spec

from asyncq.brokers import WORKER_GROUP, Broker, Consumer, DeadLetter, Outgoing
from asyncq.brokers.amqp import _dead
from asyncq.brokers.amqp._connection import Connection, Returned
from asyncq.brokers.amqp._consumer import AmqpConsumer
from asyncq.brokers.amqp._layout import EXCHANGE_TYPES, Layout, queue_kind, split_url
from asyncq.brokers.amqp._publisher import Publisher
from asyncq.brokers.amqp._replies import REPLY_PREFIX, Replies
from asyncq.errors import ConfigurationError

__all__ = ["REPLY_PREFIX", "AmqpBroker", "Returned"]


class AmqpBroker(Broker):
    """RabbitMQ transport; see the module docstring for layout, routing and delays.

    It composes a :class:`Connection`, a :class:`Layout` (declarations), a
    :class:`Publisher`, reply routes for RPC results (:class:`Replies`, which is this
    broker's :class:`~asyncq.records.ReplyTransport`) and a consumer per worker.
    """

    def __init__(self, url: str, *, quorum: bool | None = None, exchange: str = "asyncq",
                 exchanges: Mapping[str, str] | None = None,
                 bindings: Sequence[tuple[str, str, str]] = (),
                 delivery_limit: int | None = None, max_priority: int | None = None,
                 timeout: float = 10.0, reconnect_interval: float = 2.0) -> None:
        super().__init__(url)
        amqp_url, options = split_url(url)
        self._exchanges = dict(exchanges or {})
        for name, kind in self._exchanges.items():
            if kind not in EXCHANGE_TYPES:
                raise ConfigurationError(f"exchange {name!r}: type must be one of "
                                         f"{sorted(EXCHANGE_TYPES)}, not {kind!r}")
        self._bindings = list(bindings)
        self.conn = Connection(url, amqp_url, timeout=timeout,
                               reconnect_interval=reconnect_interval)
        self.layout = Layout(self.conn.raw_channel,
                             queue_kind(options, quorum, delivery_limit, max_priority),
                             exchange)
        self.conn.on_open = lambda: self.layout.setup(self._exchanges, self._bindings)
        self.replies = Replies(self.conn)
        self.publisher = Publisher(self.conn, self.layout, self.replies.routes)
        self.replies.sender = self.publisher.send_gathered

    @property
    def timeout(self) -> float:
        return self.conn.timeout

    @property
    def exchange(self) -> str:
        return self.layout.exchange

    @property
    def quorum(self) -> bool:
        return self.layout.kind.quorum

    # -- connection ------------------------------------------------------------------
    async def connect(self) -> None:
        await self.conn.connect()

    async def close(self) -> None:
        await self.replies.close()
        await self.publisher.close()
        self.layout.reset()
        await self.conn.close()

    def raw_channel(self, *, unbounded: bool = False
                    ) -> AbstractAsyncContextManager[aiormq.abc.AbstractChannel]:
        """A short-lived plain channel (no recovery), for operators' one-off commands."""
        return self.conn.raw_channel(unbounded=unbounded)

    async def ping(self) -> None:
        with self.conn.errors("ping"):
            async with self.conn.raw_channel():
                pass

    # -- routing -----------------------------------------------------------------------
    async def declare_exchange(self, name: str, type: str = "direct") -> None:
        """Declare a durable exchange (direct, topic or fanout), again on every connect."""
        self._exchanges[name] = type
        await self.connect()
        with self.conn.errors("declare exchange"):
            await self.layout.declare_exchange(name, type)

    async def bind(self, queue: str, exchange: str, routing_key: str = "") -> None:
        """Declare ``queue`` and bind it to ``exchange``, again on every connect."""
        if (queue, exchange, routing_key) not in self._bindings:
            self._bindings.append((queue, exchange, routing_key))
        await self.connect()
        with self.conn.errors("bind"):
            await self.layout.bind(queue, exchange, routing_key)

    # -- publishing (_publisher.py) ---------------------------------------------------------
    def publish(self, message: Outgoing) -> Coroutine[Any, Any, None]:
        # the publisher's coroutine itself: a coroutine around it would be one more
        # object per waiting caller, thousands of them in a burst
        return self.publisher.publish(message)

    async def publish_many(self, messages: Sequence[Outgoing]) -> None:
        await self.publisher.publish_many(messages)

    async def send(self, exchange: str, routing_key: str, body: bytes,
                   properties: spec.Basic.Properties) -> None:
        """Publish one message (mandatory) and wait for its confirm; failures raise
        PublishError or BrokerUnavailable."""
        await self.publisher.send(exchange, routing_key, body, properties)

    # -- replies (asyncq.records.ReplyTransport, for RPC results; _replies.py) -------------
    async def open_replies(self, on_reply: Callable[[str, bytes], None],
                           on_sent: Callable[[str], None]) -> str:
        await self.connect()
        return await self.replies.open(on_reply, on_sent)

    async def close_replies(self) -> None:
        await self.replies.close()

    def reply_address(self, task_id: str) -> str | None:
        return self.replies.routes.lookup(task_id)

    async def send_reply(self, address: str, task_id: str, value: bytes) -> bool:
        return await self.replies.send(address, task_id, value)

    def default_backend_url(self) -> str:
        return "rpc://"

    # -- consuming and operating ---------------------------------------------------------
    def consumer(
        self, queues: Sequence[str], *, prefetch: int, lease: float, group: str = WORKER_GROUP
    ) -> Consumer:
        return AmqpConsumer(self.conn, self.layout, self.publisher, self.replies.routes,
                            list(queues), prefetch=prefetch)

    async def queue_size(self, queue: str) -> int:
        await self.connect()
        with self.conn.errors("queue size"):
            return await self.layout.message_count(queue)

    async def delete_exchange(self, name: str) -> None:
        """Delete an exchange this app declared (and stop declaring it on connect)."""
        self._exchanges.pop(name, None)
        self._bindings = [b for b in self._bindings if b[1] != name]
        await self.connect()
        with self.conn.errors("delete exchange"):
            await self.layout.delete_exchange(name)

    async def delete_queue(self, queue: str) -> None:
        await self.connect()
        with self.conn.errors("delete queue"):
            await self.layout.delete(queue)

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        await self.connect()
        with self.conn.errors("list dead letters"):
            letters = await _dead.list_dead(self.conn, queue, limit)
        for letter in letters:
            letter.extra["dead_letter_max"] = self.layout.kind.dead_max
        return letters

    async def purge_dead(self, queue: str) -> int:
        await self.connect()
        with self.conn.errors("purge dead letters"):
            return await _dead.purge_dead(self.conn, queue)

    async def requeue_dead(self, queue: str, refs: Sequence[str]) -> int:
        if not refs:
            return 0
        await self.connect()
        with self.conn.errors("requeue dead letters"):
            return await _dead.requeue_dead(self.conn, self.layout, self.publisher, queue, refs)
