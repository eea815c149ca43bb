"""Redis Streams broker.

Layout (every key of a queue shares the ``{queue}`` hash tag)::

    asyncq:{queue}:stream    entries with field d = message bytes; one consumer group, "asyncq"
    asyncq:{queue}:delayed   sorted set of message bytes scored by due time (ms)
    asyncq:{queue}:p<N>      the stream of priority N (1-9), and p<N>:delayed its delayed set
    asyncq:{queue}:levels    the priority levels in use (see _levels.py)
    asyncq:{queue}:dead      dead-letter stream (d, reason, id, task, deliveries, at),
                             capped at ``dead_letter_max`` entries (XADD MAXLEN ~: the
                             oldest go first; Redis trims in whole nodes, so a few more
                             may stay)

Acked entries are deleted in the script that acks them: settle.lua trims them from the
head (XTRIM MINID to the oldest entry the group still needs, so never a pending or
waiting one) and XDELs the rest; nothing else trims a stream.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as rexc

from asyncq import _redis, codec
from asyncq._batch import Coalescer, raise_first, runs_by_size
from asyncq._urls import mask_url
from asyncq.brokers import (
    DEAD_LETTER_MAX,
    WORKER_GROUP,
    Broker,
    Consumer,
    DeadLetter,
    Outgoing,
)
from asyncq.brokers.redis._consumer import RedisConsumer
from asyncq.brokers.redis._keys import (
    LEVELS,
    dead_key,
    delayed_key,
    level_delayed_key,
    level_key,
    levels_key,
    stream_key,
)
from asyncq.brokers.redis._levels import level_of
from asyncq.errors import BrokerError, BrokerUnavailable, ConfigurationError

__all__ = ["RedisBroker", "dead_key", "delayed_key", "stream_key"]


_STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")
_SCRIPTS = ("publish", "settle", "dead", "requeue", "promote", "undead", "read_levels")


class RedisBroker(Broker):
    """Redis Streams transport (``redis://``, ``rediss://`` or ``redis+sentinel://``)."""

    _consumer_class: type[RedisConsumer] = RedisConsumer

    def __init__(self, url: str, *, publish_timeout: float = 10.0,
                 dead_letter_max: int = DEAD_LETTER_MAX) -> None:
        super().__init__(url)
        self.publish_timeout = publish_timeout
        if dead_letter_max < 1:
            raise ConfigurationError("dead_letter_max must be at least 1")
        self.dead_letter_max = dead_letter_max
        self.client: aioredis.Redis = self._make_client(url)
        self.server_id = self._consumer_class._server_of(url)
        #: ``?wait_replicas=N``: publishes and settles wait for N replicas
        self.replication = _redis.replication_of(url)
        self.scripts = {
            name: self.client.register_script(_redis.load_lua(__name__, name))
            for name in _SCRIPTS
        }
        self._publisher: Coalescer[Outgoing, None] = Coalescer(
            self._publish_batch, closed=lambda: BrokerUnavailable(
                f"Redis broker at {mask_url(url)} closed before the message was sent"))

    def _make_client(self, url: str) -> aioredis.Redis:
        return _redis.make_client(url)

    async def close(self) -> None:
        await self._publisher.aclose()
        await self.client.aclose()

    async def ping(self) -> None:
        with _redis.mapped_errors("Redis broker", self.url):
            await self.client.ping()

    async def safety_warnings(self) -> list[str]:
        try:
            reply: dict[Any, Any] = await self.client.config_get("maxmemory-policy")
        except Exception:  # CONFIG may be disabled on managed Redis: nothing to say
            return []
        policy = _text(reply.get(b"maxmemory-policy") or reply.get("maxmemory-policy") or "")
        if policy.startswith("allkeys-"):
            return [f"Redis maxmemory-policy is {policy}: under memory pressure Redis may "
                    "evict queued tasks; set it to noeviction (or a volatile-* policy)"]
        return []

    def publish(self, message: Outgoing) -> asyncio.Future[None]:
        """The future of the batch ``message`` goes in (no coroutine per message)."""
        return self._publisher.future(message)

    async def publish_many(self, messages: Sequence[Outgoing]) -> None:
        with _redis.mapped_errors("Redis broker", self.url):
            for start in range(0, len(messages), 1000):
                raise_first(await self._flush(messages[start : start + 1000]))

    async def _publish_batch(self, batch: Sequence[Outgoing]
                             ) -> Sequence[BaseException | None]:
        """:meth:`_flush` for the coalescer of :meth:`publish`: connection failures are
        BrokerUnavailable (what publish_many's callers get too)."""
        try:
            outcomes = await self._flush(batch)
        except _redis.connection_errors as exc:
            raise _redis.unavailable("Redis broker", self.url, exc) from None
        if any(outcomes):
            return [self._mapped(outcome) for outcome in outcomes]
        return outcomes

    def _mapped(self, outcome: BaseException | None) -> BaseException | None:
        if isinstance(outcome, _redis.connection_errors):
            return _redis.unavailable("Redis broker", self.url, outcome)
        return outcome

    async def _flush(self, batch: Sequence[Outgoing]) -> Sequence[BaseException | None]:
        """One command per stream (a script appends all its bodies) and per delay set."""
        out: list[BaseException | None] = [None] * len(batch)
        groups, scores = _group(batch, out)
        batch_ = _redis.ScriptBatch(self.client, self.replication)
        owners: list[Sequence[int]] = []  # per command: the messages it carries
        for (delayed, queue, priority), indexes in groups.items():
            level = level_of(priority)
            if level:  # a priority stream: make it known to consumers
                batch_.pipe.sadd(levels_key(queue), level)
                owners.append(indexes)
            if delayed:
                batch_.pipe.zadd(level_delayed_key(queue, level),
                                 {batch[i].body: scores[i] for i in indexes})
                owners.append(indexes)
                continue
            bodies = [batch[i].body for i in indexes]
            for run in _runs(bodies):
                batch_.script(self.scripts["publish"], [level_key(queue, level)],
                              [codec.dumps_for_lua(bodies[run])])
                owners.append(indexes[run])
        if not owners:
            return out
        async with asyncio.timeout(self.publish_timeout):
            replies = await batch_.execute(raise_on_error=False)
        for indexes, reply in zip(owners, replies, strict=True):
            if isinstance(reply, BaseException):
                for i in indexes:
                    out[i] = reply
        return out

    def consumer(
        self, queues: Sequence[str], *, prefetch: int, lease: float, group: str = WORKER_GROUP
    ) -> Consumer:
        consumer = self._consumer_class(self.client, self.scripts, self.url, list(queues),
                                        group=group, lease=lease)
        consumer.dead_letter_max = self.dead_letter_max
        consumer.replication = self.replication
        return consumer

    async def queue_size(self, queue: str) -> int:
        """Entries not yet delivered to a worker, at every priority level."""
        total = await self._stream_size(stream_key(queue))
        for level in await self._levels(queue):
            total += await self._stream_size(level_key(queue, level))
        return total

    async def _levels(self, queue: str) -> list[int]:
        with _redis.mapped_errors("Redis broker", self.url):
            members = await self.client.smembers(levels_key(queue))
        return [int(m) for m in members if m.isdigit() and int(m) in LEVELS and int(m) > 0]

    async def _stream_size(self, stream: str) -> int:
        """Entries in a stream not yet delivered to a worker (acked ones are deleted)."""
        with _redis.mapped_errors("Redis broker", self.url):
            length = int(await self.client.xlen(stream))
            if length == 0:
                return 0
            try:
                in_flight = int((await self.client.xpending(stream, WORKER_GROUP))["pending"])
            except rexc.ResponseError:  # no worker has joined yet: nothing is in flight
                in_flight = 0
            return max(0, length - in_flight)

    async def scheduled_size(self, queue: str) -> int:
        levels = [0, *await self._levels(queue)]
        with _redis.mapped_errors("Redis broker", self.url):
            return sum([int(await self.client.zcard(level_delayed_key(queue, level)))
                        for level in levels])

    async def delete_queue(self, queue: str) -> None:
        levels = await self._levels(queue)
        with _redis.mapped_errors("Redis broker", self.url):
            await self.client.delete(stream_key(queue), delayed_key(queue), dead_key(queue),
                                     levels_key(queue),
                                     *(level_key(queue, level) for level in levels),
                                     *(level_delayed_key(queue, level) for level in levels))

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        with _redis.mapped_errors("Redis broker", self.url):
            entries: Any = await self.client.xrange(dead_key(queue), count=limit)
        letters = [_dead_letter(queue, ref, fields) for ref, fields in entries]
        for letter in letters:
            letter.extra["dead_letter_max"] = self.dead_letter_max
        return letters

    async def purge_dead(self, queue: str) -> int:
        with _redis.mapped_errors("Redis broker", self.url):
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.xlen(dead_key(queue))
                pipe.delete(dead_key(queue))
                count, _ = await pipe.execute()
        return int(count)

    async def requeue_dead(self, queue: str, refs: Sequence[str]) -> int:
        if not refs:
            return 0
        bad = [ref for ref in refs if not _STREAM_ID.fullmatch(ref)]
        if bad:
            raise BrokerError(f"not dead-letter references: {', '.join(map(repr, bad))}")
        with _redis.mapped_errors("Redis broker", self.url):
            moved = await self.scripts["undead"](
                keys=[dead_key(queue), stream_key(queue)], args=list(refs)
            )
        return int(moved)


#: bytes of message bodies per publish.lua call (Redis caps one argument at 512 MB)
_BLOB_BYTES = 4 * 1024 * 1024


def _group(batch: Sequence[Outgoing], out: list[BaseException | None]
           ) -> tuple[Mapping[tuple[bool, str, int | None], Sequence[int]], dict[int, int]]:
    """Message positions by (delayed, queue, priority), and the delayed ones' scores; a
    message that cannot be sent gets its error in ``out`` and fails alone, never its
    neighbours."""
    if not batch:
        return {}, {}
    queue, priority = batch[0].queue, batch[0].priority
    for message in batch:  # the common case first: one queue, one priority, none delayed
        if (message.eta is not None or message.queue != queue
                or message.priority != priority or type(message.body) is not bytes):
            break
    else:
        return {(False, queue, priority): range(len(batch))}, {}
    now = time.time()
    groups: dict[tuple[bool, str, int | None], list[int]] = {}
    scores: dict[int, int] = {}
    for index, message in enumerate(batch):
        if message.eta is None and type(message.body) is bytes:
            groups.setdefault((False, message.queue, message.priority), []).append(index)
            continue
        try:
            score = scores[index] = _score(message, now)
        except (ValueError, TypeError, OverflowError) as exc:
            out[index] = ValueError(f"message {message.id}: {exc}")
            continue
        groups.setdefault((score > 0, message.queue, message.priority), []).append(index)
    return groups, scores


def _runs(bodies: list[bytes]) -> list[slice]:
    """``bodies`` cut into runs of at most :data:`_BLOB_BYTES` (one script call each)."""
    if sum(map(len, bodies)) <= _BLOB_BYTES:
        return [slice(0, len(bodies))]
    return runs_by_size([len(body) for body in bodies], _BLOB_BYTES)


def _score(message: Outgoing, now: float) -> int:
    """The delayed set's score (ms) of a message due later, 0 for one due now.

    Raises for an eta that is not a finite number (the producer checks it first; an
    Outgoing built elsewhere may still carry one)."""
    if type(message.body) is not bytes:
        raise TypeError("the body is not bytes")
    if message.eta is None:
        return 0
    if not math.isfinite(message.eta):
        raise ValueError(f"eta {message.eta!r} is not a finite unix time")
    return int(message.eta * 1000) if message.eta > now else 0


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _dead_letter(queue: str, ref: Any, fields: dict[bytes, bytes]) -> DeadLetter:
    def field(name: str) -> str | None:
        raw = fields.get(name.encode())
        return None if raw is None or raw == b"" else _text(raw)

    return DeadLetter(
        ref=_text(ref),
        queue=queue,
        body=fields.get(b"d", b""),
        reason=field("reason") or "",
        task_id=field("id"),
        task=field("task"),
        deliveries=int(_number(field("deliveries"))),
        dead_at=_number(field("at")),
        extra={"source_entry": field("src")},
    )


def _number(text: str | None) -> float:
    """A numeric field of a dead letter, 0 when missing or not a finite number (anyone
    who can write to Redis can write these)."""
    try:
        value = float(text or 0)
    except ValueError:
        return 0
    return value if math.isfinite(value) else 0
