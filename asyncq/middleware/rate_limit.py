"""Rate limits: a rate-limited task waits for its token before it takes a run slot.

Built in; applies only to tasks registered with ``rate_limit=`` (see
:mod:`asyncq.ratelimit`) or given a limit at run time, through the worker's admission
step (``admit``): while a job waits its turn, other tasks keep running, and its
still-queued messages stay on the server (the waiting job counts against the worker's
prefetch bound).

Changing a limit at run time (``asyncq control APP rate-limit TASK 10/s``,
``await app.control.rate_limit("TASK", "10/s")``; ``off`` goes back to the code's
``rate_limit=``):

1. the sender stores the new rate on the server that holds the buckets, in the hash
   ``asyncq:control:{<app>}:rate_limits`` (task -> rate), kept until set ``off``;
2. it asks every running worker over the control bus (workers started with
   ``--events``); each applies it at once (:meth:`RateLimit.apply`): the bucket's rate
   changes, a task that had no limit gets one (its next messages go through admission),
   and jobs already waiting for a token ask again at the new rate;
3. a worker started later reads the stored rates before it consumes, so every worker
   of the app spaces runs by the same rate (the bucket is shared by all of them).
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
    from asyncq.app import App
    from asyncq.worker import Worker

__all__ = ["RateLimit", "limiter_of", "rates_key", "store_rate", "stored_rates"]

logger = logging.getLogger("asyncq.middleware.rate_limit")


class RateLimit(Middleware):
    """Admits each job of a rate-limited task once the app-wide bucket gives a token."""

    def __init__(self) -> None:
        self._buckets: dict[str, Bucket] = {}
        #: rates set at run time: task name -> rate as given (``"10/s"``)
        self.overrides: dict[str, str] = {}

    def applies_to(self, task: Task[..., Any]) -> bool:
        return task.config.rate_limit is not None or task.name in self.overrides

    async def worker_start(self, worker: Worker) -> None:
        try:
            self.overrides = {task: rate for task, rate in (await stored_rates(worker.app)).items()
                              if task in worker.app.tasks and _valid(rate)}
        except Exception as exc:  # the limits in the code still hold
            logger.warning("could not read the rate limits set at run time: %s", exc)
        self._buckets.clear()  # built again: the broker may be swapped
        for task in worker.app.tasks.values():
            rate = self._rate_of(task)
            if rate is not None:
                self._buckets[task.name] = _bucket(worker, task, rate)

    def _rate_of(self, task: Task[..., Any]) -> str | None:
        return self.overrides.get(task.name, task.config.rate_limit)

    def apply(self, worker: Worker, name: str, rate: str | None) -> str:
        """Use ``rate`` for task ``name`` from now on (``None``: back to the code's
        limit, or none); returns the limit now in force. ConfigurationError for an
        unknown task, a bad rate, or an app with no shared store for limits."""
        task = worker.app.tasks.get(name)
        if task is None:
            raise ConfigurationError(f"no task named {name[:200]!r}")
        now = rate if rate is not None else task.config.rate_limit
        bucket = self._buckets.get(name)
        if bucket is not None:  # None lets the jobs waiting for a token through
            bucket.set_rate(None if now is None else parse_rate(now))
            if now is None:
                del self._buckets[name]
        elif now is not None:  # raises (changing nothing) where limits cannot be kept
            self._buckets[name] = _bucket(worker, task, now)
        if rate is None:
            self.overrides.pop(name, None)
        else:
            self.overrides[name] = rate
        worker.executor.forget_pipelines()  # admission for this task: on, or off
        return now or "none"

    async def admit(self, job: Job) -> None:
        bucket = self._buckets.get(job.name)
        if bucket is None:  # a task registered after the worker started, or lifted
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


def limiter_of(app: App) -> RateLimit:
    """The app's built-in rate limiter."""
    for mw in app.run_middleware():
        if isinstance(mw, RateLimit):
            return mw
    raise ConfigurationError("this app has no rate limiter")  # pragma: no cover


def _valid(rate: Any) -> bool:
    try:
        parse_rate(rate)
    except ConfigurationError:
        logger.warning("ignored a stored rate limit that is not a rate: %r", str(rate)[:50])
        return False
    return True


def _store(app: App) -> Any | None:
    """The Redis client that holds the app's buckets (the broker's, else the result
    backend's), or ``None``."""
    for side in (app.broker, app.backend):
        if type(side).__module__.startswith(("asyncq.brokers.redis", "asyncq.results.redis")):
            return getattr(side, "client", None)
    return None


def rates_key(app_name: str) -> str:
    """The hash of the rates set at run time (task -> rate)."""
    return f"asyncq:control:{{{app_name}}}:rate_limits"


async def stored_rates(app: App) -> dict[str, str]:
    """The rates set at run time and kept on the server (none without a Redis store)."""
    client = _store(app)
    if client is None:
        return {}
    raw = await client.hgetall(rates_key(app.name))
    return {_text(task): _text(rate) for task, rate in raw.items()}


async def store_rate(app: App, task: str, rate: str | None) -> bool:
    """Keep ``rate`` for ``task`` on the server (``None``: forget it); False where the
    app has no Redis to keep it in."""
    client = _store(app)
    if client is None:
        return False
    if rate is None:
        await client.hdel(rates_key(app.name), task)
    else:
        await client.hset(rates_key(app.name), task, rate)
    return True


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _bucket(worker: Worker, task: Task[..., Any], text: str) -> Bucket:
    rate = parse_rate(text)
    app = worker.app
    client = _store(app)
    if client is not None:
        return RedisBucket(client, f"asyncq:ratelimit:{{{app.name}}}:{task.name}", rate)
    if type(app.broker).__module__ == "asyncq.brokers.memory":
        return MemoryBucket(rate)
    raise ConfigurationError(
        f"task {task.name} has rate_limit={text!r}: rate limits are "
        "shared through Redis, and this app has none (RabbitMQ with RPC results); give "
        "it a Redis result backend, e.g. App(..., backend='redis://...')")
