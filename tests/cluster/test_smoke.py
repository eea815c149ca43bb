"""enqueue -> worker -> result on a Redis Cluster, through the public API."""

from __future__ import annotations

import asyncio
import uuid

import pytest

import asyncq
from asyncq.worker import Worker
from tests._servers.redis_cluster import RedisCluster


def test_enqueue_work_and_results_on_a_cluster(redis_cluster: RedisCluster) -> None:
    name = f"shop-{uuid.uuid4().hex[:8]}"
    app = asyncq.App(name, broker=redis_cluster.url, default_queue=f"{name}-q")
    attempts: dict[int, int] = {}

    @app.task
    async def add(a: int, b: int) -> int:
        return a + b

    @app.task(retries=2)
    async def flaky(n: int) -> int:
        attempts[n] = attempts.get(n, 0) + 1
        if attempts[n] == 1:
            raise asyncq.Retry(0.05)
        return n

    @app.task
    async def boom() -> None:
        raise ValueError("no")

    async def go() -> None:
        async with app:
            worker = Worker(app, concurrency=20)
            running = asyncio.create_task(worker.run())
            try:
                sums = [await add.enqueue(i, i) for i in range(50)]
                later = await add.options(countdown=0.2).enqueue(1, 1)
                retried = await flaky.enqueue(7)
                failed = await boom.enqueue()
                assert [await h.get(timeout=15) for h in sums] == [2 * i for i in range(50)]
                assert await later.get(timeout=15) == 2
                assert await retried.get(timeout=15) == 7
                with pytest.raises(asyncq.TaskFailed):
                    await failed.get(timeout=15)
                assert await failed.state() is asyncq.TaskState.FAILURE
                await worker.join(timeout=15)
            finally:
                worker.stop()
                await running
                await app.broker.delete_queue(f"{name}-q")

    asyncio.run(go())
