"""The small interface every adapter module implements, and the shared settings.

An adapter module (``peers/<lib>_bench.py``) defines, from the ``BENCH_*`` variables:

- the tasks ``noop(n) -> n`` and ``sleep(n) -> n`` (``asyncio.sleep(SLEEP)``), both
  wrapped in ``LEDGER.begin()`` / ``LEDGER.end()``;
- ``PACKAGES``: distributions whose versions the JSON records;
- ``config(concurrency)``: a short description of how the library is set up;
- ``worker_argv(concurrency)``: the arguments after ``python`` that run ONE worker
  process (``{index}`` is replaced by the process number);
- ``Client``: a subclass of :class:`Client` below.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from typing import Any

PREFIX = os.environ.get("BENCH_PREFIX", "bench-unset")
BROKER = os.environ.get("BENCH_BROKER", "redis")  # "redis" or "amqp"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "100"))
SLEEP = 0.1


def warning_logging(*loggers: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict: ``loggers`` at WARNING to stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"bench": {"class": "logging.StreamHandler", "level": "WARNING"}},
        "loggers": {name: {"handlers": ["bench"], "level": "WARNING"} for name in loggers},
    }


class Client:
    """Enqueue-side view of one library; subclasses override what they support."""

    #: how ``enqueue_each`` sends one task at a time (the JSON records it)
    each = "asyncio.gather of single enqueues"
    #: the batch API used by ``enqueue_batch``, or None when the library has none
    batch: str | None = None

    async def start(self) -> None:
        """Connect."""

    async def close(self) -> None:
        """Disconnect."""

    async def enqueue(self, task: str, arg: int) -> Any:
        raise NotImplementedError

    async def enqueue_each(self, task: str, args: Iterable[int]) -> list[Any]:
        return list(await asyncio.gather(*(self.enqueue(task, a) for a in args)))

    async def enqueue_batch(self, task: str, args: Iterable[int]) -> None:
        raise NotImplementedError

    async def result(self, handle: Any, timeout: float) -> Any:
        raise NotImplementedError

    #: how ``fan_in`` awaits (the JSON records it)
    fan_in_how = "inflight coroutines, each: result(await enqueue(...))"

    async def fan_in(self, task: str, n: int, inflight: int, timeout: float) -> list[Any]:
        """W6: ``n`` calls, each enqueued then awaited, ``inflight`` at a time (a web app
        awaiting the tasks it sends); the results, in any order."""
        calls, values = iter(range(n)), []

        async def caller() -> None:
            for i in calls:
                values.append(await self.result(await self.enqueue(task, i), timeout))

        await asyncio.gather(*(caller() for _ in range(inflight)))
        return values

    async def cleanup(self) -> None:
        """Remove what the run left that the driver's ``*<prefix>*`` key sweep misses."""
