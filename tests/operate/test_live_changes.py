"""Steering running workers over the control bus, on each real broker: a rate limit
changed while they run (and kept for workers started later), and a queue no longer
consumed, then consumed again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from asyncq import App, TaskResult, Worker
from asyncq.events.monitor import Events
from asyncq.middleware.rate_limit import rates_key
from asyncq.states import TaskState


def rate_app(url: str, redis_url: str, name: str, queue: str) -> App:
    # RabbitMQ keeps no bucket: a Redis result backend holds it (as rate limits need)
    backend = redis_url if url.startswith("amqp") else None
    app = App(name, broker=url, backend=backend, middleware=[Events(0.5)])

    @app.task(name="tick", queue=queue)
    async def tick(i: int) -> int:
        return i

    return app


async def timed(app: App, n: int) -> float:
    """Seconds ``n`` ticks take from enqueue to their last result."""
    start = time.monotonic()
    handles = [await app.tasks["tick"].enqueue(i) for i in range(n)]
    for handle in handles:
        await handle.get(timeout=30)
    return time.monotonic() - start


async def test_rate_limit_changes_in_running_and_later_workers(
        real_broker: str, redis_url: str, unique: Callable[[str], str],
        cleanup: Callable[[App, str], None]) -> None:
    name, queue = unique("rl"), unique("q")
    app = rate_app(real_broker, redis_url, name, queue)
    cleanup(app, queue)
    store = aioredis.Redis.from_url(redis_url)
    try:
        async with app, Worker(app, concurrency=10):
            await asyncio.sleep(0.3)  # the control subscription
            # a task with no rate_limit= gets one while the worker runs
            (reply,) = (await app.control.rate_limit("tick", "1/m", timeout=1.0)).values()
            assert reply == {"ok": "rate limit of tick now 1/m"}
            handles = [await app.tasks["tick"].enqueue(i) for i in range(3)]
            for handle in handles[:2]:  # the burst
                await handle.get(timeout=10)
            await asyncio.sleep(0.5)
            assert await handles[2].state() != TaskState.SUCCESS  # its token is a minute off
            # raised: the job already waiting goes at once
            await app.control.rate_limit("tick", "5/s", timeout=0.5)
            assert await handles[2].get(timeout=3) == 2
            assert 0.8 < await timed(app, 8) < 10  # 8 at 5/s, burst 2: >= 1.2 s
        assert await store.hgetall(rates_key(name)) == {b"tick": b"5/s"}
        # a worker started later (a new process: nothing in memory) reads the stored rate
        later = rate_app(real_broker, redis_url, name, queue)
        async with later, Worker(later, concurrency=10):
            assert 0.8 < await timed(later, 8) < 10
            await asyncio.sleep(0.3)
            await later.control.rate_limit("tick", "1/m", timeout=0.5)
            handles = [await later.tasks["tick"].enqueue(i) for i in range(3)]
            for handle in handles[:2]:
                await handle.get(timeout=10)
            await asyncio.sleep(0.5)
            assert await handles[2].state() != TaskState.SUCCESS
            await later.control.rate_limit("tick", "off", timeout=0.5)
            assert await handles[2].get(timeout=5) == 2  # no limit in the code: none at all
        assert await store.hgetall(rates_key(name)) == {}
    finally:
        await store.delete(rates_key(name), f"asyncq:ratelimit:{{{name}}}:tick")
        await store.aclose()


def two_queue_app(url: str, unique: Callable[[str], str]) -> tuple[App, str, str]:
    qa, qb = unique("qa"), unique("qb")
    app = App(unique("cc"), broker=url, middleware=[Events(0.5)])

    @app.task(name="a", queue=qa)
    async def a(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "a"

    @app.task(name="b", queue=qb)
    async def b() -> str:
        return "b"

    return app, qa, qb


async def test_cancel_and_add_consumer(real_broker: str, unique: Callable[[str], str],
                                       cleanup: Callable[[App, str], None]) -> None:
    app, qa, qb = two_queue_app(real_broker, unique)
    cleanup(app, qa)
    cleanup(app, qb)
    a, b = app.tasks["a"], app.tasks["b"]
    async with app, Worker(app, concurrency=1, prefetch=1) as worker:
        await asyncio.sleep(0.3)
        running = await a.enqueue(1.0)
        await asyncio.sleep(0.3)
        waiting: list[TaskResult[Any]] = [await a.enqueue(0) for _ in range(3)]
        await asyncio.sleep(0.2)  # one of them held in the worker's buffer
        (reply,) = (await app.control.cancel_consumer(qa, timeout=1.0)).values()
        assert reply["ok"] == f"no longer consuming {qa}"
        assert reply["queues"] == [qb]
        assert worker.queues == [qb]
        other = await b.enqueue()
        assert await running.get(timeout=10) == "a"  # in flight: finishes
        assert await other.get(timeout=10) == "b"  # the other queue: still consumed
        await asyncio.sleep(0.5)
        assert await app.broker.queue_size(qa) == 3  # nothing lost, nothing taken
        assert [await h.state() for h in waiting] == [TaskState.PENDING] * 3
        (last,) = (await app.control.cancel_consumer(qb, timeout=0.5)).values()
        assert "last queue" in last["error"]
        (unknown,) = (await app.control.cancel_consumer("nope", timeout=0.5)).values()
        assert "not consuming" in unknown["error"]
        (added,) = (await app.control.add_consumer(qa, timeout=1.0)).values()
        assert added["queues"] == [qb, qa]
        assert [await h.get(timeout=10) for h in waiting] == ["a"] * 3
