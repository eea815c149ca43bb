"""The conformance kit on a Redis Cluster, and what only a cluster can show: a
queue's keys in one slot, queues spread over shards, a worker of queues in several
slots, results and their notifications in each task's own slot."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from asyncq.brokers import Outgoing, Settlement, broker_class
from asyncq.brokers.redis.cluster import RedisClusterBroker
from asyncq.records import KeyWrite, ResultRecord
from asyncq.results import backend_class
from asyncq.results.redis_cluster import RedisClusterResultBackend
from asyncq.states import TaskState
from asyncq.testing.contract import BrokerContract, ResultBackendContract
from tests._servers.redis_cluster import RedisCluster


class TestClusterBroker(BrokerContract):
    @pytest.fixture
    def broker_factory(self, redis_cluster: RedisCluster) -> object:
        url = redis_cluster.url
        return lambda: broker_class(url)(url)


class TestClusterResultBackend(ResultBackendContract):
    @pytest.fixture
    def backend_factory(self, redis_cluster: RedisCluster) -> object:
        url = redis_cluster.url
        return lambda: backend_class(url)(url)


def test_the_registry_picks_the_cluster_classes(redis_cluster: RedisCluster) -> None:
    assert broker_class(redis_cluster.url) is RedisClusterBroker
    assert backend_class(redis_cluster.url) is RedisClusterResultBackend


def test_queues_spread_over_shards_and_keep_their_keys_together(
    redis_cluster: RedisCluster,
) -> None:
    from asyncq.brokers.redis._keys import dead_key, delayed_key, level_key, stream_key

    owners = set()
    for n in range(30):
        queue = f"spread-{n}"
        slots = {
            RedisCluster.slot_of(k)
            for k in (stream_key(queue), delayed_key(queue), dead_key(queue), level_key(queue, 5))
        }
        assert len(slots) == 1
        owners.add(redis_cluster.owner(slots.pop()).port)
    assert len(owners) == 3  # 30 queues: every shard gets some


def test_a_worker_of_queues_in_several_slots_gets_them_all(
    redis_cluster: RedisCluster,
) -> None:
    queues = [f"multi-{uuid.uuid4().hex[:8]}-{n}" for n in range(4)]
    slots = {RedisCluster.slot_of(f"{{{q}}}") for q in queues}
    assert len(slots) > 1

    async def go() -> None:
        broker = RedisClusterBroker(redis_cluster.url)
        try:
            consumer = broker.consumer(queues, prefetch=40, lease=30)
            await consumer.fetch(1, 0.01)  # joins the groups
            await broker.publish_many(
                [Outgoing(f"m{q}{i}", q, f"{q}:{i}".encode()) for q in queues for i in range(3)]
            )
            got = []
            while len(got) < 12:
                got += await consumer.fetch(40, 1.0)
            assert sorted(d.body for d in got) == sorted(
                f"{q}:{i}".encode() for q in queues for i in range(3)
            )
            await consumer.ack([Settlement(d) for d in got])
            assert [await broker.queue_size(q) for q in queues] == [0] * 4
            await consumer.close()
        finally:
            for q in queues:
                await broker.delete_queue(q)
            await broker.close()

    asyncio.run(go())


def test_results_live_in_their_task_ids_slot_and_notify_there(
    redis_cluster: RedisCluster,
) -> None:
    async def go() -> None:
        backend = RedisClusterResultBackend(redis_cluster.url)
        ids = [uuid.uuid4().hex for _ in range(12)]
        try:
            assert {RedisCluster.slot_of(backend.key_for(i)) for i in ids} == {
                RedisCluster.slot_of(backend.channel_for(i) or "") for i in ids
            }
            waits = [asyncio.create_task(backend.wait(i, timeout=10)) for i in ids]
            await asyncio.sleep(0.3)  # subscribed, on the nodes of the ids' slots
            for i in ids:
                await backend.store(i, ResultRecord(TaskState.SUCCESS, value=i))
            records = await asyncio.gather(*waits)
            assert [r.value for r in records] == ids
            owners = {
                redis_cluster.owner(RedisCluster.slot_of(backend.key_for(i))).port for i in ids
            }
            assert len(owners) > 1
        finally:
            for i in ids:
                await backend.forget(i)
            await backend.close()

    asyncio.run(go())


def test_a_batch_of_results_follows_a_slot_that_moved(redis_cluster: RedisCluster) -> None:
    """The client's slot map is stale for one key: its node's call fails and those
    writes go again key by key (MOVED); every record lands, and a settled one stays."""

    async def go() -> None:
        backend = RedisClusterResultBackend(redis_cluster.url)
        ids = [uuid.uuid4().hex for _ in range(20)]
        try:
            await backend.store(ids[0], ResultRecord(TaskState.SUCCESS, value="first"))
            slot = RedisCluster.slot_of(backend.key_for(ids[0]))
            source = redis_cluster.owner(slot)
            target = next(n for n in redis_cluster.nodes if n is not source)
            await asyncio.to_thread(redis_cluster.move_slot, slot, target)
            writes = [backend.key_write(i, ResultRecord(TaskState.SUCCESS, value=i)) for i in ids]
            await backend.store_writes(writes)
            records = [await backend.get(i) for i in ids]
            assert [r.value if r else None for r in records] == ["first", *ids[1:]]
        finally:
            for i in ids:
                await backend.forget(i)
            await backend.close()

    asyncio.run(go())


def test_a_node_s_large_records_go_in_calls_of_a_mebibyte_at_most(
    redis_cluster: RedisCluster,
) -> None:
    """What one call publishes reaches a subscriber's output buffer at once (Redis cuts
    a subscriber off past 32 MB of it): three records of 600 kB on one node are three
    calls, and all three are stored."""

    async def go() -> None:
        backend = RedisClusterResultBackend(redis_cluster.url)
        first = uuid.uuid4().hex
        owner = redis_cluster.owner(RedisCluster.slot_of(backend.key_for(first)))
        ids = [first]
        while len(ids) < 5:
            other = uuid.uuid4().hex
            if redis_cluster.owner(RedisCluster.slot_of(backend.key_for(other))) is owner:
                ids.append(other)
        node = owner.client()

        def script_calls() -> int:
            return int(node.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))

        def writes(of: list[str], value: str) -> list[KeyWrite]:
            return [backend.key_write(i, ResultRecord(TaskState.SUCCESS, value=value))
                    for i in of]

        try:  # two small ones first: the node has the script, calls are EVALSHAs
            await backend.store_writes(writes(ids[3:], "small"))
            calls = script_calls()
            await backend.store_writes(writes(ids[:3], "x" * 600_000))
            assert script_calls() - calls == 3
            assert [(await backend.get(i)) is not None for i in ids] == [True] * 5
        finally:
            for i in ids:
                await backend.forget(i)
            await backend.close()
            node.close()

    asyncio.run(go())
