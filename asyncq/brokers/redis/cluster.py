"""Redis Streams on a Redis Cluster (``redis+cluster://host:port,host:port``).

The layout is the single-node one (see :mod:`asyncq.brokers.redis`): every key of a
queue carries the ``{queue}`` hash tag, so a queue's streams, delayed sets and dead
letters live in one slot and every script touches that slot only, while different
queues spread over the shards. What changes on a cluster:

- **Settling is two steps.** A result key (``asyncq:result:{<task id>}``) hashes by
  its task id, so it is rarely in the queue's slot: the worker stores the results
  first (redis-py groups the writes by node, one pipeline per node, each write under
  first-final-writer-wins) and acks second. A crash in between redelivers a message
  whose result is already stored; it runs again (at-least-once) and its second result
  gives way to the first. The consumer's ``server_id`` is ``None`` for that reason.
- **Reads are per slot.** One XREADGROUP may name streams of one slot only, so a
  worker of several queues in different slots reads each slot's streams with a
  command of its own, concurrently: first without blocking, and only when all came
  back empty with a blocking read each (for at most the 0.25 s between promotions of
  delayed messages, so a message on an idle worker may wait that long).
- **Slot moves are followed by redis-py** (MOVED and ASK, with a refresh of the slot
  map); a script keeps to one slot, which is what a migrating slot allows. A read
  blocked on a stream whose slot moves away ends with ``UNBLOCKED``: an empty read,
  and the next one goes to the new owner.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis import exceptions as rexc
from redis.crc import key_slot

from asyncq import _redis_cluster
from asyncq.brokers.redis import RedisBroker
from asyncq.brokers.redis._consumer import RedisConsumer, _as_is

__all__ = ["RedisClusterBroker"]


class RedisClusterConsumer(RedisConsumer):
    """A consumer whose reads keep to one slot per command."""

    wakeable = False  # its reads go to several nodes: each ends within its BLOCK

    @staticmethod
    def _server_of(url: str) -> str | None:
        return None  # results live in other slots: never settled in the ack's script

    def _make_reader(self, client: Any) -> Any:
        reader = _redis_cluster.make_cluster_client(self._url)
        reader.set_response_callback("XREADGROUP", _as_is)
        return reader

    async def _xread(self, streams: dict[str, str], count: int, block_ms: int | None) -> Any:
        by_slot: dict[int, dict[str, str]] = {}
        for stream, position in streams.items():
            by_slot.setdefault(key_slot(stream.encode()), {})[stream] = position
        if len(by_slot) == 1:
            return await self._read_slot(streams, count, block_ms)
        # without blocking first: one slot's blocked read would hold back the others'
        pairs = await self._read_slots(by_slot, count, None)
        if block_ms is None or any(entries for _, entries in pairs):
            return pairs
        return await self._read_slots(by_slot, count, block_ms)

    async def _read_slots(
        self, by_slot: dict[int, dict[str, str]], count: int, block_ms: int | None
    ) -> list[Any]:
        replies = await asyncio.gather(
            *(self._read_slot(group, count, block_ms) for group in by_slot.values())
        )
        return [pair for reply in replies for pair in reply]

    async def _read_slot(self, streams: dict[str, str], count: int, block_ms: int | None) -> Any:
        try:
            return await super()._xread(streams, count, block_ms)
        except rexc.ResponseError as exc:
            if "UNBLOCKED" in str(exc):  # the slot moved away under a blocked read
                return []  # the next read follows the slot (MOVED)
            raise

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            await self._reader.aclose()


class RedisClusterBroker(RedisBroker):
    """Redis Streams transport over a Redis Cluster (seed nodes in the URL)."""

    _consumer_class = RedisClusterConsumer

    def _make_client(self, url: str) -> Any:
        return _redis_cluster.make_cluster_client(url)

    async def safety_warnings(self) -> list[str]:
        try:
            replies: dict[Any, Any] = await self.client.config_get(
                "maxmemory-policy", target_nodes="primaries"
            )
        except Exception:  # CONFIG may be disabled on managed Redis: nothing to say
            return []
        warnings: list[str] = []
        for node, reply in replies.items():
            policy = (
                _text(reply.get(b"maxmemory-policy") or reply.get("maxmemory-policy") or "")
                if isinstance(reply, dict)
                else ""
            )
            if policy.startswith("allkeys-"):
                warnings.append(
                    f"Redis maxmemory-policy of {node} is {policy}: under memory "
                    "pressure it may evict queued tasks; set it to noeviction"
                )
        return warnings


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
