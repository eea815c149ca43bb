"""The run stage: a fixed set of long-lived tasks that take jobs from the run buffer.

One asyncio task per run slot (``concurrency`` of them) instead of one new task per
message: a task made, scheduled and collected for every message was the largest
single cost of a no-op drain (``create_task`` 14% of a profiled worker). A runner
that finishes a job takes the next one at once, in the same step of the event loop;
idle runners wait on futures of their own and are woken one per job added.

Each job still starts in the worker's own context: a job that leaves a context
variable set (``ContextVar.set`` with no reset) retires its runner, and a fresh one
takes its place, so nothing one task sets is seen by the next. So does a job
cancelled from outside (``revoke(terminate=True)``): the runner's cancellation state
goes with it. The runners can be halted (a suspect message runs alone) and resumed.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from asyncq.middleware import Job

__all__ = ["Runners"]


class Runners:
    """``count`` runner tasks calling ``handle(job)`` for the jobs put in :attr:`jobs`."""

    def __init__(self, count: int, handle: Callable[[Job], Coroutine[Any, Any, None]]) -> None:
        self._count = count
        self._handle = handle
        #: jobs waiting for a runner, in order
        self.jobs: deque[Job] = deque()
        #: the job each busy runner runs
        self.busy: dict[asyncio.Task[None], Job] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._halted = False
        self._closing = False
        #: a _spread is scheduled (see wake)
        self._spreading = False
        self._idle = asyncio.Event()
        self._idle.set()
        #: someone waits for the runners to be idle (a runner tells the event only then)
        self._idle_awaited = False
        self._drained = asyncio.Event()
        self._context = contextvars.copy_context()

    def start(self) -> None:
        self._context = contextvars.copy_context()
        for _ in range(self._count):
            self._spawn()

    def __len__(self) -> int:
        return len(self.busy)

    def running(self) -> Iterator[Job]:
        return iter(self.busy.values())

    def wake(self) -> None:
        """Wake an idle runner for the jobs added, and, in the loop's next step, one for
        each job still waiting then: a runner whose jobs finish without waiting (no-op
        tasks) takes the next at once, so the others would wake for nothing (a future,
        a callback and a task step each)."""
        if self._halted or not self.jobs:
            return
        waiting = self._waiting
        while waiting:
            waiter = waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break
        if waiting and not self._spreading:
            self._spreading = True
            asyncio.get_running_loop().call_soon(self._spread)

    def _spread(self) -> None:
        """Wake an idle runner for each job still waiting."""
        self._spreading = False
        if self._halted:
            return
        waiting = self._waiting
        for _ in range(min(len(self.jobs), len(waiting))):
            waiter = waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def halt(self) -> None:
        """Take no more jobs until :meth:`resume` (running ones go on)."""
        self._halted = True

    def resume(self) -> None:
        self._halted = False
        self.wake()

    async def wait_idle(self) -> None:
        """Until no runner has a job."""
        while self.busy:
            self._idle_awaited = True
            self._idle.clear()
            await self._idle.wait()

    async def wait_drained(self) -> None:
        """Until every job waiting has been taken."""
        while self.jobs:
            self._drained.clear()
            await self._drained.wait()

    def remove(self, job: Job) -> None:
        """Take a job out of those waiting (it is handed back elsewhere)."""
        self.jobs.remove(job)
        if not self.jobs:
            self._drained.set()

    async def run_alone(self, job: Job) -> None:
        """Run ``job`` in a task of its own while the runners are halted; it counts
        as busy until it ends (also when this wait is cancelled)."""
        task = asyncio.get_running_loop().create_task(self._handle(job))
        self.busy[task] = job
        task.add_done_callback(self._alone_done)
        await asyncio.wait({task})

    def _alone_done(self, task: asyncio.Task[None]) -> None:
        self.busy.pop(task, None)
        if not self.busy:
            self._idle.set()

    async def close(
        self, timeout: float, abort: asyncio.Event, on_abandon: Callable[[], None]
    ) -> None:
        """Take no more jobs; give running ones ``timeout`` seconds (less if ``abort``
        is set), then cancel them (``on_abandon`` first), and end every runner."""
        self._halted = True
        if self.busy:
            aborted = asyncio.create_task(abort.wait())
            finished = asyncio.create_task(self.wait_idle())
            await asyncio.wait(
                [aborted, finished], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            aborted.cancel()
            finished.cancel()
        self._closing = True
        if self.busy:
            on_abandon()
            for runner in list(self.busy):
                runner.cancel()
            await self.wait_idle()  # each hands its message back and ends
        tasks = set(self._tasks)
        for runner in tasks:
            runner.cancel()
        if tasks:
            await asyncio.wait(tasks)

    # -- one runner ----------------------------------------------------------------
    def _spawn(self) -> None:
        runner = asyncio.get_running_loop().create_task(
            self._run(), name="asyncq-runner", context=self._context.copy()
        )
        self._tasks.add(runner)
        runner.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        loop = me.get_loop()  # (asking for the running loop is a system call on 3.11)
        base = contextvars.copy_context()
        busy = self.busy
        while True:
            job = self._take_now()  # (no coroutine for _take when a job waits)
            job = job if job is not None else await self._take(loop)
            busy[me] = job
            try:
                await self._handle(job)
            except asyncio.CancelledError:
                if self._closing:
                    raise
                self._spawn()  # cancelled from outside (terminate): a fresh runner
                return
            except (KeyboardInterrupt, SystemExit):  # never a runner short meanwhile
                if not self._closing:
                    self._spawn()
                raise
            finally:
                del busy[me]
                if not busy and self._idle_awaited:
                    self._idle_awaited = False
                    self._idle.set()
            if self._closing:
                return
            # the job left a variable set, or swallowed a cancel (terminate) it was sent
            if me.cancelling() or contextvars.copy_context() != base:
                self._spawn()
                return

    def _take_now(self) -> Job | None:
        """The next job, if one waits and the runners are not halted."""
        jobs = self.jobs
        if self._halted or not jobs:
            return None
        job = jobs.popleft()
        if not jobs:
            self._drained.set()
        return job

    async def _take(self, loop: asyncio.AbstractEventLoop) -> Job:
        while True:
            job = self._take_now()
            if job is not None:
                return job
            waiter = loop.create_future()
            self._waiting.append(waiter)
            await waiter
