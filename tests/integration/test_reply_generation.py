"""Redis results: a handle that enqueue made while the reply channel was live reads no key.

Its task was published while this process's reply channel was subscribed, so its record
comes over the channel, to the waiter or, when it comes first, to the listener's table of
early records. Every case where that is not sure reads the key as before: a reconnect, a
dropped early record, a second await, an id the caller chose (which may have a record
already). These tests count the key reads the listener makes.
"""

# ruff: noqa: F401, F811 - the fixtures imported below are used as test parameters
from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

import asyncq
from asyncq.message import new_id
from asyncq.results.redis import result_key
from tests.integration.reply_harness import app, gated, live_channel, until


async def test_handles_enqueued_while_the_channel_is_live_read_no_key(app: asyncq.App) -> None:
    async with live_channel(app) as live:
        handles = [await live.double.enqueue(i) for i in range(30)]
        handles += await app.enqueue_many([live.double.s(i) for i in range(30, 60)])
        assert await asyncio.gather(*(h.get(timeout=20) for h in handles)) == [
            i * 2 for i in range(60)]
        assert live.since() == []
        # a second await of a handle reads its key (its record is no longer on its way)
        assert await handles[0].get(timeout=20) == 0
        assert live.since() == [handles[0].id]


async def test_a_record_that_came_before_its_handle_was_awaited_is_kept(
        app: asyncq.App, redis_aio: aioredis.Redis) -> None:
    async with live_channel(app) as live:
        handle = await live.double.enqueue(21)
        await until(lambda: redis_aio.exists(result_key(handle.id)))
        await until(lambda: len(live.listener._early) >= 1)
        assert await handle.get(timeout=20) == 42
        assert live.since() == []


async def test_handles_made_before_early_records_were_dropped_read_their_key(
        app: asyncq.App) -> None:
    async with live_channel(app) as live:
        handle = await live.double.enqueue(5)
        await until(lambda: len(live.listener._early) >= 1)
        live.listener._early.rotate()
        live.listener._early.rotate()  # the record is dropped: a new generation
        assert len(live.listener._early) == 0
        assert await handle.get(timeout=20) == 10
        assert live.since() == [handle.id]


async def test_a_caller_chosen_id_reads_its_key(app: asyncq.App) -> None:
    """The id may have a record already: a second run of it stores nothing, notifies
    nobody, and the handle must find the first record."""
    task_id = new_id()  # of this process's shape, as a caller may pass one on
    async with live_channel(app) as live:
        first = await live.double.options(task_id=task_id).enqueue(1)
        assert await first.get(timeout=20) == 2
        before = len(live.reads.ids)
        again = await live.double.options(task_id=task_id).enqueue(50)
        assert await again.get(timeout=20) == 2
        assert live.reads.ids[before:] == [task_id]


async def test_live_handles_get_results_published_while_the_connection_was_down(
        app: asyncq.App, redis_aio: aioredis.Redis) -> None:
    release = asyncio.Event()
    later = gated(app, release)
    async with live_channel(app, concurrency=40) as live:
        handles = [await later.enqueue(i) for i in range(20)]
        waits = [asyncio.ensure_future(h.get(timeout=30)) for h in handles]
        await until(lambda: len(live.listener._mine) >= 21)
        before = len(live.reads.ids)
        assert before == 1  # the keeper's, when the channel was not live yet
        pubsub: Any = live.listener._pubsub
        host, port = pubsub.connection._writer.get_extra_info("sockname")[:2]
        assert await redis_aio.client_kill_filter(_type="pubsub", addr=f"{host}:{port}") == 1
        release.set()  # stored and published while nobody listens
        assert await asyncio.gather(*waits) == list(range(20))
        assert set(live.reads.ids[before:]) >= {h.id for h in handles}  # re-read after it
