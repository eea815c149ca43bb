"""RabbitMQ names, queue arguments, headers and declarations of the AMQP broker.

Declarations run on short-lived raw channels, so a refused declaration (a queue that
exists with other arguments) closes only its own channel, never the publishing one.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiormq.abc
from aiormq import spec
from aiormq.exceptions import ChannelNotFoundEntity, ChannelPreconditionFailed

from asyncq.brokers import DEAD_LETTER_MAX
from asyncq.errors import ConfigurationError
from asyncq.message import new_id

_Properties = spec.Basic.Properties

logger = logging.getLogger("asyncq.brokers.amqp")

__all__ = [
    "DEAD_EXCHANGE",
    "ETA_HEADER",
    "EXCHANGE_TYPES",
    "REDELIVERIES_HEADER",
    "Layout",
    "QueueKind",
    "bucket_ms",
    "copy_properties",
    "dead_queue",
    "delay_queue_name",
    "header_count",
    "header_int",
    "new_properties",
    "queue_kind",
    "split_url",
]

DEAD_EXCHANGE: Final = "asyncq.dlx"
DELAY_PREFIX: Final = "asyncq.delay"
#: Delays shorter than this still wait this long (a message is never early).
MIN_BUCKET_MS: Final = 16
MAX_BUCKET_MS: Final = 1 << 31
#: An idle delay queue is deleted ``bucket + DELAY_EXPIRES_MS`` after its last declaration.
DELAY_EXPIRES_MS: Final = 10 * 60 * 1000
#: Re-declare a delay queue before publishing when our last declaration is this old.
DELAY_REFRESH_S: Final = DELAY_EXPIRES_MS / 2000
ETA_HEADER: Final = "x-asyncq-eta"
#: Earlier deliveries of a message on a classic queue (kept across our republishes).
REDELIVERIES_HEADER: Final = "x-asyncq-redeliveries"
EXCHANGE_TYPES: Final = frozenset({"direct", "topic", "fanout"})
_DEATH_HEADERS: Final = ("x-death", "x-first-death-exchange", "x-first-death-queue",
                         "x-first-death-reason", "x-last-death-exchange",
                         "x-last-death-queue", "x-last-death-reason", "x-delivery-count")
_MAX_NAME: Final = 255
_OWN_QUERY: Final = frozenset({"queue_type", "delivery_limit", "max_priority",
                               "dead_letter_max"})

RawChannel = aiormq.abc.AbstractChannel
OpenChannel = Callable[[], AbstractAsyncContextManager[RawChannel]]


def dead_queue(queue: str) -> str:
    return f"{queue}.dead"


def bucket_ms(remaining_ms: int) -> int:
    """The delay bucket for a message due in ``remaining_ms``: a power of two, never longer."""
    if remaining_ms <= MIN_BUCKET_MS:
        return MIN_BUCKET_MS
    return min(MAX_BUCKET_MS, 1 << (remaining_ms.bit_length() - 1))


def delay_queue_name(bucket: int, exchange: str, routing_key: str) -> str:
    target = routing_key if exchange == "" else f"{routing_key}@{exchange}"
    name = f"{DELAY_PREFIX}.{bucket}.{target}"
    if len(name.encode()) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(target.encode()).hexdigest()[:16]
    return f"{DELAY_PREFIX}.{bucket}.{target.encode()[:200].decode(errors='ignore')}~{digest}"


def header_int(headers: Mapping[str, Any] | None, name: str) -> int:
    value = (headers or {}).get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


#: A delivery counter read from a header is clamped to 0..this (any sender can write one).
MAX_COUNT: Final = 1_000_000


def header_count(headers: Mapping[str, Any] | None, name: str) -> int:
    """A delivery counter from a header, never negative: a sender can write the header,
    and a negative count would keep a worker-killing message from being dead-lettered
    (a large one only dead-letters the sender's own message sooner)."""
    return min(max(0, header_int(headers, name)), MAX_COUNT)


def new_properties(*, headers: dict[str, Any], correlation_id: str | None,
                   reply_to: str | None, priority: int | None = None,
                   persistent: bool = True) -> spec.Basic.Properties:
    """Properties of a message we publish; ``message_id`` is fresh (returns match on it).

    What ``spec.Basic.Properties(...)`` makes, without its ``__init__``, whose checks
    (an empty ``cluster_id``, a delivery mode of 1 or 2) hold here by construction: it
    costs an enqueue more than the rest of this function."""
    props = _Properties.__new__(_Properties)
    props.content_type = props.content_encoding = props.expiration = None
    props.message_type = props.user_id = props.app_id = None
    props.cluster_id = ""
    props.headers = headers
    props.delivery_mode = 2 if persistent else 1
    props.priority = priority
    props.correlation_id = correlation_id
    props.reply_to = reply_to
    props.message_id = new_id()  # (no system call per message, as for task ids)
    props.timestamp = _this_second()
    return props


_second: tuple[int, dt.datetime] = (0, dt.datetime.fromtimestamp(0, dt.UTC))


def _this_second() -> dt.datetime:
    """Now, to the second (all an AMQP timestamp holds): one datetime made per second,
    not one per message."""
    global _second
    now = int(time.time())
    if now != _second[0]:
        _second = (now, dt.datetime.fromtimestamp(now, dt.UTC))
    return _second[1]


def copy_properties(source: Any, headers: Mapping[str, Any]) -> spec.Basic.Properties:
    """Properties for a republished copy of ``source`` (an incoming message).

    Death headers are dropped; ``headers`` are set, and a ``None`` value removes one.
    """
    kept = {k: v for k, v in dict(source.headers or {}).items() if k not in _DEATH_HEADERS}
    for name, value in headers.items():
        if value is None:
            kept.pop(name, None)
        else:
            kept[name] = value
    return new_properties(headers=kept, correlation_id=source.correlation_id,
                          reply_to=source.reply_to, priority=source.priority)


@dataclass(frozen=True, slots=True)
class QueueKind:
    """How the broker's queues are declared."""

    quorum: bool = False
    delivery_limit: int | None = 20
    max_priority: int | None = None
    #: dead letters kept per queue (``x-max-length`` of ``<queue>.dead``; oldest dropped)
    dead_max: int = DEAD_LETTER_MAX

    def _type(self) -> dict[str, Any]:
        return {"x-queue-type": "quorum"} if self.quorum else {}

    def main_args(self, queue: str) -> dict[str, Any]:
        args = {**self._type(), "x-dead-letter-exchange": DEAD_EXCHANGE,
                "x-dead-letter-routing-key": queue}
        if self.quorum and self.delivery_limit:
            args["x-delivery-limit"] = self.delivery_limit
        if not self.quorum and self.max_priority:
            args["x-max-priority"] = self.max_priority
        return args

    def dead_args(self) -> dict[str, Any]:
        return {**self._type(), "x-max-length": self.dead_max}

    def delay_args(self, bucket: int, exchange: str, routing_key: str) -> dict[str, Any]:
        return {**self._type(), "x-message-ttl": bucket, "x-expires": bucket + DELAY_EXPIRES_MS,
                "x-dead-letter-exchange": exchange, "x-dead-letter-routing-key": routing_key}


#: Seconds between AMQP heartbeats unless the URL says (``?heartbeat=N``). RabbitMQ
#: suggests 5-20 s; a silently dropped connection is noticed after about three of them
#: (the server's own default, 60 s, would take over three minutes).
DEFAULT_HEARTBEAT = 10


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """The URL for aio-pika (without our options, with a heartbeat) and our options."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in pairs if k in _OWN_QUERY}
    kept = [(k, v) for k, v in pairs if k not in _OWN_QUERY]
    if not any(k == "heartbeat" for k, _ in kept):
        kept.append(("heartbeat", str(DEFAULT_HEARTBEAT)))
    return urlunsplit(parts._replace(query=urlencode(kept))), ours


def _int_option(options: Mapping[str, str], name: str, given: int | None) -> int | None:
    if given is not None or name not in options:
        return given
    try:
        return int(options[name])
    except ValueError:
        raise ConfigurationError(f"AMQP URL option {name} must be an integer") from None


def queue_kind(options: Mapping[str, str], quorum: bool | None, delivery_limit: int | None,
                max_priority: int | None) -> QueueKind:
    queue_type = options.get("queue_type", "classic")
    if queue_type not in {"classic", "quorum"}:
        raise ConfigurationError(f"queue_type must be classic or quorum, not {queue_type!r}")
    return QueueKind(
        quorum=(queue_type == "quorum") if quorum is None else quorum,
        delivery_limit=_int_option(options, "delivery_limit", delivery_limit) or 20,
        max_priority=_int_option(options, "max_priority", max_priority),
        dead_max=_int_option(options, "dead_letter_max", None) or DEAD_LETTER_MAX,
    )



class Layout:
    """Declares (once per process) the exchanges and queues the broker uses."""

    def __init__(self, open_channel: OpenChannel, kind: QueueKind, exchange: str) -> None:
        self._open = open_channel
        self.kind = kind
        self.exchange = exchange
        self._exchanges: set[str] = set()
        self._queues: set[str] = set()
        self._delays: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def reset(self) -> None:
        self._exchanges.clear()
        self._queues.clear()
        self._delays.clear()

    def declared(self, queue: str) -> bool:
        """Whether ``queue`` is declared (:meth:`queue` would not wait)."""
        return queue in self._queues

    def forget(self, queue: str) -> None:
        """Declare ``queue`` (and its delay queues) again on next use."""
        self._queues.discard(queue)
        self._delays.clear()

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def setup(self, exchanges: Mapping[str, str],
                    bindings: list[tuple[str, str, str]]) -> None:
        await self.declare_exchange(self.exchange, "direct")
        await self.declare_exchange(DEAD_EXCHANGE, "direct")
        for name, kind in exchanges.items():
            await self.declare_exchange(name, kind)
        for queue, exchange, routing_key in bindings:
            await self.bind(queue, exchange, routing_key)

    async def declare_exchange(self, name: str, kind: str) -> None:
        if kind not in EXCHANGE_TYPES:
            raise ConfigurationError(f"exchange {name!r}: type must be one of "
                                     f"{sorted(EXCHANGE_TYPES)}, not {kind!r}")
        async with self._open() as ch, _refusals(f"exchange {name!r}"):
            await ch.exchange_declare(name, exchange_type=kind, durable=True)
        self._exchanges.add(name)

    async def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        await self.queue(queue)
        async with self._open() as ch, _refusals(f"binding of {queue!r} to {exchange!r}"):
            await ch.queue_bind(queue, exchange, routing_key=routing_key)

    async def exchange_exists(self, name: str) -> bool:
        if name in self._exchanges or name == "":
            return True
        try:
            async with self._open() as ch:
                await ch.exchange_declare(name, passive=True)
        except ChannelNotFoundEntity:
            return False
        self._exchanges.add(name)
        return True

    async def queue(self, queue: str) -> None:
        """The queue, its dead-letter queue and their bindings (idempotent, cached)."""
        if queue in self._queues:
            return
        async with self._lock(queue):
            if queue in self._queues:
                return
            dead = dead_queue(queue)
            await self._dead_queue(dead)
            async with self._open() as ch, _refusals(f"queue {queue!r}"):
                await ch.queue_bind(dead, DEAD_EXCHANGE, routing_key=queue)
                await ch.queue_declare(queue, durable=True,
                                       arguments=self.kind.main_args(queue))
                await ch.queue_bind(queue, self.exchange, routing_key=queue)
            self._queues.add(queue)

    async def _dead_queue(self, dead: str) -> None:
        """Declare a dead-letter queue with its cap; one declared before caps existed
        (RabbitMQ refuses to change a queue's arguments) is used as it is, with a
        warning: set the cap by policy (docs/reliability.md) or delete the queue."""
        try:
            async with self._open() as ch:
                await ch.queue_declare(dead, durable=True, arguments=self.kind.dead_args())
            return
        except ChannelPreconditionFailed:
            pass
        async with self._open() as ch, _refusals(f"dead-letter queue {dead!r}"):
            await ch.queue_declare(dead, durable=True, arguments=self._type_only())
        logger.warning("dead-letter queue %r exists without a length cap: its dead letters "
                       "are not capped at %d; set a max-length policy or delete it",
                       dead, self.kind.dead_max)

    def _type_only(self) -> dict[str, Any]:
        return {"x-queue-type": "quorum"} if self.kind.quorum else {}

    async def delay_queue(self, bucket: int, exchange: str, routing_key: str) -> str:
        """The delay queue of ``bucket`` ms towards (exchange, routing key), kept declared."""
        name = delay_queue_name(bucket, exchange, routing_key)
        if time.monotonic() - self._delays.get(name, -1e12) < DELAY_REFRESH_S:
            return name
        async with self._lock(name):
            if time.monotonic() - self._delays.get(name, -1e12) < DELAY_REFRESH_S:
                return name
            declared_at = time.monotonic()
            args = self.kind.delay_args(bucket, exchange, routing_key)
            async with self._open() as ch, _refusals(f"delay queue {name!r}"):
                await ch.queue_declare(name, durable=True, arguments=args)
            self._delays[name] = declared_at
        return name

    async def delete_exchange(self, name: str) -> None:
        async with self._open() as ch:
            await ch.exchange_delete(name)
        self._exchanges.discard(name)

    async def delete(self, queue: str) -> None:
        """Delete ``queue`` and its dead-letter queue, messages included."""
        async with self._open() as ch:
            await ch.queue_delete(queue)
            await ch.queue_delete(dead_queue(queue))
        self.forget(queue)

    async def message_count(self, queue: str) -> int:
        """Ready messages in ``queue``; 0 when it does not exist (nothing is created)."""
        try:
            async with self._open() as ch:
                ok = await ch.queue_declare(queue, passive=True)
        except ChannelNotFoundEntity:
            return 0
        return int(ok.message_count or 0)


@contextlib.asynccontextmanager
async def _refusals(what: str) -> AsyncIterator[None]:
    try:
        yield
    except ChannelPreconditionFailed as exc:
        raise ConfigurationError(
            f"RabbitMQ refused {what}: {exc}. It exists with other settings "
            "(queue type, dead-letter or priority arguments): delete it or match them"
        ) from None
