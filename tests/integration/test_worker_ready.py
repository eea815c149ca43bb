"""A worker consumes once it says it is ready: the consumer group exists (Redis) and the
queue has its consumer (RabbitMQ) when ``Worker`` has started (the CLI's "ready" line
and ready file follow the same event)."""

from __future__ import annotations

from collections.abc import Callable

import redis.asyncio as aioredis

import asyncq
from asyncq.brokers import WORKER_GROUP
from asyncq.brokers.redis._keys import stream_key


async def test_a_started_redis_worker_has_its_consumer_group(
        redis_url: str, redis_aio: aioredis.Redis, unique: Callable[[str], str],
        redis_cleanup: Callable[[str], None]) -> None:
    queue = unique("ready")
    redis_cleanup(queue)
    app = asyncq.App(unique("ready"), broker=redis_url, default_queue=queue)
    async with app:
        async with asyncq.Worker(app, concurrency=1):
            groups = await redis_aio.xinfo_groups(stream_key(queue))
            assert [g["name"] for g in groups] == [WORKER_GROUP.encode()]
        await app.broker.delete_queue(queue)  # (after the App closed, it left a client open)


async def test_a_started_rabbitmq_worker_is_a_consumer_of_its_queue(
        amqp_url: str, redis_url: str, unique: Callable[[str], str]) -> None:
    queue = unique("ready")
    app = asyncq.App(unique("ready"), broker=amqp_url, backend=redis_url, default_queue=queue)
    async with app:
        try:
            async with asyncq.Worker(app, concurrency=1):
                async with app.broker.raw_channel() as channel:  # type: ignore[attr-defined]
                    declared = await channel.queue_declare(queue, passive=True)
                assert declared.consumer_count == 1
        finally:
            await app.broker.delete_queue(queue)
