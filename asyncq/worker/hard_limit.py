"""Hard time limits that hold when a task blocks the event loop.

The time-limit middleware (:mod:`asyncq.middleware.time_limits`) runs on the event
loop, so a task that blocks the loop (``time.sleep``, a CPU-bound loop, a blocking
client) cannot be stopped by it: it overruns its limit and is recorded SUCCESS. In a
supervised worker process (``asyncq worker -w N``), :class:`HardLimitGuard` watches
from a thread. When the loop has not turned for ``grace`` seconds and a running task
is more than ``grace`` seconds past its hard limit (``timeout``), the guard:

1. records that task FAILURE with ``TimeoutError`` ("exceeded its hard time limit"),
   the traceback being the loop thread's stack, through its own connection to the
   result backend (first final writer wins: a late SUCCESS cannot replace it);
2. exits the process with :data:`EXIT_HARD_LIMIT`; the supervisor starts a fresh one.

The message itself is left unacknowledged: it comes back (RabbitMQ at once, Redis
after the lease) and whichever worker gets it finds the final record and acks it
without running it. Other tasks the process was running come back the same way and
run again. ``on_failure`` hooks and retries do not run for a task stopped this way.
With ``rpc://`` results the guard cannot write the record (replies need the dead
process's connection): the message is redelivered and, if it blocks every time,
dead-lettered after ``--max-deliveries``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from asyncq.errors import TimeLimitExceeded
from asyncq.middleware import CallNext, Job, Middleware
from asyncq.middleware.time_limits import HARD_GRACE
from asyncq.records import ResultRecord
from asyncq.states import TaskState

if TYPE_CHECKING:
    from asyncq.task import Task
    from asyncq.worker import Worker

__all__ = ["EXIT_HARD_LIMIT", "HardLimitGuard"]

logger = logging.getLogger("asyncq.worker")

#: The exit status of a process stopped because a task blocked it past its hard limit.
EXIT_HARD_LIMIT: Final = 71
#: How long the guard gives the backend to take the FAILURE record before exiting.
RECORD_TIMEOUT: Final = 5.0


class HardLimitGuard(Middleware):
    """Ends the process when a task blocks the loop past its hard time limit.

    Only for supervised processes (the CLI adds it to each ``-w N`` child): exiting is
    how the blocked task is stopped, and the supervisor replaces the process.
    """

    def __init__(self, *, grace: float = HARD_GRACE, interval: float = 0.1,
                 exit: Callable[[int], Any] = os._exit) -> None:
        self.grace = grace
        self.interval = interval
        self._exit = exit
        self._running: dict[Job, float] = {}
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._handle: asyncio.TimerHandle | None = None
        self._loop_thread = threading.get_ident()

    def applies_to(self, task: Task[..., Any]) -> bool:
        return task.config.timeout is not None

    async def worker_start(self, worker: Worker) -> None:
        self._loop_thread = threading.get_ident()
        self._tick(asyncio.get_running_loop())
        threading.Thread(target=self._watch, name="asyncq-hard-limit", daemon=True).start()

    async def worker_stop(self, worker: Worker) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()

    async def around_run(self, job: Job, call_next: CallNext) -> Any:
        timeout = job.task.config.timeout
        assert timeout is not None
        self._running[job] = time.monotonic() + timeout
        try:
            return await call_next()
        finally:
            del self._running[job]

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._beat = time.monotonic()
        if not self._stop.is_set():
            self._handle = loop.call_later(self.interval, self._tick, loop)

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            if now - self._beat < self.grace:
                continue  # the loop turns: the time-limit middleware does the work
            try:
                running = list(self._running.items())
            except RuntimeError:  # changed while copied: the loop is turning again
                continue
            overdue = [job for job, deadline in running if now > deadline + self.grace]
            if overdue:
                self._fire(overdue, now - self._beat)
                return

    def _fire(self, overdue: list[Job], blocked: float) -> None:
        stack = self._stack()
        for job in overdue:
            logger.error("%s[%s] blocked the event loop for %.1fs, past its hard time limit "
                         "of %gs: recording the failure and replacing this worker process",
                         job.name, job.id, blocked, job.task.config.timeout)
        try:
            asyncio.run(_record(overdue, stack))
        except Exception as exc:
            logger.error("could not record the time-limit failure (%s); the message will "
                         "be redelivered", exc)
        for handler in logging.getLogger().handlers:
            handler.flush()
        self._exit(EXIT_HARD_LIMIT)

    def _stack(self) -> str:
        frame = sys._current_frames().get(self._loop_thread)
        if frame is None:
            return ""
        return "Event loop thread, blocked:\n" + "".join(traceback.format_stack(frame))


async def _record(jobs: list[Job], stack: str) -> None:
    """Store each job's FAILURE through a backend of our own (the loop's is stuck)."""
    app = jobs[0].app
    own = type(app.backend).create(app.backend.url, ttl=app.backend.ttl,
                                   max_size=app.backend.max_size)
    writes = []
    for job in jobs:
        if job.task.config.ignore_result:
            continue
        timeout = job.task.config.timeout
        assert timeout is not None
        record = ResultRecord(TaskState.FAILURE, None, "TimeoutError",
                              str(TimeLimitExceeded("hard ", timeout)), stack[-64 * 1024:],
                              job.attempt, job.name, time.time())
        writes.append(own.key_write(job.id, record))
    async with asyncio.timeout(RECORD_TIMEOUT):
        await own.connect()
        try:
            await own.store_writes(writes)
        finally:
            await own.close()
