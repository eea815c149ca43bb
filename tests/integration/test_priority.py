"""Priorities 0-9, higher first, FIFO within a level: on Redis and on RabbitMQ."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import redis as sync_redis

import asyncq

ORDER = [0, 9, 1, 5, 9, 0, 5, 1, 9, 3]  # the priorities, in sending order


@pytest.fixture(params=["redis", "redis-resp2", "amqp"])
async def make(request: pytest.FixtureRequest, unique: Callable[[str], str]
               ) -> AsyncIterator[Callable[[], asyncq.App]]:
    queue = unique("prio")
    if request.param.startswith("redis"):
        url = str(request.getfixturevalue("redis_url"))
        if request.param == "redis-resp2":  # replies are read as they come: lists
            url = f"{url}{'&' if '?' in url else '?'}protocol=2"
        backend = None
    else:  # RabbitMQ orders by priority on queues declared with x-max-priority
        url = f"{request.getfixturevalue('amqp_url')}?max_priority=9"
        backend = str(request.getfixturevalue("redis_url"))
    apps: list[asyncq.App] = []

    def build() -> asyncq.App:
        app = asyncq.App(unique("app"), broker=url, backend=backend, default_queue=queue,
                         revoke_window=None)
        apps.append(app)
        return app

    yield build
    await apps[0].connect()
    await apps[0].broker.delete_queue(queue)
    for app in apps:
        await app.close()


async def test_higher_priorities_run_first_and_fifo_within_a_level(
        make: Callable[[], asyncq.App]) -> None:
    app = make()
    ran: list[tuple[int, int]] = []

    @app.task
    async def job(priority: int, n: int) -> None:
        ran.append((priority, n))

    async with app:
        await app.broker.consumer([app.default_queue], prefetch=1, lease=60).close()
        for n, priority in enumerate(ORDER):
            await job.options(priority=priority or None).enqueue(priority, n)
        assert await app.broker.queue_size(app.default_queue) == len(ORDER)
        async with asyncq.Worker(app, concurrency=1, prefetch=0) as worker:
            await worker.join(timeout=30)
    expected = sorted(((p, n) for n, p in enumerate(ORDER)), key=lambda x: (-x[0], x[1]))
    assert ran == expected


async def test_a_delayed_priority_message_keeps_its_priority(
        make: Callable[[], asyncq.App]) -> None:
    app = make()
    ran: list[str] = []

    @app.task
    async def job(name: str) -> None:
        ran.append(name)

    async with app:
        await job.options(countdown=0.5, priority=7).enqueue("late-high")
        for n in range(3):
            await job.options(countdown=0.5).enqueue(f"late-low-{n}")
        await asyncio.sleep(1.5)
        async with asyncq.Worker(app, concurrency=1, prefetch=0) as worker:
            await worker.join(timeout=30)
    assert ran[0] == "late-high"
    assert sorted(ran[1:]) == ["late-low-0", "late-low-1", "late-low-2"]


async def test_priority_is_checked_at_the_call() -> None:
    app = asyncq.App("prio-check", broker="memory://prio-check")

    @app.task
    async def job() -> None: ...

    for bad in (10, -1, True, 2.5):
        with pytest.raises(ValueError, match="priority"):
            await job.options(priority=bad).enqueue()  # type: ignore[arg-type]


async def test_a_queue_without_priorities_has_no_level_keys(
        redis_url: str, redis_client: sync_redis.Redis, unique: Callable[[str], str]) -> None:
    queue = unique("plain")
    app = asyncq.App(unique("app"), broker=redis_url, default_queue=queue, revoke_window=None)

    @app.task
    async def add(x: int, y: int) -> int:
        return x + y

    async with app:
        async with asyncq.Worker(app, concurrency=2):
            assert await (await add.enqueue(1, 2)).get(timeout=10) == 3
            assert redis_client.keys(f"asyncq:{{{queue}}}:*") == [
                f"asyncq:{{{queue}}}:stream".encode()]
            urgent = await add.options(priority=9).enqueue(2, 2)
            assert await urgent.get(timeout=10) == 4
            assert redis_client.smembers(f"asyncq:{{{queue}}}:levels") == {b"9"}
        await app.broker.delete_queue(queue)
    assert redis_client.keys(f"asyncq:{{{queue}}}:*") == []


async def test_priority_messages_are_dead_lettered_and_handed_back_on_their_stream(
        redis_url: str, redis_client: sync_redis.Redis, unique: Callable[[str], str]) -> None:
    from asyncq.brokers import Outgoing

    queue = unique("plevels")
    app = asyncq.App(unique("app"), broker=redis_url, default_queue=queue, revoke_window=None)
    started = asyncio.Event()

    @app.task
    async def hold() -> None:
        started.set()
        await asyncio.sleep(0.5)

    async with app:
        try:
            await app.broker.publish(Outgoing("bad1", queue, b"not msgpack", priority=9))
            for _ in range(4):
                await hold.options(priority=9).enqueue()
            async with asyncq.Worker(app, concurrency=1, prefetch=3):
                await asyncio.wait_for(started.wait(), 10)
            # the running one finished; the buffered ones went back to the p9 stream
            assert await app.broker.queue_size(queue) == 3
            assert redis_client.xlen(f"asyncq:{{{queue}}}:p9") == 3
            letters = await app.broker.dead_letters(queue)
            assert [letter.reason[:20] for letter in letters] == ["undecodable message:"]
            async with asyncq.Worker(app, concurrency=3) as worker:
                await worker.join(timeout=20)
            assert await app.broker.queue_size(queue) == 0
            assert redis_client.xlen(f"asyncq:{{{queue}}}:p9") == 0
        finally:
            await app.broker.delete_queue(queue)


async def test_an_idle_worker_wakes_for_any_level(make: Callable[[], asyncq.App]) -> None:
    app = make()

    @app.task
    async def echo(text: str) -> str:
        return text

    async with app, asyncq.Worker(app, concurrency=2):
        first = await echo.options(priority=4).enqueue("known level")
        assert await first.get(timeout=10) == "known level"
        await asyncio.sleep(0.5)  # idle: blocked reading every stream
        for text, priority in (("level 4", 4), ("level 0", None), ("level 4 again", 4)):
            began = asyncio.get_running_loop().time()
            handle = await echo.options(priority=priority).enqueue(text)
            assert await handle.get(timeout=10) == text
            assert asyncio.get_running_loop().time() - began < 1.0
            await asyncio.sleep(0.3)
