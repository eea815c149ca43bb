"""Results fan-in: a process awaiting many of its own tasks uses one reply subscription.

Redis results: whoever stores a final record also publishes it on the reply channel of
the process that sent the task (``asyncq:reply:<token>``, the token leading the ids
that process makes); that process's handles wait there, not on a channel each.
RabbitMQ with RPC results: one reply queue per process already.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

import asyncq
from asyncq.message import new_id, process_token
from asyncq.results.redis import reply_channel, result_channel

#: (broker fixture, result backend: None for the broker's default)
SETUPS = {
    "redis": ("redis_url", None),
    "amqp+redis": ("amqp_url", "redis"),
    "amqp+rpc": ("amqp_url", None),
}


@pytest.fixture(params=sorted(SETUPS))
async def app(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[asyncq.App]:
    broker_fixture, backend = SETUPS[request.param]
    queue = f"fanin-{uuid.uuid4().hex[:8]}"
    if broker_fixture == "redis_url":
        request.getfixturevalue("redis_cleanup")(queue)
    app = asyncq.App(f"fanin{uuid.uuid4().hex[:6]}", broker=request.getfixturevalue(broker_fixture),
                     backend=redis_url if backend else None, default_queue=queue)
    async with app:
        yield app
        await app.broker.delete_queue(queue)


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - polls the server
            await asyncio.sleep(0.02)


async def test_many_handles_of_one_process_share_one_subscription(
        app: asyncq.App, redis_aio: aioredis.Redis) -> None:
    gate = asyncio.Event()

    @app.task
    async def held(n: int) -> int:
        await gate.wait()
        return n * 2

    async with asyncq.Worker(app, concurrency=50):
        handles = await app.enqueue_many([held.s(i) for i in range(200)])
        handles += [await held.enqueue(i) for i in range(200, 240)]
        waits = [asyncio.ensure_future(h.get(timeout=30)) for h in handles]
        token = process_token()
        if app.backend.url.startswith("redis"):  # one subscription, none per task
            channel = reply_channel(handles[0].id)
            assert channel == f"asyncq:reply:{token}"

            async def subscribed() -> bool:
                return dict(await redis_aio.pubsub_numsub(channel)).get(channel.encode(), 0) >= 1

            await _until(subscribed)
            assert await redis_aio.pubsub_channels(f"asyncq:done:{token}*") == []
        gate.set()
        assert await asyncio.gather(*waits) == [i * 2 for i in range(240)]


async def test_a_handle_for_another_process_s_task_waits_on_its_own_channel(
        app: asyncq.App, redis_aio: aioredis.Redis) -> None:
    if not app.backend.url.startswith("redis"):
        pytest.skip("RPC results reach only the sending process (test_amqp_rpc.py)")
    gate = asyncio.Event()

    @app.task
    async def held(n: int) -> int:
        await gate.wait()
        return n + 1

    other = "0" * 8 if process_token() != "0" * 8 else "1" * 8
    task_id = other + new_id()[8:]  # as another process would make it
    async with asyncq.Worker(app, concurrency=4):
        await held.options(task_id=task_id).enqueue(1)
        waiting = asyncio.ensure_future(app.result(task_id).get(timeout=30))

        async def subscribed() -> bool:
            return await redis_aio.pubsub_channels(result_channel(task_id)) != []

        await _until(subscribed)
        gate.set()
        assert await waiting == 2


async def test_reply_waiters_get_results_stored_while_their_connection_was_down(
        app: asyncq.App, redis_aio: aioredis.Redis) -> None:
    if not app.backend.url.startswith("redis"):
        pytest.skip("a Redis result backend's subscriber")
    gate = asyncio.Event()

    @app.task
    async def held(n: int) -> int:
        await gate.wait()
        return n

    async with asyncq.Worker(app, concurrency=20):
        handles = await app.enqueue_many([held.s(i) for i in range(20)])
        waits = [asyncio.ensure_future(h.get(timeout=20)) for h in handles]
        channel = reply_channel(handles[0].id)
        assert channel is not None

        async def subscribed() -> bool:
            return dict(await redis_aio.pubsub_numsub(channel)).get(channel.encode(), 0) >= 1

        await _until(subscribed)
        assert await _kill_subscribers(redis_aio, app) >= 1
        gate.set()  # the results are stored and published while nobody listens
        assert await asyncio.gather(*waits) == list(range(20))


async def _kill_subscribers(client: aioredis.Redis, app: asyncq.App) -> int:
    """Kill this app's result listener connection (only ours: other tests share Redis)."""
    pubsub: Any = app.backend._listener._pubsub  # type: ignore[attr-defined]
    host, port = pubsub.connection._writer.get_extra_info("sockname")[:2]
    return int(await client.client_kill_filter(_type="pubsub", addr=f"{host}:{port}"))


async def test_the_installed_redis_py_lets_the_listener_read_buffered_replies(
    redis_url: str,
) -> None:
    """The listener reads every reply hiredis already parsed through redis-py internals
    (``asyncq/results/_pubsub.py``), falling back to one ``get_message`` per reply when
    they change. The fallback is correct but slow, so an upgrade that takes the fast path
    away must fail here rather than only show in a benchmark."""
    from asyncq.results._pubsub import EMPTY, buffered

    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    channel = f"asyncq-test-buffered-{uuid.uuid4().hex}"
    try:
        await pubsub.subscribe(channel)
        source = buffered(pubsub)
        assert source is not None, "redis-py's hiredis parser layout changed: see _pubsub.py"
        for i in range(3):
            await client.publish(channel, f"m{i}")
        gets, _ = source
        replies: list[Any] = []
        while len(replies) < 4:  # the subscribe confirmation, then three messages
            msg = await pubsub.get_message(timeout=2.0)
            assert msg is not None
            replies.append(msg)
            while (reply := gets()) is not EMPTY:
                replies.append(reply)
        datas = [r["data"] if isinstance(r, dict) else r[2] for r in replies[1:]]
        assert datas == [b"m0", b"m1", b"m2"]
    finally:
        await pubsub.aclose()
        await client.aclose()
