"""Revoke: a revoked message is acked without running; ``terminate`` cancels a run.

Built in, around every task. Each worker process listens on its app's revoke bus
(:mod:`asyncq.control`) from ``worker_start``: it first reads the revocations of the
window (so a restarted worker still skips what was revoked before it came up), then
follows new ones. ``check_run`` is a set lookup (no coroutine); a revoked task is skipped with a
final ``REVOKED`` record. A revocation with ``terminate=True`` also cancels the task if
it is running in this worker (``CancelledError`` at its next ``await``); its message is
handed back and, revoked, acked at once without running.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from asyncq.control import (
    DEFAULT_MAX_REVOKED,
    DEFAULT_REVOKE_WINDOW,
    Revocation,
    RevokeBus,
    RevokedSet,
    bus_for,
)
from asyncq.middleware import Job, Middleware, Skip
from asyncq.states import TaskState

if TYPE_CHECKING:
    from asyncq.brokers import Broker
    from asyncq.worker import Worker

__all__ = ["Revoke"]

logger = logging.getLogger("asyncq.middleware.revoke")

_REVOKED = Skip(TaskState.REVOKED, "Revoked", "the task was revoked before it ran")
#: How long a starting worker waits for the window's revocations before it goes on.
READY_TIMEOUT = 10.0


class Revoke(Middleware):
    """Skips revoked tasks; cancels running ones revoked with ``terminate=True``."""

    def __init__(self, app_name: str, window: float = DEFAULT_REVOKE_WINDOW,
                 max_entries: int = DEFAULT_MAX_REVOKED) -> None:
        self.app_name = app_name
        self.window = window
        self.max_entries = max_entries
        self.revoked = RevokedSet(window, max_entries)
        self._bus: RevokeBus | None = None
        self._workers: list[Worker] = []
        self._listener: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def bus(self, broker: Broker) -> RevokeBus:
        """The revoke bus on ``broker``'s server (the App's broker may be swapped, as
        ``asyncq.testing.use_memory`` does, so it is looked up each time)."""
        if self._bus is None or self._bus.broker is not broker:
            self._bus = bus_for(broker, self.app_name, window=self.window,
                                max_entries=self.max_entries)
        return self._bus

    async def worker_start(self, worker: Worker) -> None:
        self._workers.append(worker)
        if self._listener is None or self._listener.done():
            ready, self._stop = asyncio.Event(), asyncio.Event()
            bus = self.bus(worker.app.broker)
            self._listener = asyncio.create_task(
                bus.listen(self._on_revoke, ready, self._stop), name="asyncq-revoke-listener")
            self._listener.add_done_callback(_report)
            waiting = asyncio.create_task(ready.wait())
            try:
                await asyncio.wait({waiting, self._listener}, timeout=READY_TIMEOUT,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiting.cancel()
            if not ready.is_set() and not self._listener.done():
                logger.warning("revocations of the last %gs not read within %gs; going on",
                               self.window, READY_TIMEOUT)

    async def worker_stop(self, worker: Worker) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
        if self._workers or self._listener is None:
            return
        listener, self._listener = self._listener, None
        self._stop.set()  # it returns by itself at once (or within a second)
        done, _ = await asyncio.wait({listener}, timeout=3)
        if not done:  # a last resort: a cancelled client read may not end
            listener.cancel()
            done, _ = await asyncio.wait({listener}, timeout=2)
        if not done:
            logger.warning("the revoke listener did not stop; leaving it behind")

    def check_run(self, job: Job) -> Skip | None:
        task_id = job.message.id  # (most have no entry: found without a Python call)
        if self.revoked.until_of(task_id) is None:
            return None
        return _REVOKED if task_id in self.revoked else None  # (``in`` checks the expiry)

    def _on_revoke(self, revocation: Revocation) -> None:
        """Remember a revocation; cancel the job now if it says terminate."""
        if not self.revoked.add(revocation) or not revocation.terminate:
            return
        for worker in self._workers:
            handler = worker.running_task(revocation.task_id)
            if handler is not None:
                logger.info("terminating revoked task %s", revocation.task_id)
                handler.cancel()


def _report(listener: asyncio.Task[None]) -> None:
    if not listener.cancelled() and listener.exception() is not None:
        logger.error("the revoke listener stopped: %r; revocations sent from now on do "
                     "not reach this worker", listener.exception())
