"""SAQ 0.26 — a Redis queue and a settings dict for ``saq``, as its README shows.

Results: ``await job.refresh(until_complete=...)`` (pub/sub), re-checked each second.
SAQ has no batch enqueue (``queue.map`` is gather + polling for results): batch is n/a.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aioredis
from saq.queue.redis import RedisQueue

from peers.base import CONCURRENCY, PREFIX, REDIS_URL, SLEEP
from peers.base import Client as BaseClient
from peers.ledger import LEDGER

PACKAGES = ["saq", "redis", "hiredis"]
# What Queue.from_url(url, name=...) does, but with a larger pool: redis-py 8 caps an
# asyncio pool at 100 connections by default and SAQ at concurrency 200 needs more.
queue = RedisQueue(aioredis.from_url(REDIS_URL, max_connections=1000), name=PREFIX)


async def noop(ctx: dict[str, Any], *, n: int) -> int:
    LEDGER.begin()
    LEDGER.end()
    return n


async def sleep(ctx: dict[str, Any], *, n: int) -> int:
    LEDGER.begin()
    await asyncio.sleep(SLEEP)
    LEDGER.end()
    return n


settings = {"queue": queue, "functions": [noop, sleep], "concurrency": CONCURRENCY}


def config(concurrency: int) -> str:
    return (f"Queue.from_url(url, name=q) (pool max_connections=1000); `saq settings` with "
            f"concurrency={concurrency} "
            "(logging WARNING is its default); job.refresh(until_complete=...)")


def worker_argv(concurrency: int) -> list[str]:
    return ["-m", "saq", "peers.saq_bench.settings"]


class Client(BaseClient):
    async def start(self) -> None:
        await queue.connect()

    async def close(self) -> None:
        await queue.disconnect()

    async def enqueue(self, task: str, arg: int) -> Any:
        return await queue.enqueue(task, n=arg)

    async def result(self, handle: Any, timeout: float) -> Any:
        """``job.refresh(until_complete=...)``, re-checked every second: a notification
        published before SAQ's pub/sub subscription is active would otherwise be lost."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                await handle.refresh(until_complete=min(1.0, deadline - time.monotonic()))
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise
                continue
            if handle.completed:
                return handle.result
