"""Redis results: a handle that enqueue made while the reply channel was live reads no key.

Its task was published while this process's reply channel was subscribed, so its record
comes over the channel, to the waiter or, when it comes first, to the listener's table of
early records. Every case where that is not sure reads the key as before: a reconnect, a
dropped early record, a second await, an id the caller chose (which may have a record
already). These tests count the key reads the listener makes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

import asyncq
from asyncq.message import new_id
from asyncq.results.redis import result_key


@pytest.fixture
async def app(redis_url: str, redis_cleanup: Callable[[str], None]) -> AsyncIterator[asyncq.App]:
    queue = f"replygen-{uuid.uuid4().hex[:8]}"
    redis_cleanup(queue)
    app = asyncq.App(f"replygen{uuid.uuid4().hex[:6]}", broker=redis_url, default_queue=queue)
    async with app:
        yield app
        await app.broker.delete_queue(queue)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


class Reads:
    """Counts the result keys the app's listener reads (wrapping our own code only)."""

    def __init__(self, app: asyncq.App) -> None:
        self.listener: Any = app.backend._listener  # type: ignore[attr-defined]
        self.ids: list[str] = []
        keys = self.listener._keys
        add = keys.add

        def counted(task_id: str, fut: asyncio.Future[bytes]) -> None:
            self.ids.append(task_id)
            add(task_id, fut)

        keys.add = counted


async def _until(check: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            outcome = check()
            if await outcome if not isinstance(outcome, bool) else outcome:
                return
            await asyncio.sleep(0.02)


def _tasks(app: asyncq.App, gate: asyncio.Event) -> tuple[Any, Any]:
    @app.task
    async def held(n: int) -> int:
        await gate.wait()
        return n

    @app.task
    async def double(n: int) -> int:
        return n * 2

    return held, double


async def _live(app: asyncq.App, held: Any) -> asyncio.Future[Any]:
    """A waiter that keeps the reply channel subscribed until ``held`` is let go."""
    keeper = asyncio.ensure_future((await held.enqueue(-1)).get(timeout=60))
    await _until(lambda: app.backend._listener._live is not None)  # type: ignore[attr-defined]
    return keeper


async def test_handles_enqueued_while_the_channel_is_live_read_no_key(app: asyncq.App) -> None:
    gate = asyncio.Event()
    held, double = _tasks(app, gate)
    reads = Reads(app)
    async with asyncq.Worker(app, concurrency=20):
        keeper = await _live(app, held)
        before = len(reads.ids)
        handles = [await double.enqueue(i) for i in range(30)]
        handles += await app.enqueue_many([double.s(i) for i in range(30, 60)])
        assert await asyncio.gather(*(h.get(timeout=20) for h in handles)) == [
            i * 2 for i in range(60)]
        assert reads.ids[before:] == []
        # a second await of a handle reads its key (its record is no longer on its way)
        assert await handles[0].get(timeout=20) == 0
        assert reads.ids[before:] == [handles[0].id]
        gate.set()
        assert await keeper == -1


async def test_a_record_that_came_before_its_handle_was_awaited_is_kept(
        app: asyncq.App, client: aioredis.Redis) -> None:
    gate = asyncio.Event()
    held, double = _tasks(app, gate)
    reads = Reads(app)
    async with asyncq.Worker(app, concurrency=20):
        keeper = await _live(app, held)
        before = len(reads.ids)
        handle = await double.enqueue(21)
        await _until(lambda: client.exists(result_key(handle.id)))
        await _until(lambda: len(reads.listener._early) >= 1)
        assert await handle.get(timeout=20) == 42
        assert reads.ids[before:] == []
        gate.set()
        assert await keeper == -1


async def test_handles_made_before_early_records_were_dropped_read_their_key(
        app: asyncq.App, client: aioredis.Redis) -> None:
    gate = asyncio.Event()
    held, double = _tasks(app, gate)
    reads = Reads(app)
    async with asyncq.Worker(app, concurrency=20):
        keeper = await _live(app, held)
        before = len(reads.ids)
        handle = await double.enqueue(5)
        await _until(lambda: len(reads.listener._early) >= 1)
        reads.listener._early.rotate()
        reads.listener._early.rotate()  # the record is dropped: a new generation
        assert len(reads.listener._early) == 0
        assert await handle.get(timeout=20) == 10
        assert reads.ids[before:] == [handle.id]
        gate.set()
        assert await keeper == -1


async def test_a_caller_chosen_id_reads_its_key(app: asyncq.App) -> None:
    """The id may have a record already: a second run of it stores nothing, notifies
    nobody, and the handle must find the first record."""
    gate = asyncio.Event()
    held, double = _tasks(app, gate)
    reads = Reads(app)
    task_id = new_id()  # of this process's shape, as a caller may pass one on
    async with asyncq.Worker(app, concurrency=20):
        keeper = await _live(app, held)
        assert await (await double.options(task_id=task_id).enqueue(1)).get(timeout=20) == 2
        before = len(reads.ids)
        again = await double.options(task_id=task_id).enqueue(50)
        assert await again.get(timeout=20) == 2
        assert reads.ids[before:] == [task_id]
        gate.set()
        assert await keeper == -1


async def test_live_handles_get_results_published_while_the_connection_was_down(
        app: asyncq.App, client: aioredis.Redis) -> None:
    gate, release = asyncio.Event(), asyncio.Event()
    held, _ = _tasks(app, gate)

    @app.task
    async def later(n: int) -> int:
        await release.wait()
        return n

    reads = Reads(app)
    async with asyncq.Worker(app, concurrency=40):
        keeper = await _live(app, held)
        handles = [await later.enqueue(i) for i in range(20)]
        waits = [asyncio.ensure_future(h.get(timeout=30)) for h in handles]
        await _until(lambda: len(reads.listener._mine) >= 21)
        before = len(reads.ids)
        assert before == 1  # the keeper's, when the channel was not live yet
        pubsub: Any = reads.listener._pubsub
        host, port = pubsub.connection._writer.get_extra_info("sockname")[:2]
        assert await client.client_kill_filter(_type="pubsub", addr=f"{host}:{port}") == 1
        release.set()  # stored and published while nobody listens
        assert await asyncio.gather(*waits) == list(range(20))
        assert set(reads.ids[before:]) >= {h.id for h in handles}  # re-read after it
        gate.set()
        assert await keeper == -1
