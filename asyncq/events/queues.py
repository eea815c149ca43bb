"""Queue depths and purging, per broker, for ``asyncq queues``, ``purge``, the metrics
and the dashboard.

What each broker can say (``None`` where it cannot):

=========  =======  =========  =========  ====  =========
broker     waiting  scheduled  in flight  dead  consumers
=========  =======  =========  =========  ====  =========
Redis      yes      yes        yes        yes   yes (names the group has seen)
RabbitMQ   yes      no         no         yes   yes
memory     yes      yes        no         yes   no
=========  =======  =========  =========  ====  =========
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from asyncq.events import broker_kind

if TYPE_CHECKING:
    from asyncq.app import App

__all__ = ["Depth", "purge_queue", "queue_depths"]


@dataclass(frozen=True, slots=True)
class Depth:
    waiting: int
    scheduled: int | None = None
    in_flight: int | None = None
    dead: int | None = None
    consumers: int | None = None

    def as_dict(self) -> dict[str, int | None]:
        return asdict(self)

    def as_counts(self) -> dict[str, int]:
        """The states the broker could count (for metrics)."""
        return {k: v for k, v in asdict(self).items() if v is not None and k != "consumers"}


async def queue_depths(app: App, queues: Sequence[str]) -> dict[str, Depth]:
    await app.connect()
    broker: Any = app.broker
    kind = broker_kind(broker)
    out: dict[str, Depth] = {}
    for queue in queues:
        if kind == "redis":
            out[queue] = await _redis_depth(broker, queue)
        elif kind == "amqp":
            out[queue] = await _amqp_depth(broker, queue)
        elif kind == "memory":
            out[queue] = Depth(await broker.queue_size(queue),
                               await broker.scheduled_size(queue),
                               dead=len(await broker.dead_letters(queue, 1_000_000)))
        else:
            out[queue] = Depth(await broker.queue_size(queue),
                               await broker.scheduled_size(queue))
    return out


async def _redis_depth(broker: Any, queue: str) -> Depth:
    from redis import exceptions as rexc

    from asyncq.brokers import WORKER_GROUP
    from asyncq.brokers.redis import dead_key, delayed_key, stream_key

    client = broker.client
    stream = stream_key(queue)
    in_flight = consumers = 0
    try:
        groups: Any = await client.xinfo_groups(stream)
    except rexc.ResponseError:  # no stream yet
        groups = []
    for group in groups:
        name = group.get("name")
        if name in (WORKER_GROUP, WORKER_GROUP.encode()):
            in_flight, consumers = int(group.get("pending", 0)), int(group.get("consumers", 0))
    length = int(await client.xlen(stream))
    return Depth(max(0, length - in_flight), int(await client.zcard(delayed_key(queue))),
                 in_flight, int(await client.xlen(dead_key(queue))), consumers)


async def _amqp_depth(broker: Any, queue: str) -> Depth:
    from aiormq.exceptions import ChannelNotFoundEntity

    async def declare(name: str) -> tuple[int, int]:
        try:
            async with broker.raw_channel() as channel:
                ok = await channel.queue_declare(name, passive=True)
        except ChannelNotFoundEntity:
            return 0, 0
        return int(ok.message_count or 0), int(ok.consumer_count or 0)

    waiting, consumers = await declare(queue)
    dead, _ = await declare(f"{queue}.dead")  # the broker's dead-letter queue name
    return Depth(waiting, dead=dead, consumers=consumers)


async def purge_queue(app: App, queue: str) -> int:
    """Delete the messages waiting in ``queue`` (and its delayed ones where the broker
    keeps them per queue); running and dead-lettered messages are kept."""
    await app.connect()
    broker: Any = app.broker
    kind = broker_kind(broker)
    if kind == "redis":
        from asyncq import _redis
        from asyncq.brokers import WORKER_GROUP
        from asyncq.brokers.redis import delayed_key, stream_key

        script = broker.client.register_script(_redis.load_lua("asyncq.events", "purge"))
        return int(await script(keys=[stream_key(queue), delayed_key(queue)],
                                args=[WORKER_GROUP]))
    if kind == "amqp":
        from aiormq.exceptions import ChannelNotFoundEntity

        try:
            async with broker.raw_channel() as channel:
                ok = await channel.queue_purge(queue)
        except ChannelNotFoundEntity:
            return 0
        return int(ok.message_count or 0)
    if kind == "memory":
        waiting = int(await broker.queue_size(queue))
        hub = broker._hub  # the memory broker's own state (same package family)
        hub.queue(queue).clear()
        delayed = [e for e in hub.delayed if e[2] == queue]
        hub.delayed = [e for e in hub.delayed if e[2] != queue]
        import heapq

        heapq.heapify(hub.delayed)
        return waiting + len(delayed)
    raise NotImplementedError(f"purge is not supported on {type(broker).__name__}")
