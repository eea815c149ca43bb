"""Task events and Prometheus metrics with one pair of run hooks between them.

``asyncq worker --events --metrics-port N`` installs :func:`observed` rather than the
two middleware side by side: each hook call costs about as much as what it does for a
no-op task, so they share one ``after_run`` (the run time comes with the outcome, so
there is no ``before_run`` unless task-started events are on), and a run makes one
tuple for both (see :mod:`asyncq.middleware._row`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asyncq.events.monitor import Events
from asyncq.middleware import Call, Job, Middleware, RunResult
from asyncq.middleware._row import run_row

if TYPE_CHECKING:
    from asyncq.middleware.prometheus import Metrics
    from asyncq.worker import Worker

__all__ = ["Observed", "observed"]



class Observed(Middleware):
    """``events`` and ``metrics`` as one middleware (their lifecycles run as usual)."""

    def __init__(self, events: Events, metrics: Metrics) -> None:
        self.events = events
        self.metrics = metrics

    async def before_enqueue(self, call: Call) -> None:
        await self.metrics.before_enqueue(call)

    async def after_enqueue(self, call: Call, task_id: str) -> None:
        await self.metrics.after_enqueue(call, task_id)

    async def worker_start(self, worker: Worker) -> None:
        await self.events.worker_start(worker)
        await self.metrics.worker_start(worker)

    async def worker_stop(self, worker: Worker) -> None:
        await self.metrics.worker_stop(worker)
        await self.events.worker_stop(worker)

    async def after_run(self, job: Job, result: RunResult) -> None:
        row = run_row(job, result, result.runtime, self.events.name)
        self.events.keep(row)  # one tuple for both: sent as an event, folded into metrics
        self.metrics.stats.pending.append(row)


class _ObservedStarted(Observed):
    """:class:`Observed` with task-started events (``--events-all``)."""

    async def before_run(self, job: Job) -> None:
        self.events.announce(job)
        return None


def observed(events: Events, metrics: Metrics) -> Observed:
    """``events`` and ``metrics`` as one middleware; a ``before_run`` hook only when the
    events include task-started (the run time comes with the outcome)."""
    return _ObservedStarted(events, metrics) if events.started else Observed(events, metrics)
