"""A worker whose consumer cannot start (Consumer.start raises) ends without running
``worker_stop`` for a ``worker_start`` that never ran: the CLI tries such a worker again
(``serve._patient``) and a stop hook run in between breaks the next start (the
hard-limit guard's watch thread stopped at once, for the life of the process)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

import asyncq
from asyncq.brokers.redis import stream_key
from asyncq.middleware import Middleware
from asyncq.worker.hard_limit import HardLimitGuard


class Hooks(Middleware):
    def __init__(self) -> None:
        self.log: list[str] = []

    async def worker_start(self, worker: asyncq.Worker) -> None:
        self.log.append("worker_start")

    async def worker_stop(self, worker: asyncq.Worker) -> None:
        self.log.append("worker_stop")


async def test_no_worker_stop_without_worker_start_and_the_guard_survives_a_retry(
        redis_url: str, redis_aio: aioredis.Redis, unique: Callable[[str], str]) -> None:
    queue = unique("startfail")
    hooks, guard = Hooks(), HardLimitGuard(exit=lambda code: None)
    app = asyncq.App(unique("startfail"), broker=redis_url, backend=redis_url,
                     default_queue=queue, middleware=[hooks, guard])
    await redis_aio.set(stream_key(queue), b"not a stream")  # XGROUP CREATE: WRONGTYPE
    try:
        worker = asyncq.Worker(app, concurrency=1)
        with pytest.raises(Exception, match="WRONGTYPE"):
            await worker.run()
        assert hooks.log == []  # it never started: nothing to stop
        await redis_aio.delete(stream_key(queue))
        async with asyncq.Worker(app, concurrency=1):  # tried again, as serve() does
            assert hooks.log == ["worker_start"]
            assert not guard._stop.is_set()  # the guard's watch thread is running
        assert hooks.log == ["worker_start", "worker_stop"]
    finally:
        await redis_aio.delete(stream_key(queue))
