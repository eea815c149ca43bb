"""arq 0.28 (its own venv: it pins redis<6) — create_pool / WorkerSettings, as its docs show.

poll_delay is 10 ms for the worker and for ``job.result`` instead of the default 0.5 s:
with 0.5 s, 1,000 sequential round trips would take ~10 minutes.  arq has no batch
enqueue API.  Job ids carry the run prefix (``_job_id``) so the key sweep finds them.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, ClassVar

from arq import create_pool
from arq.connections import RedisSettings

from peers.base import CONCURRENCY, PREFIX, REDIS_URL, SLEEP, warning_logging
from peers.base import Client as BaseClient
from peers.ledger import LEDGER

PACKAGES = ["arq", "redis", "hiredis"]
POLL = 0.01
REDIS = RedisSettings.from_dsn(REDIS_URL)


async def noop(ctx: dict[str, Any], n: int) -> int:
    LEDGER.begin()
    LEDGER.end()
    return n


async def sleep(ctx: dict[str, Any], n: int) -> int:
    LEDGER.begin()
    await asyncio.sleep(SLEEP)
    LEDGER.end()
    return n


def settings(concurrency: int) -> type:
    class WorkerSettings:
        functions: ClassVar = [noop, sleep]
        redis_settings = REDIS
        queue_name = PREFIX
        max_jobs = concurrency
        poll_delay = POLL

    return WorkerSettings


WorkerSettings = settings(CONCURRENCY)
LOG_CONFIG = warning_logging("arq")


def config(concurrency: int) -> str:
    return (f"create_pool(RedisSettings.from_dsn(url)); `arq WorkerSettings` with "
            f"max_jobs={concurrency}, poll_delay={POLL}; job.result(poll_delay={POLL})")


def worker_argv(concurrency: int) -> list[str]:
    return ["-m", "arq", "peers.arq_bench.WorkerSettings",
            "--custom-log-dict", "peers.arq_bench.LOG_CONFIG"]


class Client(BaseClient):
    def __init__(self) -> None:
        self.ids = itertools.count()
        self.pool: Any = None

    async def start(self) -> None:
        self.pool = await create_pool(REDIS, default_queue_name=PREFIX)

    async def close(self) -> None:
        await self.pool.aclose()

    async def enqueue(self, task: str, arg: int) -> Any:
        return await self.pool.enqueue_job(task, arg, _job_id=f"{PREFIX}:{next(self.ids)}")

    async def result(self, handle: Any, timeout: float) -> Any:
        return await handle.result(timeout=timeout, poll_delay=POLL)
