"""F1-cluster: move a queue's hash slot between masters while workers drain it.

Run: ./scripts/test tests/faults/test_cluster_reshard.py -m faults

A 3-master cluster of the test's own; a producer enqueues N tasks (fixed ids; one in
ten with a 2 s countdown, so the queue's delayed set is in the slot too) in batches
while two worker processes drain the queue; at 25% and at 60% of the completions the
queue's slot (streams, delayed set, consumer group and its pending list) migrates to
another master (SETSLOT IMPORTING/MIGRATING, MIGRATE in batches, SETSLOT NODE: what
``redis-cli --cluster reshard`` does), and at 40% the slots of 200 of the tasks'
result keys move too. The ledger written by the tasks counts lost and duplicated
work; every task's result is read back at the end.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests._servers.redis_cluster import RedisCluster
from tests.faults.conftest import Ledger, enqueue_numbered, record, start_worker, stop

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]

N, BATCH = 20_000, 500
QUEUE = "reshard"


def load_tasks(workdir: Path, url: str, ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("F_BROKER", url)
    monkeypatch.setenv("F_QUEUE", QUEUE)
    monkeypatch.setenv("F_LEDGER", str(ledger.base))
    monkeypatch.syspath_prepend(str(workdir))
    sys.modules.pop("ftasks", None)
    return importlib.import_module("ftasks")


async def produce(mod: Any, ledger: Ledger) -> int:
    """Fixed ids, every tenth task delayed 2 s (see :func:`enqueue_numbered`); enqueues
    go on through the moves."""
    return await enqueue_numbered(
        mod.app,
        lambda ns: [mod.work.options(task_id=f"t{i}", countdown=2 if i % 10 == 0 else None).s(i)
                    for i in ns],
        ledger, N, BATCH, 0.4)


async def at_completions(ledger: Ledger, count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while len(ledger.counts("done")) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"stuck before {count} completions")
        await asyncio.sleep(0.2)


async def move(cluster: RedisCluster, slot: int, moves: list[dict[str, Any]]) -> None:
    source = cluster.owner(slot)
    target = next(n for n in cluster.nodes if n is not source)
    started = time.monotonic()
    keys = await asyncio.to_thread(cluster.move_slot, slot, target, batch=10)
    moves.append(
        {
            "slot": slot,
            "from": source.port,
            "to": target.port,
            "keys": keys,
            "seconds": round(time.monotonic() - started, 3),
        }
    )


async def chaos(cluster: RedisCluster, ledger: Ledger, moves: list[dict[str, Any]]) -> None:
    queue_slot = RedisCluster.slot_of(f"{{{QUEUE}}}")
    await at_completions(ledger, N // 4)
    await move(cluster, queue_slot, moves)
    await at_completions(ledger, N * 2 // 5)
    result_slots = sorted({RedisCluster.slot_of(f"{{t{i}}}") for i in range(0, N, N // 200)})
    for slot in result_slots:
        await move(cluster, slot, moves)
    await at_completions(ledger, N * 3 // 5)
    await move(cluster, queue_slot, moves)


async def missing_results(mod: Any) -> int:
    """Tasks whose SUCCESS record is not there (or holds the wrong value)."""
    missing = 0
    for start in range(0, N, 1000):
        numbers = range(start, min(N, start + 1000))
        records = await asyncio.gather(*(mod.app.backend.get(f"t{i}") for i in numbers))
        missing += sum(
            1 for i, r in zip(numbers, records, strict=True) if r is None or r.value != 2 * i
        )
    return missing


def test_reshard_while_draining(
    fault_env: tuple[Path, Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir, ledger = fault_env
    with RedisCluster.started(3) as cluster:
        mod = load_tasks(workdir, cluster.url, ledger, monkeypatch)
        workers = [
            start_worker(
                workdir,
                cluster.url,
                ledger,
                "-c",
                "50",
                "--prefetch",
                "50",
                "--lease",
                "5",
                name=f"w{i}",
                queue=QUEUE,
            )
            for i in range(2)
        ]
        moves: list[dict[str, Any]] = []

        async def scenario() -> tuple[int, int, float]:
            started = time.monotonic()
            async with mod.app:
                mover = asyncio.create_task(chaos(cluster, ledger, moves))
                retries = await produce(mod, ledger)
                await mover
                await at_completions(ledger, N)
                elapsed = time.monotonic() - started
                return retries, await missing_results(mod), elapsed

        try:
            retries, missing, seconds = asyncio.run(scenario())
        finally:
            for proc in workers:
                stop(proc)
        done = ledger.counts("done")
        queue_slot = RedisCluster.slot_of(f"{{{QUEUE}}}")
        warnings = sum(
            ("ERROR" in line or "failed" in line)
            for i in range(2)
            for line in (workdir / f"w{i}.log").read_text().splitlines()
        )
        enqueued = set(ledger.counts("enq"))
        figures = {
            "tasks_enqueued": len(enqueued),
            "completed": len(done),
            "lost": len(enqueued - set(done)),
            "duplicated": sum(c - 1 for c in done.values() if c > 1),
            "results_missing": missing,
            "slot_moves": len(moves),
            "queue_slot_moves": [m for m in moves if m["slot"] == queue_slot],
            "result_slot_moves": sum(1 for m in moves if m["slot"] != queue_slot),
            "result_keys_moved": sum(m["keys"] for m in moves if m["slot"] != queue_slot),
            "worker_log_failures": warnings,
            "delayed_tasks": N // 10,
            "producer_batch_retries": retries,
            "seconds": round(seconds, 1),
            "masters": 3,
            "workers": "2 processes x -c 50",
        }
        record("F1_cluster_reshard_redis", figures)
        print(figures)
        assert figures["lost"] == 0
        assert missing == 0
        assert len(moves) >= 3
