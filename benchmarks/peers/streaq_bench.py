"""streaQ 7.2 — one ``Worker`` used both to enqueue (``async with worker``) and to run.

The worker process is started the way ``streaq run`` does it (``worker.run_sync()``),
but with streaq's logger at WARNING: the CLI always configures INFO or DEBUG.
Batch: ``worker.enqueue_many`` (one pipeline).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging.config
from collections.abc import Iterable
from typing import Any

from streaq import Worker

from peers.base import CONCURRENCY, PREFIX, REDIS_URL, SLEEP, warning_logging
from peers.base import Client as BaseClient
from peers.ledger import LEDGER

PACKAGES = ["streaq", "coredis", "anyio"]
# coredis's pool holds 64 connections by default, and every result wait holds one for its
# pub/sub subscription: 64 or more waits at once (W6 runs 1,000) leave none for the
# GET each wait makes first, and all of them time out. Like SAQ's pool here, 2,000.
worker: Worker[Any] = Worker(redis_url=REDIS_URL, concurrency=CONCURRENCY, queue_name=PREFIX,
                             redis_kwargs={"max_connections": 2000})


@worker.task
async def noop(n: int) -> int:
    LEDGER.begin()
    LEDGER.end()
    return n


@worker.task
async def sleep(n: int) -> int:
    LEDGER.begin()
    await asyncio.sleep(SLEEP)
    LEDGER.end()
    return n


TASKS = {"noop": noop, "sleep": sleep}


def main() -> None:
    logging.config.dictConfig(warning_logging("streaq"))
    worker.run_sync()


def config(concurrency: int) -> str:
    return (f"Worker(redis_url=url, concurrency={concurrency}, queue_name=q, "
            "redis_kwargs={'max_connections': 2000}) run as "
            "`streaq run` does, logger at WARNING; task.result(timeout=...)")


def worker_argv(concurrency: int) -> list[str]:
    return ["-c", "from peers.streaq_bench import main; main()"]


class Client(BaseClient):
    batch = "worker.enqueue_many"

    def __init__(self) -> None:
        self.stack = contextlib.AsyncExitStack()

    async def start(self) -> None:
        await self.stack.enter_async_context(worker)

    async def close(self) -> None:
        await self.stack.aclose()

    async def enqueue(self, task: str, arg: int) -> Any:
        return await TASKS[task].enqueue(arg)

    async def enqueue_batch(self, task: str, args: Iterable[int]) -> None:
        await worker.enqueue_many([TASKS[task].enqueue(a) for a in args])

    async def result(self, handle: Any, timeout: float) -> Any:
        return (await handle.result(timeout=timeout)).result
