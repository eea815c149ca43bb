"""The broker seam: move opaque message bytes, nothing more.

A broker publishes :class:`Outgoing` messages and hands a worker's
:class:`Consumer` :class:`Delivery` objects, which the worker settles (ack,
requeue, dead-letter). Brokers know nothing of tasks, codecs or results; a broker
that shares a server with the result backend may apply the backend's
:class:`~asyncq.records.KeyWrite` in the same atomic step as the ack (the record
rules are in :mod:`asyncq.records`).

Brokers plug in by URL scheme: :func:`register_broker` here (one line per broker), or
an entry point in the ``asyncq.brokers`` group for a package of its own. A broker
names its default result backend with :meth:`Broker.default_backend_url`.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from asyncq._plugins import Registry
from asyncq._urls import mask_url
from asyncq.errors import ConfigurationError
from asyncq.records import KeyWrite

__all__ = [
    "DEAD_BODY_KEEP",
    "DEAD_LETTER_MAX",
    "WORKER_GROUP",
    "Broker",
    "Consumer",
    "DeadItem",
    "DeadLetter",
    "Delivery",
    "KeyWrite",
    "Outgoing",
    "Settlement",
    "broker_class",
    "register_broker",
]

#: The consumer group workers join (Redis): every worker of a queue shares its messages.
WORKER_GROUP: Final = "asyncq"
#: Dead letters kept per queue by default (Redis, RabbitMQ): past it the oldest go.
DEAD_LETTER_MAX: Final = 10_000
#: Bytes of an over-size message's body kept in its dead letter (the reason has its size).
DEAD_BODY_KEEP: Final = 4096


@dataclass(slots=True, eq=False)
class Outgoing:
    """A message to publish. ``eta`` is a unix time; ``None`` means now.

    Not frozen: one is built per enqueue, and a frozen dataclass's ``__init__`` costs
    several times more. Treat it as read-only.
    """

    id: str
    queue: str
    body: bytes
    eta: float | None = None
    routing_key: str | None = None
    exchange: str | None = None
    priority: int | None = None

    def delay(self, now: float | None = None) -> float:
        if self.eta is None:
            return 0.0
        return max(0.0, self.eta - (time.time() if now is None else now))


@dataclass(slots=True, eq=False)
class Delivery:
    """A message handed to a consumer; ``tag`` is the broker's own handle."""

    body: bytes
    queue: str
    delivery_count: int = 1
    tag: Any = None


@dataclass(slots=True, eq=False)
class Settlement:
    delivery: Delivery
    write: KeyWrite | None = None


@dataclass(frozen=True, slots=True)
class DeadItem:
    """A delivery to move to its queue's dead-letter store, with why."""

    delivery: Delivery
    reason: str
    task_id: str | None = None
    task: str | None = None
    write: KeyWrite | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A stored dead letter, as listed by :meth:`Broker.dead_letters`."""

    ref: str
    queue: str
    body: bytes
    reason: str
    task_id: str | None
    task: str | None
    deliveries: int
    dead_at: float
    extra: dict[str, Any] = field(default_factory=dict)


class Consumer(abc.ABC):
    """One worker's view of a set of queues."""

    #: Identifies the server when ack-with-write is supported; ``None`` otherwise.
    server_id: str | None = None
    #: Each fetch is a round trip to the server (Redis), not a take from deliveries
    #: already pushed (RabbitMQ): then the worker reads in fewer, larger batches.
    fetch_is_a_round_trip: bool = False

    @abc.abstractmethod
    async def fetch(self, limit: int, timeout: float) -> Sequence[Delivery]:
        """Up to ``limit`` deliveries, waiting at most ``timeout`` seconds for the first."""

    @abc.abstractmethod
    async def ack(self, items: Sequence[Settlement]) -> None:
        """Acknowledge (and delete) deliveries, applying their writes first when supported."""

    @abc.abstractmethod
    async def requeue(self, deliveries: Sequence[Delivery], *, counted: bool = False) -> None:
        """Hand deliveries back to the queue at once.

        A hand-back (shutdown, isolation) is not a failed delivery: the next delivery
        of the message has the same ``delivery_count``. With ``counted`` (the worker
        could not process it) it counts as one, so ``max_deliveries`` still applies.
        """

    @abc.abstractmethod
    async def dead_letter(self, items: Sequence[DeadItem]) -> None:
        """Move deliveries to the dead-letter store with a reason, and ack them."""

    async def start(self) -> None:  # noqa: B027
        """Set up what :meth:`fetch` reads from (consumer groups, subscriptions): the
        worker calls it before it says it is ready, so that it consumes from then on.
        Idempotent; :meth:`fetch` sets up what is missing too (the first time, or again
        after a stream was deleted or a connection came back)."""

    async def pause(self) -> None:  # noqa: B027
        """Hold nothing new until :meth:`resume`.

        The worker pauses while a redelivered message (a suspect: it may be what
        killed its last worker) runs alone, so that a crash it causes again catches no
        other message. Pull consumers need nothing (the worker stops fetching); push
        consumers stop deliveries and hand back what they received but did not hand
        out, without counting a delivery.
        """

    async def resume(self) -> None:  # noqa: B027
        """Receive again after :meth:`pause`."""

    async def renew(self, deliveries: Sequence[Delivery]) -> None:  # noqa: B027
        """Extend the lease of running deliveries (brokers with visibility timeouts)."""

    def wake(self) -> None:  # noqa: B027
        """The worker stops: a :meth:`fetch` waiting for its first delivery (or the next
        fetch) returns at once with what it has. Only where nothing the wait may have
        received is lost or left held (a local wait); a broker whose wait is a blocking
        server read leaves it to end by itself within its ``timeout``."""

    async def cancel_queue(self, queue: str) -> None:
        """Take nothing more from ``queue``; hand back what was received from it but not
        handed out (not counted as a delivery). Deliveries already handed out are still
        acked, requeued or dead-lettered as usual."""
        raise ConfigurationError(f"{type(self).__name__} cannot drop a queue while it runs")

    async def add_queue(self, queue: str) -> None:
        """Consume ``queue`` too (declared first where the broker declares queues)."""
        raise ConfigurationError(f"{type(self).__name__} cannot add a queue while it runs")

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop consuming; anything still unacked goes back to the broker."""


class Broker(abc.ABC):
    """A message transport for a set of named queues."""

    #: Its connections belong to the event loop that opened them (False: in-process
    #: brokers, which any loop of the process may use at once).
    loop_bound: bool = True

    def __init__(self, url: str) -> None:
        self.url = url

    def default_backend_url(self) -> str:
        """Where results go when the App names no backend: by default the broker's own
        server (the same URL); a broker without a store names another scheme."""
        return self.url

    @property
    def safe_url(self) -> str:
        return mask_url(self.url)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.safe_url}>"

    async def connect(self) -> None:  # noqa: B027
        """Open connections (idempotent)."""

    async def close(self) -> None:  # noqa: B027
        """Close connections."""

    @abc.abstractmethod
    def publish(self, message: Outgoing) -> Awaitable[None]:
        """Durably enqueue one message; done only once the broker has it.

        An ``async def`` does; so does a method that returns a future (as the Redis
        broker's does: no coroutine per message on the producer's hot path).
        """

    async def publish_many(self, messages: Sequence[Outgoing]) -> None:
        """Durably enqueue many messages (brokers override with one round trip)."""
        for message in messages:
            await self.publish(message)

    @abc.abstractmethod
    def consumer(
        self, queues: Sequence[str], *, prefetch: int, lease: float, group: str = WORKER_GROUP
    ) -> Consumer:
        """A consumer of ``queues``; ``prefetch`` caps unacked deliveries it holds.

        Consumers share a queue's messages, each going to one of them, whatever app
        they belong to (on Redis: one consumer group, ``group``, per stream).
        """

    @abc.abstractmethod
    async def queue_size(self, queue: str) -> int:
        """Messages waiting (not counting delayed or in-flight ones), for operators."""

    async def scheduled_size(self, queue: str) -> int:
        """Delayed messages (countdown, eta, retries waiting), where the broker can count
        them; RabbitMQ's delay buckets are shared by all queues, so it reports 0."""
        return 0

    @abc.abstractmethod
    async def delete_queue(self, queue: str) -> None:
        """Delete a queue with everything in it: waiting, delayed and dead messages."""

    @abc.abstractmethod
    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """Stored dead letters of ``queue``, oldest first."""

    @abc.abstractmethod
    async def purge_dead(self, queue: str) -> int:
        """Delete every dead letter of ``queue``; return how many."""

    @abc.abstractmethod
    async def requeue_dead(self, queue: str, refs: Sequence[str]) -> int:
        """Put dead letters back on their queue; return how many moved."""

    async def ping(self) -> None:  # noqa: B027
        """Raise :class:`~asyncq.errors.BrokerUnavailable` when the server does not answer."""

    async def safety_warnings(self) -> list[str]:
        """Server settings that could lose queued messages (checked at worker start)."""
        return []


_REGISTRY: Registry[Broker] = Registry("broker", "asyncq.brokers")


def register_broker(schemes: Sequence[str], path: str, *, extra: str | None = None) -> None:
    """Register a broker class (``"module:Class"``) for URL ``schemes``; ``extra`` names
    the pip extra that installs its client. Packages outside asyncq can instead declare
    an entry point in the ``asyncq.brokers`` group (name = scheme, value = the path)."""
    _REGISTRY.register(schemes, path, extra=extra)


def broker_class(url: str) -> type[Broker]:
    """The registered broker class for ``url``'s scheme (ConfigurationError if none)."""
    return _REGISTRY.lookup(url)


register_broker(["memory"], "asyncq.brokers.memory:MemoryBroker")
register_broker(["redis", "rediss", "unix", "redis+sentinel"], "asyncq.brokers.redis:RedisBroker",
                extra="redis")
register_broker(["redis+cluster", "rediss+cluster"],
                "asyncq.brokers.redis.cluster:RedisClusterBroker", extra="redis")
register_broker(["amqp", "amqps"], "asyncq.brokers.amqp:AmqpBroker", extra="amqp")
