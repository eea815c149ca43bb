"""What builds on the broker and the backend works on a Redis Cluster too: workflows
(state in the chord's own slot), revocation (a set in the app's slot and a plain
channel), rate limits (a bucket in the app's slot)."""

from __future__ import annotations

import asyncio
import uuid

import asyncq
from asyncq import chain, chord, group
from asyncq.worker import Worker
from tests._servers.redis_cluster import RedisCluster


def test_workflows_revocation_and_rate_limits(redis_cluster: RedisCluster) -> None:
    name = f"feat-{uuid.uuid4().hex[:8]}"
    app = asyncq.App(name, broker=redis_cluster.url, default_queue=f"{name}-q")

    @app.task
    async def add(a: int, b: int) -> int:
        return a + b

    @app.task
    async def total(xs: list[int]) -> int:
        return sum(xs)

    @app.task(rate_limit="50/s")
    async def limited(i: int) -> int:
        return i

    began: list[asyncio.Event] = []

    @app.task
    async def slow() -> int:
        began[0].set()
        await asyncio.sleep(5)
        return 1

    async def go() -> None:
        async with app:
            worker = Worker(app, concurrency=10)
            running = asyncio.create_task(worker.run())
            try:
                assert await (await chain(add.s(1, 2), add.s(3)).enqueue()).get(timeout=15) == 6
                members = group(add.s(i, i) for i in range(10))
                assert await (await chord(members, total.s()).enqueue()).get(timeout=15) == 90
                handles = [await limited.enqueue(i) for i in range(5)]
                assert [await h.get(timeout=15) for h in handles] == list(range(5))
                queued = await add.options(countdown=0.5).enqueue(1, 1)
                await queued.revoke()
                began.append(asyncio.Event())
                busy = await slow.enqueue()
                await asyncio.wait_for(began[0].wait(), 15)
                await busy.revoke(terminate=True)
                await asyncio.sleep(1.0)
                assert await queued.state() is asyncq.TaskState.REVOKED
                assert await busy.state() is asyncq.TaskState.REVOKED
            finally:
                worker.stop()
                await running
                await app.broker.delete_queue(f"{name}-q")

    asyncio.run(go())
