"""A worker's consumer reads from the new master after a failover, though its reading
connection is one it keeps (for CLIENT UNBLOCK): redis-py 8.2 reconnected such a
connection to the address it had, the dead master's (connection refused for ever; once
that node was back as a replica, READONLY for ever). A group of its own (it fails
over). The old master is not started again here: the sentinels' turning it into a
replica took over a minute once on a loaded machine, and a dead address shows the
same fault."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest

import asyncq
from asyncq.brokers import Outgoing
from tests._servers.sentinel import SentinelGroup


@pytest.fixture
def own_group() -> Iterator[SentinelGroup]:
    with SentinelGroup.started() as group:
        yield group


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
