"""Over-size messages and the dead-letter store (issue 13): an over-size body is cut to
DEAD_BODY_KEEP bytes in its dead letter (the reason keeps its size), and each queue's
dead-letter store is capped (Redis XADD MAXLEN ~, RabbitMQ x-max-length)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

import aio_pika
import pytest

import asyncq
from asyncq.brokers import DEAD_BODY_KEEP, Outgoing
from asyncq.brokers.redis import RedisBroker, dead_key
from asyncq.testing import worker


async def _wait_dead(app: asyncq.App, queue: str, at_least: int, timeout: float = 30) -> None:
    for _ in range(int(timeout / 0.1)):
        if await app.broker.queue_size(queue) == 0 and \
                len(await app.broker.dead_letters(queue, 100_000)) >= at_least:
            return
        await asyncio.sleep(0.1)


async def test_redis_over_size_bodies_are_cut_and_the_store_is_capped(
        redis_url: str, unique: Callable[[str], str],
        redis_cleanup: Callable[[str], None]) -> None:
    queue = unique("dead")
    redis_cleanup(queue)
    broker = RedisBroker(redis_url, dead_letter_max=100)
    app = asyncq.App(unique("dead"), broker=broker, default_queue=queue,
                     max_message_size=64 * 1024)
    async with app:
        big = [Outgoing(f"big{i}", queue, b"\x98" + bytes(2 * 1024 * 1024)) for i in range(5)]
        await app.broker.publish_many(big)
        async with worker(app, [queue], concurrency=4):
            await _wait_dead(app, queue, 5)
            letters = await app.broker.dead_letters(queue)
            assert len(letters) == 5
            for letter in letters:
                assert len(letter.body) == DEAD_BODY_KEEP
                assert "exceeds the 65536 byte limit" in letter.reason
                assert f"first {DEAD_BODY_KEEP} of {2 * 1024 * 1024 + 1} bytes" in letter.reason
                assert letter.extra["dead_letter_max"] == 100
            junk = [Outgoing(f"j{i}", queue, b"\xc1 junk %d" % i) for i in range(1000)]
            await app.broker.publish_many(junk)
            await _wait_dead(app, queue, 100)
            await asyncio.sleep(0.5)
        client: object = app.broker.client  # type: ignore[attr-defined]
        length = await client.xlen(dead_key(queue))  # type: ignore[attr-defined]
        assert 100 <= length < 250, length  # MAXLEN ~ trims whole stream nodes (100 entries)
        newest = (await app.broker.dead_letters(queue, 100_000))[-1]
        assert newest.body == b"\xc1 junk 999"  # the oldest went first


@pytest.mark.amqp
async def test_amqp_store_is_capped_and_an_old_uncapped_queue_still_works(
        amqp_url: str, caplog: pytest.LogCaptureFixture) -> None:
    capped, old = f"cap-{uuid.uuid4().hex[:8]}", f"old-{uuid.uuid4().hex[:8]}"
    app = asyncq.App(f"cap{uuid.uuid4().hex[:6]}", broker=f"{amqp_url}?dead_letter_max=20",
                     default_queue=capped, max_message_size=64 * 1024)
    connection = await aio_pika.connect(amqp_url)
    try:
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue(f"{old}.dead", durable=True)  # as before caps existed
        caplog.set_level(logging.WARNING, logger="asyncq.brokers.amqp")
        async with app:
            await app.broker.publish_many(
                [Outgoing(f"j{i}", capped, b"\xc1 junk %d" % i) for i in range(60)]
                + [Outgoing("big", capped, bytes(1024 * 1024))])
            await app.broker.publish(Outgoing("o1", old, b"\xc1 junk"))
            async with worker(app, [capped, old], concurrency=8):
                await _wait_dead(app, capped, 20)
                await _wait_dead(app, old, 1)
                await asyncio.sleep(0.5)
            letters = await app.broker.dead_letters(capped)
            assert len(letters) == 20  # x-max-length drops the oldest
            assert letters[-1].extra["dead_letter_max"] == 20
            assert len(letters[-1].body) == DEAD_BODY_KEEP
            assert "keeps its first 4096 of 1048576 bytes" in letters[-1].reason
            assert len(await app.broker.dead_letters(old)) == 1
            assert any("exists without a length cap" in r.getMessage() for r in caplog.records)
    finally:
        async with app:
            await app.broker.delete_queue(capped)
            await app.broker.delete_queue(old)
