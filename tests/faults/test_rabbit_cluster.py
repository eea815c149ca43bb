"""F10 RabbitMQ cluster: SIGKILL the node that leads a quorum queue while a producer
enqueues and workers drain, every client given all the nodes in one URL.

Run: ./scripts/test tests/faults/test_rabbit_cluster.py -m faults   (F10_NODES=3 F10_TASKS=20000)

A 3-node cluster (tests/_servers/rabbit_cluster.py; about 45 s to start here, so this
runs under ``faults`` only) with ``?queue_type=quorum``. 3 s after the first completion
the queue's leader node is SIGKILLed (its whole process group), and started again 5 s
later. Clients connect to whichever node answers and move to the next one when theirs
dies. The producer retries a failed batch with the same ids; results go to a throwaway
Redis. The ledger counts acknowledged enqueues, completions, lost and duplicated runs.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncq.brokers.amqp import _connection
from tests._servers.rabbit_cluster import RabbitCluster, RabbitClusterNode, usage
from tests.faults.conftest import (
    Ledger,
    RedisServer,
    completions_after,
    record,
    start_worker,
    stop,
    tally,
)
from tests.faults.test_chaos import first_completion, load_tasks
from tests.faults.test_sentinel_failover import drain, produce

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]

QUEUE = "f10"


@pytest.fixture
def cluster() -> Iterator[RabbitCluster]:
    with RabbitCluster.started(nodes=int(os.environ.get("F10_NODES", "3"))) as started:
        yield started


def leader(cluster: RabbitCluster, ask: RabbitClusterNode) -> RabbitClusterNode:
    rows = {row[0]: row[1] for row in cluster.queues(ask, "leader") if len(row) > 1}
    return next(node for node in cluster.nodes if node.name == rows[QUEUE])


def left_on(cluster: RabbitCluster, ask: RabbitClusterNode) -> dict[str, int]:
    """Messages (ready + unacked) in every queue of the cluster but the control ones."""
    rows = cluster.queues(ask, "messages_ready", "messages_unacknowledged")
    return {
        name: int(ready) + int(unacked)
        for name, ready, unacked in rows
        if not name.startswith("asyncq.control.")
    }


async def kill_leader(cluster: RabbitCluster, timings: dict[str, float | str]) -> None:
    victim = await asyncio.to_thread(leader, cluster, cluster.nodes[0])
    timings["killed"] = victim.name  # the queue's leader
    timings["killed_at"] = time.time()
    cluster.kill(victim)
    await asyncio.sleep(5.0)
    timings["restart_answered_s"] = round(await asyncio.to_thread(cluster.restart, victim), 1)
    timings["down_s"] = round(time.time() - float(timings["killed_at"]), 1)


async def test_f10_rabbitmq_cluster_node_kill(
    cluster: RabbitCluster,
    redis_server: RedisServer,
    fault_env: tuple[Path, Ledger],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workdir, ledger = fault_env
    n = int(os.environ.get("F10_TASKS", "20000"))
    url = cluster.url("queue_type=quorum")
    monkeypatch.setenv("F_BACKEND", redis_server.url)
    mod = load_tasks(workdir, url, ledger, monkeypatch, QUEUE)
    # the producer starts at the first node and declares the queue before the workers
    # start, so the queue's leader is the producer's node: the kill moves it too
    monkeypatch.setattr(_connection, "first_node", lambda count: 0)
    timings: dict[str, float | str] = {}
    cpu_before = {node.name: usage(node)[0] for node in cluster.nodes}
    started = time.time()
    sup = None
    try:
        async with mod.app:
            window = 15.0
            producer = asyncio.create_task(produce(mod, ledger, n, 500, window / (n / 500)))
            while not ledger.counts("enq"):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            timings["producer_on"] = mod.app.broker.conn.connection().url.port
            sup = start_worker(
                workdir,
                url,
                ledger,
                "-w",
                "2",
                "-c",
                "50",
                "--prefetch",
                "50",
                name="f10",
                queue=QUEUE,
            )
            await first_completion(ledger, 120)
            await asyncio.sleep(3.0)
            await kill_leader(cluster, timings)
            retries = await producer
            acked = set(ledger.counts("enq"))
            await drain(ledger, acked, 300)
            elapsed = time.time() - started
            letters = await mod.app.broker.dead_letters(QUEUE)
            await asyncio.sleep(2.0)  # the last acks
            timings["producer_ends_on"] = mod.app.broker.conn.connection().url.port
    finally:
        if sup is not None:
            stop(sup)
    # CPU of the nodes that ran throughout (the killed one restarted: its count restarted)
    now = {node.name: usage(node) for node in cluster.nodes}
    survivors = [name for name in now if name != timings["killed"]]
    cpu_share = sum(now[n][0] - cpu_before[n] for n in survivors) / elapsed / len(survivors)
    left = left_on(cluster, cluster.nodes[0])
    killed_at = float(timings.pop("killed_at"))
    after = completions_after(ledger, killed_at)
    figures = {
        "nodes": len(cluster.nodes),
        "queue_type": "quorum",
        "tasks": n,
        **tally(ledger, acked),
        "completed_after_the_kill": len(after),
        "first_completion_after_the_kill_s": round(after[0] - killed_at, 2) if after else None,
        "producer_batch_retries": retries,
        "seconds": round(elapsed, 1),
        "dead_letters": len(letters),
        "leftover": left,
        "cluster_startup": cluster.timings,
        "cpu_per_surviving_node_cores": round(cpu_share, 2),
        "rss_mb_per_node": [round(rss) for _, rss in now.values()],
        **timings,
        "kill_at_s": round(killed_at - started, 2),
    }
    record(f"F10_rabbitmq_cluster_{len(cluster.nodes)}_nodes", figures)
    assert len(acked) == n
    assert figures["lost"] == 0
    assert after, "nothing completed after the node was killed"
    assert not letters
    assert not any(left.values()), left
