"""A worker's consumer reads from the new master after a failover, also when its reading
connection (one it keeps, for CLIENT UNBLOCK) reconnects only after the old master came
back as a replica: redis-py 8.2 reconnected such a connection to the address it had, and
every read then failed with READONLY for ever. A group of its own (it fails over)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest
import redis

import asyncq
from asyncq.brokers import Outgoing
from tests._servers.sentinel import SentinelGroup


@pytest.fixture
def own_group() -> Iterator[SentinelGroup]:
    with SentinelGroup.started() as group:
        yield group


def _wait_replica(node: object, timeout: float = 60.0) -> None:
    """Until the restarted old master serves as a replica."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client = node.client()  # type: ignore[attr-defined]
            try:
                if client.info("replication")["role"] == "slave":
                    return
            finally:
                client.close()
        except redis.RedisError:
            pass
        time.sleep(0.1)
    raise AssertionError("the old master did not come back as a replica")


async def test_the_consumer_reads_from_the_new_master_after_a_failover(
        own_group: SentinelGroup, unique: Callable[[str], str]) -> None:
    queue = unique("q")
    app = asyncq.App(unique("sent"), broker=own_group.url(), default_queue=queue)
    async with app:
        broker = app.broker
        consumer = broker.consumer([queue], prefetch=10, lease=5.0)
        await consumer.start()
        await broker.publish(Outgoing(unique("m"), queue, b"before"))
        got = await consumer.fetch(10, 1.0)  # the reader's connection is on the master
        assert [d.body for d in got] == [b"before"]
        old = await asyncio.to_thread(own_group.kill_master)
        await asyncio.to_thread(own_group.wait_failover, old)
        await asyncio.to_thread(own_group.restart, old)
        await asyncio.to_thread(_wait_replica, old)
        await broker.publish(Outgoing(unique("m"), queue, b"after"))
        bodies: list[bytes] = []
        errors: list[str] = []
        deadline = time.monotonic() + 20
        while b"after" not in bodies and time.monotonic() < deadline:
            try:
                bodies += [d.body for d in await consumer.fetch(10, 0.5)]
            except asyncq.BrokerUnavailable as exc:  # the dropped connection, once
                errors.append(str(exc))
                await asyncio.sleep(0.2)
        assert b"after" in bodies, errors[-3:]
        await consumer.close()
