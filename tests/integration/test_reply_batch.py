"""The records a script stores for one process's tasks reach it as one message.

A listener that reads batches subscribes the reply channel ``asyncq:reply:<token>`` and
its twin ``asyncq:replies:<token>``. A script that stored many records for that token
(a worker's settle, a batch of ``store_writes``) publishes them to the twin as one
msgpack array; only when nobody there received it (a listener of an older asyncq
subscribes the reply channel alone) does it publish each record as ``key value`` on
the reply channel, and that only when someone listens there.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
import redis.asyncio as aioredis

import asyncq
from asyncq.records import REPLY_BATCH_PREFIX, REPLY_PREFIX, reply_twin
from asyncq.results.redis import RedisResultBackend, result_key


def _ids(count: int) -> tuple[str, list[str]]:
    """A token nobody else uses and ``count`` ids of the shape ``new_id`` makes with it."""
    token = os.urandom(4).hex()
    return token, [token + os.urandom(12).hex() for _ in range(count)]


@pytest.fixture
async def backend(redis_url: str) -> AsyncIterator[RedisResultBackend]:
    backend = RedisResultBackend(redis_url, ttl=60)
    yield backend
    await backend.close()


async def _heard(pubsub: Any, wanted: int, within: float = 5.0) -> list[tuple[str, bytes]]:
    """The (channel, data) of the messages ``pubsub`` got, once ``wanted`` came (or not)."""
    got: list[tuple[str, bytes]] = []
    async with asyncio.timeout(within):
        while len(got) < wanted:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if message is not None:
                got.append((message["channel"].decode(), message["data"]))
    await asyncio.sleep(0.2)  # nothing more comes
    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
    assert message is None, f"one message more: {message}"
    return got


async def test_a_batch_of_writes_reaches_a_batch_listener_as_one_message(
        backend: RedisResultBackend, redis_aio: aioredis.Redis) -> None:
    token, ids = _ids(30)
    pubsub = redis_aio.pubsub()
    await pubsub.subscribe(REPLY_PREFIX + token, REPLY_BATCH_PREFIX + token)
    try:
        await backend.store_writes([backend.success_write(i, n, 1, "t")
                                    for n, i in enumerate(ids)])
        (channel, data), = await _heard(pubsub, 1)
        assert [await backend.get(i) is not None for i in ids] == [True] * 30
    finally:
        await pubsub.aclose()
        await redis_aio.delete(*(result_key(i) for i in ids))
    assert channel == REPLY_BATCH_PREFIX + token
    flat = msgpack.unpackb(data, raw=True)
    assert flat[::2] == [result_key(i).encode() for i in ids]
    assert [backend.decode(i, raw).value for i, raw in zip(ids, flat[1::2], strict=True)] == \
        list(range(30))


async def test_an_older_listener_gets_each_record_on_the_reply_channel(
        backend: RedisResultBackend, redis_aio: aioredis.Redis) -> None:
    token, ids = _ids(5)
    pubsub = redis_aio.pubsub()
    await pubsub.subscribe(REPLY_PREFIX + token)  # what a listener before the twin did
    try:
        await backend.store_writes([backend.success_write(i, n, 1, "t")
                                    for n, i in enumerate(ids)])
        heard = await _heard(pubsub, 5)
    finally:
        await pubsub.aclose()
        await redis_aio.delete(*(result_key(i) for i in ids))
    assert [channel for channel, _ in heard] == [REPLY_PREFIX + token] * 5
    assert [data.partition(b" ")[0] for _, data in heard] == [result_key(i).encode()
                                                             for i in ids]


async def test_a_worker_s_settle_sends_its_records_as_one_message(
        redis_url: str, redis_aio: aioredis.Redis) -> None:
    app = asyncq.App(f"replybatch{os.urandom(3).hex()}", broker=redis_url)

    @app.task
    async def double(n: int) -> int:
        return n * 2

    async with app:
        handles = await app.enqueue_many([double.s(n) for n in range(40)])
        channel = reply_twin(REPLY_PREFIX + handles[0].id[:8])
        pubsub = redis_aio.pubsub()
        await pubsub.subscribe(channel)
        try:
            async with asyncq.Worker(app, concurrency=50):
                assert [await h for h in handles] == [n * 2 for n in range(40)]
            messages, keys = 0, []
            async with asyncio.timeout(10):
                while len(keys) < 40:
                    message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                       timeout=0.2)
                    if message is not None:
                        messages += 1
                        keys += msgpack.unpackb(message["data"], raw=True)[::2]
        finally:
            await pubsub.aclose()
            await app.broker.delete_queue(app.default_queue)
    assert sorted(keys) == sorted(result_key(h.id).encode() for h in handles)
    assert messages < 40  # several records a message


async def test_the_listener_takes_single_records_and_skips_a_broken_batch(
        redis_url: str, redis_aio: aioredis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    """What a worker of an older asyncq publishes (``key value`` on the reply channel)
    resolves a wait; a message on the twin that is not a batch is logged and skipped."""
    app = asyncq.App(f"replybatch{os.urandom(3).hex()}", broker=redis_url)

    @app.task
    async def never(n: int) -> int:  # no worker runs: the records are published by hand
        return n

    async with app:
        first, second = await app.enqueue_many([never.s(1), never.s(2)])
        waits = [asyncio.ensure_future(h.get(timeout=10)) for h in (first, second)]
        reply = REPLY_PREFIX + first.id[:8]

        async def subscribed() -> bool:
            counts = dict(await redis_aio.pubsub_numsub(reply_twin(reply)))
            return bool(counts.get(reply_twin(reply).encode()))

        while not await subscribed():  # noqa: ASYNC110 - polls the server
            await asyncio.sleep(0.02)
        backend: Any = app.backend
        records = [backend.success_write(h.id, n, 1, "never").value
                   for n, h in ((10, first), (20, second))]
        with caplog.at_level(logging.WARNING, logger="asyncq.results.redis"):
            await redis_aio.publish(reply_twin(reply), b"\x92\x01")  # not a batch
            await redis_aio.set(result_key(first.id), records[0])
            await redis_aio.publish(reply, result_key(first.id).encode() + b" " + records[0])
            assert await waits[0] == 10
        assert "ignored a reply batch that is not one" in caplog.text
        await redis_aio.set(result_key(second.id), records[1])
        await redis_aio.publish(reply_twin(reply), msgpack.packb(
            [result_key(second.id).encode(), records[1]]))
        assert await waits[1] == 20
        await redis_aio.delete(result_key(first.id), result_key(second.id))
        await app.broker.delete_queue(app.default_queue)


async def test_a_settle_carries_a_mebibyte_of_records_a_call_at_most(
        redis_url: str, redis_aio: aioredis.Redis) -> None:
    """What one call publishes reaches a subscriber's output buffer at once (Redis cuts
    the subscriber off past 32 MB): six records of 400 kB settled together go in calls
    of at most 1 MiB of records each, so in at least three messages of the twin."""
    from asyncq.brokers import KeyWrite, Settlement
    from asyncq.message import Message

    token, ids = _ids(6)
    app = asyncq.App(f"replybatch{os.urandom(3).hex()}", broker=redis_url)
    pubsub = redis_aio.pubsub()
    await pubsub.subscribe(REPLY_BATCH_PREFIX + token)
    value = b"S" + b"x" * 400_000
    try:
        async with app:
            await app.broker.publish_many([asyncq.brokers.Outgoing(
                i, app.default_queue, Message(i, "t").encode()) for i in ids])
            consumer = app.broker.consumer([app.default_queue], prefetch=6, lease=30)
            deliveries = await consumer.fetch(6, 1.0)
            assert len(deliveries) == 6
            await consumer.ack([Settlement(d, KeyWrite(result_key(i), value, 60_000, None,
                                                       final=True, reply=REPLY_PREFIX + token))
                                for d, i in zip(deliveries, ids, strict=True)])
            await consumer.close()
            sizes: list[int] = []  # the record bytes of each message
            async with asyncio.timeout(10):
                while sum(sizes) < 6 * len(value):
                    message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                       timeout=0.2)
                    if message is not None:
                        sizes.append(sum(map(len, msgpack.unpackb(message["data"],
                                                                  raw=True)[1::2])))
            await app.broker.delete_queue(app.default_queue)
    finally:
        await pubsub.aclose()
        await redis_aio.delete(*(result_key(i) for i in ids))
    assert sum(sizes) == 6 * len(value)
    assert len(sizes) >= 3
    assert max(sizes) <= 1 << 20
