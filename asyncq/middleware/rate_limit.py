"""Rate limits: a rate-limited task waits for its token before it takes a run slot.

Built in; applies only to tasks registered with ``rate_limit=`` (see
:mod:`asyncq.ratelimit`), through the worker's admission step (``admit``): while a
job waits its turn, other tasks keep running, and its still-queued messages stay on
the server (the waiting job counts against the worker's prefetch bound).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from asyncq.errors import ConfigurationError
from asyncq.middleware import Job, Middleware
from asyncq.ratelimit import Bucket, MemoryBucket, RedisBucket, parse_rate
from asyncq.task import Task

if TYPE_CHECKING:
    from asyncq.worker import Worker

__all__ = ["RateLimit"]

logger = logging.getLogger("asyncq.middleware.rate_limit")


class RateLimit(Middleware):
    """Admits each job of a rate-limited task once the app-wide bucket gives a token."""

    def __init__(self) -> None:
        self._buckets: dict[str, Bucket] = {}

    def applies_to(self, task: Task[..., Any]) -> bool:
        return task.config.rate_limit is not None

    async def worker_start(self, worker: Worker) -> None:
        for task in worker.app.tasks.values():  # built again: the broker may be swapped
            if task.config.rate_limit is not None:
                self._buckets[task.name] = _bucket(worker, task)

    async def admit(self, job: Job) -> None:
        bucket = self._buckets.get(job.name)
        if bucket is None:  # a task registered after the worker started
            return
        delay = 0.1
        while True:
            try:
                await bucket.acquire()
                return
            except Exception as exc:  # the server is away: the job waits, nothing is lost
                logger.warning("rate limit of %s unavailable (%s); retrying in %.1fs",
                               job.name, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


def _bucket(worker: Worker, task: Task[..., Any]) -> Bucket:
    assert task.config.rate_limit is not None
    rate = parse_rate(task.config.rate_limit)
    app = worker.app
    key = f"asyncq:ratelimit:{{{app.name}}}:{task.name}"
    for side in (app.broker, app.backend):
        client = getattr(side, "client", None)
        if type(side).__module__.startswith(("asyncq.brokers.redis", "asyncq.results.redis")):
            return RedisBucket(client, key, rate)
    if type(app.broker).__module__ == "asyncq.brokers.memory":
        return MemoryBucket(rate)
    raise ConfigurationError(
        f"task {task.name} has rate_limit={task.config.rate_limit!r}: rate limits are "
        "shared through Redis, and this app has none (RabbitMQ with RPC results); give "
        "it a Redis result backend, e.g. App(..., backend='redis://...')")
