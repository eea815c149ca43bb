"""Task events and Prometheus metrics with one pair of run hooks between them.

``asyncq worker --events --metrics-port N`` installs :func:`observed` rather than the
two middleware side by side: one outcome observer (:attr:`Middleware.outcomes`) for
both, so a run costs the worker one ``list.extend`` of its row's values into one list,
and no hook at all (no ``before_run`` unless task-started events are on); the batch
taken from that list (:func:`asyncq.middleware._row.drain`: success rows as columns)
is sent as events and folded into the metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asyncq.events import Event
from asyncq.events.monitor import Events
from asyncq.middleware import Call, Job, Middleware, Outcomes
from asyncq.middleware._row import drain

if TYPE_CHECKING:
    from asyncq.middleware.prometheus import Metrics
    from asyncq.worker import Worker

__all__ = ["Observed", "observed"]


class Observed(Middleware):
    """``events`` and ``metrics`` as one middleware (their lifecycles run as usual)."""

    def __init__(self, events: Events, metrics: Metrics) -> None:
        self.events = events
        self.metrics = metrics
        self.outcomes: Outcomes = []
        events.source = self._for_events
        metrics.stats.source = self._for_metrics
        metrics.events_dropped = lambda: events.drops.count

    def uses(self, hook: str) -> bool:
        if hook == "before_run":  # task-started events only
            return self.events.started
        return super().uses(hook)

    def _for_events(self, worker: str) -> list[Event]:
        """Rows for the event batch (the metrics get them first: the events may drop
        some, the metrics count every run)."""
        rows = drain(self.outcomes)
        self.metrics.stats.add(rows)  # folded now: not queued to be taken again
        return list(rows)

    def _for_metrics(self) -> None:
        """Rows for the metrics (at a scrape, or the lag sampler's fold; the events get
        them too)."""
        rows = drain(self.outcomes)
        if rows:
            self.metrics.stats.add(rows)
            self.events.keep(list(rows))

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

    async def before_run(self, job: Job) -> None:
        self.events.announce(job)
        return None


def observed(events: Events, metrics: Metrics) -> Observed:
    """``events`` and ``metrics`` as one middleware; a ``before_run`` hook only when the
    events include task-started (the run time comes with the outcome)."""
    return Observed(events, metrics)
