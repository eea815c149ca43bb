"""Recycling worker processes: ``asyncq worker --max-tasks-per-child K
--max-memory-per-child MB``.

A worker process that has run ``K`` tasks, or whose resident memory has grown past
``MB`` mebibytes, stops the way SIGTERM stops it (it stops fetching, lets running
tasks finish within the shutdown timeout and hands back what it holds) and exits with
:data:`EXIT_RECYCLED`; the supervisor (:mod:`asyncq.cli.supervise`) starts a fresh
process in its place. Tasks are counted as they finish: the tasks running when the
K-th finishes finish too, and a slot freed at that moment may start one more, so a
process with ``concurrency`` C runs between K and ``K + C`` tasks (the worker's
dispatch loop does not check for a stop per task, to keep its fast path as it is).
Memory is sampled every second,
and only once the process has run a task (so a process that starts over the limit
is not replaced in a loop).

Both are middleware the CLI adds to the App of each supervised process; with an
in-process :class:`~asyncq.Worker` they stop the worker, and what happens next is up
to you.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import sys
from typing import TYPE_CHECKING, Final

from asyncq.middleware import Job, Middleware, RunResult

if TYPE_CHECKING:
    from asyncq.worker import Worker

__all__ = ["EXIT_RECYCLED", "MaxMemory", "MaxTasks", "Recycle", "rss_bytes"]

logger = logging.getLogger("asyncq.worker")

#: The exit status of a process that stopped to be replaced.
EXIT_RECYCLED: Final = 70


class Recycle(Middleware):
    """Base of the recycling limits: ``reached`` says why the worker was stopped."""

    reached: str | None = None
    _worker: Worker | None = None

    async def worker_start(self, worker: Worker) -> None:
        self._worker = worker

    def _reach(self, why: str) -> None:
        worker = self._worker
        if self.reached is None and worker is not None and not worker.statistics().stopping:
            self.reached = why
            logger.info("%s: stopping this worker process to be replaced", why)
            worker.stop()


class MaxTasks(Recycle):
    """Stop the worker once it has run ``limit`` tasks."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the task limit must be at least 1")
        self.limit = limit
        self.done = 0

    async def after_run(self, job: Job, result: RunResult) -> None:
        self.done += 1
        if self.done >= self.limit:
            self._reach(f"ran {self.done} tasks (--max-tasks-per-child {self.limit})")


class MaxMemory(Recycle):
    """Stop the worker once its resident memory exceeds ``megabytes`` MiB."""

    def __init__(self, megabytes: float, *, interval: float = 1.0) -> None:
        if megabytes <= 0:
            raise ValueError("the memory limit must be positive")
        self.limit = int(megabytes * 1024 * 1024)
        self.interval = interval
        self._watch: asyncio.Task[None] | None = None

    async def worker_start(self, worker: Worker) -> None:
        await super().worker_start(worker)
        self._watch = asyncio.create_task(self._sample(worker), name="asyncq-max-memory")

    async def worker_stop(self, worker: Worker) -> None:
        if self._watch is not None:
            self._watch.cancel()

    async def _sample(self, worker: Worker) -> None:
        while self.reached is None:
            await asyncio.sleep(self.interval)
            if worker.statistics().settled == 0:
                continue
            rss = rss_bytes()
            if rss > self.limit:
                self._reach(f"resident memory {rss / 2**20:.0f} MiB is over "
                            f"--max-memory-per-child {self.limit / 2**20:g}")


def rss_bytes() -> int:
    """This process's resident memory now (Linux), else its peak."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
