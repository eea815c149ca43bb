"""Redis behind Sentinel end to end: an app and a worker through the sentinels, writes
on the replica before they are acknowledged, and a clear error when they are not."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest

import asyncq
from asyncq.brokers import Outgoing
from asyncq.brokers.redis import RedisBroker
from asyncq.results.redis import RedisResultBackend, result_key
from tests._servers.sentinel import SentinelGroup


async def test_app_and_worker_through_the_sentinels(
    sentinel_group: SentinelGroup, unique: Callable[[str], str]
) -> None:
    app = asyncq.App(
        unique("sent"),
        broker=sentinel_group.url(query="wait_replicas=1"),
        default_queue=unique("q"),
    )

    @app.task
    async def double(n: int) -> int:
        return 2 * n

    assert isinstance(app.broker, RedisBroker)
    assert isinstance(app.backend, RedisResultBackend)
    assert app.broker.server_id == app.backend.server_id  # result + ack in one step
    async with app:
        handles = await app.enqueue_many([double.s(i) for i in range(200)])
        async with asyncq.Worker(app, concurrency=20):
            assert [await h.get(timeout=20) for h in handles] == [2 * i for i in range(200)]
        # acknowledged only once the replica had them: it has every result now
        replica = next(n for n in sentinel_group.nodes if n is not sentinel_group.master())
        with contextlib.closing(replica.client()) as client:
            assert client.exists(*(result_key(h.id) for h in handles)) == 200
        await app.broker.delete_queue(app.default_queue)


async def test_an_enqueue_no_replica_confirms_fails_clearly(
    sentinel_group: SentinelGroup, unique: Callable[[str], str]
) -> None:
    # two replicas asked, one exists: WAIT answers 1 after wait_timeout
    app = asyncq.App(
        unique("sent"),
        default_queue=unique("q"),
        broker=sentinel_group.url(query="wait_replicas=2&wait_timeout=0.05"),
    )

    @app.task
    async def noop() -> None: ...

    async with app:
        with pytest.raises(asyncq.NotReplicated, match="1 of 2 replica"):
            await noop.enqueue()
        with pytest.raises(asyncq.NotReplicated):
            await app.enqueue_many([noop.s() for _ in range(3)])
        # the master has them (the error says so): nothing is lost or half-written
        assert await app.broker.queue_size(app.default_queue) == 4
        await app.broker.delete_queue(app.default_queue)


async def test_scripts_the_master_forgot_run_again_and_are_waited_for(
    sentinel_group: SentinelGroup, unique: Callable[[str], str]
) -> None:
    # a new master after a failover knows none of the scripts: NOSCRIPT, run again on
    # one connection, WAIT there (WAIT counts its own connection's writes only)
    broker = RedisBroker(sentinel_group.url(query="wait_replicas=1"))
    queue = unique("q")
    try:
        await broker.publish(Outgoing("a", queue, b"one"))
        with contextlib.closing(sentinel_group.master().client()) as client:
            client.script_flush()
        await broker.publish_many([Outgoing(str(i), queue, b"x") for i in range(3)])
        assert await broker.queue_size(queue) == 4
        replica = next(n for n in sentinel_group.nodes if n is not sentinel_group.master())
        with contextlib.closing(replica.client()) as client:
            assert client.xlen(f"asyncq:{{{queue}}}:stream") == 4
    finally:
        await broker.delete_queue(queue)
        await broker.close()
