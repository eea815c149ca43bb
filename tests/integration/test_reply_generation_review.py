"""Redis results, review of the reply-channel skip: cases where a handle stamped while the
reply channel was live must still get its record without waiting for the slow recheck.

Each test awaits with a timeout far below the listener's recheck interval (30 s): a record
that is stored but missed shows up as a ResultTimeout.
"""

# ruff: noqa: F401, F811 - the fixtures imported below are used as test parameters
from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

import asyncq
from asyncq.results.redis import result_key
from tests.integration.reply_harness import (
    app,
    gated,
    held_and_double,
    live_channel,
    until,
)


async def _early_record(app: asyncq.App, redis_aio: aioredis.Redis, double: Any) -> Any:
    """A handle stamped live whose record already waits in the early table."""
    listener: Any = app.backend._listener  # type: ignore[attr-defined]
    handle = await double.enqueue(21)
    await until(lambda: redis_aio.exists(result_key(handle.id)))
    await until(lambda: len(listener._early) >= 1)
    return handle


async def test_app_result_of_an_own_id_does_not_take_the_handles_early_record(
        app: asyncq.App, redis_aio: aioredis.Redis) -> None:
    async with live_channel(app) as live:
        handle = await _early_record(app, redis_aio, live.double)
        assert await app.result(handle.id).get(timeout=5) == 42
        assert await handle.get(timeout=5) == 42  # was: ResultTimeout (until the 30 s recheck)


async def test_two_concurrent_awaits_of_a_handle_whose_record_came_early(
        app: asyncq.App, redis_aio: aioredis.Redis) -> None:
    async with live_channel(app) as live:
        handle = await _early_record(app, redis_aio, live.double)
        assert await asyncio.gather(handle.get(timeout=5), handle.get(timeout=5)) == [42, 42]


async def test_an_await_cancelled_just_as_its_record_came_leaves_it_for_the_next(
        app: asyncq.App) -> None:
    slow = asyncio.Event()
    later = gated(app, slow)
    async with live_channel(app) as live:
        listener = live.listener
        handle = await later.enqueue(7)
        first = asyncio.ensure_future(handle.get(timeout=20))
        key = result_key(handle.id).encode()
        await until(lambda: key in listener._mine)
        resolve = listener._resolve

        def resolve_then_cancel(entry: Any, raw: bytes) -> None:
            resolve(entry, raw)  # the record reaches the waiter ...
            if entry is not None and entry[0] == handle.id:
                first.cancel()  # ... and its caller is cancelled in the same turn

        listener._resolve = resolve_then_cancel
        slow.set()
        with pytest.raises(asyncio.CancelledError):
            await first
        listener._resolve = resolve
        assert await handle.get(timeout=5) == 7  # was: ResultTimeout


async def test_an_infinite_timeout_waits(app: asyncq.App) -> None:
    _, double = held_and_double(app, asyncio.Event())
    async with asyncq.Worker(app, concurrency=20):
        handle = await double.enqueue(4)
        assert await handle.get(timeout=float("inf")) == 8  # was: OverflowError


async def test_waits_in_flight_when_the_app_closes_end(redis_url: str) -> None:
    queue = f"replyrev-{uuid.uuid4().hex[:8]}"
    app = asyncq.App(f"replyrev{uuid.uuid4().hex[:6]}", broker=redis_url, default_queue=queue)

    @app.task
    async def never(n: int) -> int:  # no worker runs it
        return n

    async with app:
        unstamped = asyncio.ensure_future((await never.enqueue(1)).get())
        await until(lambda: app.backend._listener._live is not None)  # type: ignore[attr-defined]
        stamped = asyncio.ensure_future((await never.enqueue(2)).get())
        other = asyncio.ensure_future(app.result(uuid.uuid4().hex).get())
        await asyncio.sleep(0.3)
        await app.broker.delete_queue(queue)
    for wait in (unstamped, stamped, other):  # was: each waited for ever
        with pytest.raises(asyncq.ResultUnavailable, match="closed"):
            await asyncio.wait_for(wait, 5)


async def test_a_handle_stamped_live_and_awaited_after_the_channel_was_released(
        app: asyncq.App) -> None:
    slow = asyncio.Event()
    later = gated(app, slow)
    async with live_channel(app) as live:
        listener = live.listener
        handle = await later.enqueue(3)  # stamped while live
        assert handle._since is not None
        await live.release()
        await until(lambda: listener._reply is None)  # released after REPLY_IDLE
        slow.set()  # its record is published while nobody listens
        await until(lambda: app.backend.get(handle.id))
        assert await handle.get(timeout=5) == 3


async def test_handles_awaited_only_after_a_reconnect_get_what_was_published_meanwhile(
        app: asyncq.App, redis_aio: aioredis.Redis) -> None:
    release = asyncio.Event()
    later = gated(app, release)
    async with live_channel(app, concurrency=40) as live:
        listener = live.listener
        handles = [await later.enqueue(i) for i in range(20)]  # stamped live, not awaited
        first_live = listener._live
        host, port = listener._pubsub.connection._writer.get_extra_info("sockname")[:2]
        assert await redis_aio.client_kill_filter(_type="pubsub", addr=f"{host}:{port}") == 1
        release.set()  # stored and published around the reconnect
        await until(lambda: listener._live is not None and listener._live != first_live)
        for h in handles:
            await until(lambda h=h: redis_aio.exists(result_key(h.id)))
        assert [await h.get(timeout=5) for h in handles] == list(range(20))
