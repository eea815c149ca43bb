"""The event stream is bounded by events, and events a worker drops are counted."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from asyncq import App, Worker
from asyncq.events import _redis, bus_for
from asyncq.events._redis import RedisBus, events_key
from asyncq.events.monitor import Events


def row(n: int) -> tuple[Any, ...]:
    """An outcome row (asyncq.events.ROW) as the worker makes it."""
    return ("task-succeeded", time.time(), f"id-{n:09d}-0123456789abcdef", "bench.noop",
            "bench-queue", 1, "SUCCESS", 0.000123, None, None, "12345@host", time.time())


async def test_redis_stream_is_bounded_by_events(redis_url: str,
                                                 unique: Callable[[str], str]) -> None:
    client = aioredis.from_url(redis_url)
    app = unique("bounds")
    key = events_key(app)
    bus = RedisBus(client, app)
    try:
        sent = 0
        for _ in range(40):  # 400,000 events in flushes of 10,000: 4x what is kept
            await bus.emit([row(sent + i) for i in range(10_000)])
            sent += 10_000
        length = await client.xlen(key)
        memory = await client.memory_usage(key)
        assert length <= _redis.MAX_ENTRIES * 1.5
        assert length * _redis.ROWS_PER_ENTRY <= _redis.MAX_STREAM_EVENTS * 1.5
        assert memory is not None
        assert memory < 40_000_000  # about 13 MB measured
        first: Any = await client.xrange(key, count=1)
        assert len(first[0][1][b"m"]) < 100_000  # one entry: 500 rows, not 10,000
        newest = await bus.recent(1_200)
        assert [e["id"] for e in newest] == [f"id-{n:09d}-0123456789abcdef"
                                             for n in range(sent - 1_200, sent)]
        assert (await bus.recent(3))[-1]["id"] == f"id-{sent - 1:09d}-0123456789abcdef"
    finally:
        await client.delete(key)
        await client.aclose()


async def test_a_small_batch_is_one_entry(redis_url: str,
                                          unique: Callable[[str], str]) -> None:
    client = aioredis.from_url(redis_url)
    app = unique("bounds")
    bus = RedisBus(client, app)
    try:
        await bus.emit([row(1), {"type": "worker-heartbeat", "ts": 1.0}])
        await bus.emit([row(n) for n in range(_redis.ROWS_PER_ENTRY + 1)])
        assert await client.xlen(events_key(app)) == 3
        assert len(await bus.recent(10_000)) == _redis.ROWS_PER_ENTRY + 3
    finally:
        await client.delete(events_key(app))
        await client.aclose()


async def test_dropped_events_are_counted_and_metrics_keep_every_run(
        unique: Callable[[str], str], caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("prometheus_client")
    from prometheus_client import generate_latest

    from asyncq.events.observed import observed
    from asyncq.middleware.prometheus import Metrics

    events = Events(0.2)
    events.buffer_limit = 5  # a tiny buffer: most outcomes of a flush are dropped
    metrics = Metrics()
    app = App(unique("drops"), broker=f"memory://{unique('m')}",
              middleware=[observed(events, metrics)])

    @app.task(name="ok", queue="q")
    async def ok() -> None:
        return None

    total = 300
    caplog.set_level(logging.WARNING, logger="asyncq.events")
    async with app, Worker(app, concurrency=8) as worker:
        for _ in range(total):
            await ok.enqueue()
        await worker.join(20)
        await asyncio.sleep(0.6)  # the last flush
        seen = [e for e in await bus_for(app).recent(10_000) if e["type"] == "task-succeeded"]
    assert events.drops.count > 0
    assert len(seen) < total
    assert len(seen) + events.drops.count >= total  # each run sent or counted as dropped
    text = generate_latest(metrics.registry).decode()
    assert f'asyncq_tasks_total{{outcome="succeeded",queue="q",task="ok"}} {total}.0' in text
    assert f"asyncq_events_dropped_total {float(events.drops.count)}" in text
    warnings = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(warnings) == 1  # at most once a minute


async def test_rabbitmq_events_go_in_messages_of_bounded_size(
        amqp_url: str, unique: Callable[[str], str]) -> None:
    """A flush of 1,201 events is three messages of at most ROWS_PER_ENTRY events (a
    listener queue's bound counts messages), and a listener gets every event in order."""
    import aio_pika

    from asyncq.events import ROWS_PER_ENTRY, unpack_events

    app = App(unique("bounds"), broker=amqp_url)
    async with app:
        bus = bus_for(app)
        connection = await aio_pika.connect(amqp_url)
        try:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(f"asyncq.events.{app.name}",
                                                      aio_pika.ExchangeType.FANOUT)
            mine = await channel.declare_queue(exclusive=True, auto_delete=True)
            await mine.bind(exchange)
            follow = bus.follow()
            first = asyncio.ensure_future(follow.__anext__())
            await asyncio.sleep(0.5)  # the listener's queue is declared and bound
            await bus.emit([row(n) for n in range(2 * ROWS_PER_ENTRY + 201)])
            got = [(await first)["id"]]
            while len(got) < 2 * ROWS_PER_ENTRY + 201:
                got.append((await asyncio.wait_for(follow.__anext__(), 10))["id"])
            assert got == [row(n)[2] for n in range(2 * ROWS_PER_ENTRY + 201)]
            sizes = []
            while (message := await mine.get(no_ack=True, fail=False)) is not None:
                sizes.append(len(unpack_events(message.body)))
            assert sizes == [ROWS_PER_ENTRY, ROWS_PER_ENTRY, 201]
            await follow.aclose()
        finally:
            await connection.close()
