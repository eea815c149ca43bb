"""The consuming side of the Redis Streams broker."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as rexc

from asyncq import _redis, codec
from asyncq.brokers import DEAD_LETTER_MAX, Consumer, DeadItem, Delivery, Settlement
from asyncq.brokers.redis._keys import (
    dead_key,
    level_delayed_key,
    level_key,
    levels_key,
    stream_key,
)
from asyncq.brokers.redis._levels import (
    Levels,
    by_stream,
    delivery_for,
    ids_by_stream,
    stream_of,
)
from asyncq.brokers.redis._wake import Reader, Waker

__all__ = ["RedisConsumer"]

logger = logging.getLogger("asyncq.brokers.redis")

CHUNK = 500
#: Record bytes one settle call carries at most (one larger record alone): what a call
#: publishes reaches a subscriber's output buffer at once, and Redis cuts a subscriber
#: off past 32 MB of it (``client-output-buffer-limit pubsub``).
SETTLE_BYTES = 1 << 20
PROMOTE_INTERVAL = 0.25


def _streams_of(reply: Any) -> Any:
    """The (stream, entries) pairs of an XREADGROUP reply: a map in RESP3, a list in RESP2."""
    if not reply:
        return ()
    return reply.items() if isinstance(reply, dict) else reply


def _fields(fields: list[bytes] | None) -> tuple[bytes, int]:
    """One entry's payload and its deliveries before a hand-back, from its flat fields."""
    if fields and len(fields) == 2 and fields[0] == b"d":
        return fields[1], 0  # as publish.lua writes it
    found = dict(zip(fields[::2], fields[1::2], strict=False)) if fields else {}
    return found.get(b"d", b""), _earlier(found)


def _earlier(fields: dict[bytes, bytes]) -> int:
    """Deliveries before the entry was handed back (requeue.lua's field ``n``)."""
    raw = fields.get(b"n")
    try:
        return max(0, int(raw)) if raw else 0
    except ValueError:  # not written by requeue.lua: count from here
        return 0


def _consumer_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


class RedisConsumer(Consumer):
    """Reads with XREADGROUP, recovers crashed peers' entries with XAUTOCLAIM."""

    #: whether a blocked read can be ended at once on stop (:mod:`._wake`)
    wakeable = True
    fetch_is_a_round_trip = True

    def __init__(self, client: aioredis.Redis, scripts: dict[str, Any], url: str,
                 queues: list[str], *, group: str, lease: float) -> None:
        self._client = client
        self._scripts = scripts
        self._url = url
        self._reader = self._make_reader(client)
        self._waker = Waker(self._reader, client) if self.wakeable else None
        self._queues = queues
        self._streams = {stream_key(q): q for q in queues}
        #: every stream read since the start (and its queue), also of dropped queues:
        #: a read in progress may still bring their entries, close() sweeps them all
        self._known = dict(self._streams)
        self._group = group
        self._lease_ms = max(1, int(lease * 1000))
        self._name = _consumer_name()
        self._ready = False
        self._woken = False
        self._next_promote = 0.0
        self._next_reclaim = 0.0
        self._cursors: dict[str, str] = {}
        self._levels = Levels()
        self._level_streams: set[str] = set()
        self.server_id = self._server_of(url)
        self.max_deliveries_seen = 0
        #: dead letters kept per queue (XADD MAXLEN ~): the broker sets it
        self.dead_letter_max = DEAD_LETTER_MAX
        #: settles wait for replicas (``wait_replicas``): the broker sets it
        self.replication: _redis.Replication | None = None

    @staticmethod
    def _server_of(url: str) -> str | None:
        """The server (and database) the consumer settles on, for fused settles."""
        return _redis.server_id(url)

    def _make_reader(self, client: Any) -> Any:
        """A client of its own on the broker's pool, whose XREADGROUP replies are left
        as they come: redis-py would build a dict per entry (9% of a profiled drain).
        It keeps one connection, whose blocked read :meth:`wake` can end (:mod:`._wake`)."""
        reader = Reader(connection_pool=client.connection_pool, single_connection_client=True)
        reader.set_response_callback("XREADGROUP", _as_is)
        return reader

    async def _xread(self, streams: dict[str, str], count: int, block_ms: int | None) -> Any:
        """XREADGROUP of ``streams``: the (stream, entries) pairs read."""
        read = self._waker.xreadgroup if block_ms and self._waker else self._reader.xreadgroup
        reply: Any = await read(self._group, self._name, streams, count=count, block=block_ms)
        return _streams_of(reply)

    # -- setup ---------------------------------------------------------------------
    async def _ensure_groups(self) -> None:
        if self._ready:
            return
        for stream in list(self._streams):
            try:
                await self._client.xgroup_create(stream, self._group, id="0", mkstream=True)
            except rexc.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._ready = True

    async def start(self) -> None:
        with _redis.mapped_errors("Redis broker", self._url):
            await self._ensure_groups()

    # -- fetching ------------------------------------------------------------------
    async def fetch(self, limit: int, timeout: float) -> Sequence[Delivery]:
        with _redis.mapped_errors("Redis broker", self._url):
            try:
                return await self._fetch(limit, timeout)
            except rexc.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self._ready = False  # the stream or group was deleted under us
                return []

    async def _fetch(self, limit: int, timeout: float) -> Sequence[Delivery]:
        await self._ensure_groups()
        now = time.monotonic()
        if now >= self._next_promote:
            self._next_promote = now + PROMOTE_INTERVAL
            await self._promote()
        if now >= self._next_reclaim:
            reclaimed = await self._reclaim()
            # after a find, look again at once: a dead worker's messages come back one by one
            self._next_reclaim = now if reclaimed else now + self._lease_ms / 2000
            if reclaimed:
                return reclaimed
        woken, self._woken = self._woken, False  # (a later fetch blocks again)
        block = 0.0 if woken else min(timeout, max(0.0, self._next_promote - time.monotonic()))
        if self._level_streams:
            return await self._read_levels(limit, block)
        return await self._read(limit, block)

    async def _read(self, limit: int, block: float) -> list[Delivery]:
        per_stream = max(1, limit // len(self._streams))
        block_ms = int(block * 1000)
        pairs = await self._xread(dict.fromkeys(self._streams, ">"), per_stream,
                                  block_ms if block_ms > 0 else None)
        out: list[Delivery] = []
        for stream, entries in pairs:
            queue = self._known[_redis_text(stream)]
            for entry_id, fields in entries:
                if fields and len(fields) == 2 and fields[0] == b"d":  # as publish.lua writes
                    out.append(Delivery(fields[1], queue, 1, entry_id))
                else:
                    body, earlier = _fields(fields)
                    out.append(Delivery(body, queue, earlier + 1, entry_id))
        return out

    async def _read_levels(self, limit: int, block: float) -> list[Delivery]:
        """The read of queues with priority levels: highest level first, then a
        blocking read of every stream when all are empty."""
        queues = list(self._queues)  # a queue may be dropped while the script runs
        per_queue = max(1, limit // len(queues))
        batch = _redis.ScriptBatch(self._client)
        for queue in queues:
            batch.script(self._scripts["read_levels"], self._levels.streams(queue),
                         [self._group, self._name, per_queue])
        out: list[Delivery] = []
        for queue, entries in zip(queues, await batch.execute(), strict=True):
            for stream, entry_id, fields in entries:
                body, earlier = _fields(fields)
                out.append(delivery_for(_redis_text(stream), queue, body, earlier + 1,
                                        entry_id))
        if out or block <= 0:
            return out
        pairs = await self._xread(dict.fromkeys(self._streams, ">"),
                                  max(1, limit // len(self._streams)), max(1, int(block * 1000)))
        for stream, entries in pairs:
            key = _redis_text(stream)
            for entry_id, fields in entries:
                body, earlier = _fields(fields)
                out.append(delivery_for(key, self._known[key], body, earlier + 1,
                                        entry_id))
        return out

    def wake(self) -> None:
        """A read not sent yet does not block; one blocking on the server is ended there
        by CLIENT UNBLOCK, never cancelled here: what it read could be lost (:mod:`._wake`)."""
        self._woken = True
        if self._waker is not None:
            self._waker.wake()

    async def _promote(self) -> None:
        """Move due delayed messages into their streams; look for new priority levels."""
        now_ms = int(time.time() * 1000)
        queues = list(self._queues)  # a queue may be dropped or added meanwhile
        batch = _redis.ScriptBatch(self._client)
        for queue in queues:
            for level in (*self._levels.known(queue), 0):
                batch.script(self._scripts["promote"], [level_delayed_key(queue, level),
                                                         level_key(queue, level)],
                             [now_ms, 1000])
            batch.pipe.smembers(levels_key(queue))
        replies = await batch.execute()
        position = 0
        for queue in queues:
            position += len(self._levels.known(queue)) + 1
            await self._update_levels(queue, replies[position])
            position += 1

    async def _update_levels(self, queue: str, members: Any) -> None:
        """Join the priority streams of ``queue`` the server lists and we do not read yet."""
        for stream in self._levels.update(queue, members):
            await self._join(stream)
            if queue not in self._queues:  # dropped meanwhile
                return
            self._streams[stream] = self._known[stream] = queue
            self._level_streams.add(stream)
            await self._scripts["promote"](  # its due delayed messages, before any read
                keys=[f"{stream}:delayed", stream], args=[int(time.time() * 1000), 1000])

    async def _join(self, stream: str) -> None:
        try:
            await self._client.xgroup_create(stream, self._group, id="0", mkstream=True)
        except rexc.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _reclaim(self) -> list[Delivery]:
        """One message whose lease expired, if any (it may be what killed its worker)."""
        for stream, queue in list(self._streams.items()):
            cursor = self._cursors.get(stream, "0-0")
            reply = await self._client.xautoclaim(
                stream, self._group, self._name, self._lease_ms, cursor, count=1)
            self._cursors[stream] = _redis_text(reply[0])
            entries = [e for e in reply[1] if e and e[1] is not None]
            if entries:
                entry_id, fields = entries[0]
                counts = await self._delivery_counts(stream, [entry_id])
                count = _earlier(fields) + counts.get(entry_id, 2)
                logger.warning("recovered a message from a worker whose lease expired "
                               "(delivery %d)", count)
                return [delivery_for(stream, queue, fields.get(b"d", b""), count, entry_id)]
        return []

    async def _delivery_counts(self, stream: str, ids: list[Any]) -> dict[Any, int]:
        rows = await self._client.xpending_range(
            stream, self._group, min=ids[0], max=ids[-1], count=len(ids) * 2,
            consumername=self._name,
        )
        return {row["message_id"]: int(row["times_delivered"]) for row in rows}

    # -- settling ------------------------------------------------------------------
    async def ack(self, items: Sequence[Settlement]) -> None:
        streams = by_stream(items)
        with _redis.mapped_errors("Redis broker", self._url):
            batch = _redis.ScriptBatch(self._client, self.replication)
            for stream, group in streams.items():
                for start in range(0, len(group), CHUNK):
                    self._queue_settle(batch, stream, group[start : start + CHUNK])
            await batch.execute()

    def _queue_settle(self, batch: _redis.ScriptBatch, stream: str,
                      items: list[Settlement]) -> None:
        """One settle.lua call for ``items``; two halves for more than
        :data:`SETTLE_BYTES` of records (a record larger than that alone)."""
        keys = [stream]
        flat: list[Any] = []
        ttl, ttl_text, size = -1, "", 0  # a TTL as text: Redis formats a Lua number per call
        for item in items:
            write = item.write
            if write is not None:
                keys.append(write.key)
                if write.ttl_ms != ttl:
                    ttl, ttl_text = write.ttl_ms, str(write.ttl_ms)
                flat += (ttl_text, write.final, write.channel or "", write.reply or "",
                         write.value)
                size += len(write.value)
        if size > SETTLE_BYTES and len(items) > 1:
            half = len(items) // 2
            self._queue_settle(batch, stream, items[:half])
            self._queue_settle(batch, stream, items[half:])
            return
        blob = codec.dumps_for_lua([[item.delivery.tag for item in items], flat])
        batch.script(self._scripts["settle"], keys, [self._group, blob])

    async def requeue(self, deliveries: Sequence[Delivery], *, counted: bool = False) -> None:
        with _redis.mapped_errors("Redis broker", self._url):
            for stream, ids in ids_by_stream(deliveries).items():
                await self._requeue_ids(stream, ids, counted)

    async def _requeue_ids(self, stream: str, ids: list[Any], counted: bool) -> None:
        for start in range(0, len(ids), CHUNK):
            await self._scripts["requeue"](
                keys=[stream], args=[self._group, int(counted), *ids[start : start + CHUNK]]
            )

    async def dead_letter(self, items: Sequence[DeadItem]) -> None:
        with _redis.mapped_errors("Redis broker", self._url):
            batch = _redis.ScriptBatch(self._client, self.replication)
            for item in items:
                self._queue_dead(batch, item)
            await batch.execute()

    def _queue_dead(self, batch: _redis.ScriptBatch, item: DeadItem) -> None:
        d = item.delivery
        keys = [stream_of(d), dead_key(d.queue)]
        args: list[Any] = [self._group, d.tag, d.body, item.reason, item.task_id or "",
                           item.task or "", d.delivery_count, f"{time.time():.3f}",
                           self.dead_letter_max]
        if item.write is not None:
            keys.append(item.write.key)
            args.extend([item.write.ttl_ms, item.write.channel or "", item.write.value,
                         item.write.reply or ""])
        batch.script(self._scripts["dead"], keys, args)

    async def renew(self, deliveries: Sequence[Delivery]) -> None:
        with _redis.mapped_errors("Redis broker", self._url):
            async with self._client.pipeline(transaction=False) as pipe:
                for stream, ids in ids_by_stream(deliveries).items():
                    for start in range(0, len(ids), CHUNK):
                        pipe.xclaim(stream, self._group, self._name, 0,
                                    ids[start : start + CHUNK], justid=True)
                await pipe.execute()

    async def cancel_queue(self, queue: str) -> None:
        """Read ``queue``'s streams no more (its entries held here are settled as usual;
        a read in progress may still bring some: the worker hands them back)."""
        if queue in self._queues:
            self._queues.remove(queue)
        for stream in [s for s, q in self._streams.items() if q == queue]:
            del self._streams[stream]
            self._level_streams.discard(stream)
        self._levels.forget(queue)

    async def add_queue(self, queue: str) -> None:
        if queue in self._queues:
            return
        stream = stream_key(queue)
        with _redis.mapped_errors("Redis broker", self._url):
            await self._join(stream)
        self._queues.append(queue)
        self._streams[stream] = self._known[stream] = queue
        self._next_promote = 0.0  # its delayed messages and priority levels, at once

    async def close(self) -> None:
        """Hand back whatever this consumer still holds, then leave the group."""
        try:
            if self._ready:
                with _redis.mapped_errors("Redis broker", self._url):
                    for stream in list(self._known):
                        await self._sweep(stream)
        finally:
            if self._waker is not None:
                await self._waker.close()

    async def _sweep(self, stream: str) -> None:
        while True:
            rows = await self._client.xpending_range(
                stream, self._group, min="-", max="+", count=CHUNK, consumername=self._name
            )
            if not rows:
                break
            await self._requeue_ids(stream, [row["message_id"] for row in rows], False)
        await self._client.xgroup_delconsumer(stream, self._group, self._name)


def _as_is(response: Any, **options: Any) -> Any:
    return response


def _redis_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
