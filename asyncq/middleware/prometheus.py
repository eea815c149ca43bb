"""Prometheus metrics (``pip install 'asyncq[metrics]'``): ``App(middleware=[Metrics()])``
or ``asyncq worker APP --metrics-port 9808``.

Per task (an outcome observer, :attr:`~asyncq.middleware.Middleware.outcomes`: a run
costs the worker one ``list.extend`` of its row's values, folded into the figures in batches;
nothing when the middleware is not installed):

- ``asyncq_tasks_total{task,queue,outcome}`` — outcome: succeeded, failed, retried,
  revoked, cancelled
- ``asyncq_task_run_seconds{task,queue}`` — histogram of run time
- ``asyncq_task_queue_wait_seconds{task,queue}`` — enqueue to start; needs the producer
  to have this middleware too (it stamps the header ``asyncq-enqueued-at``)
- ``asyncq_task_retries_total{task,queue}``
- ``asyncq_tasks_enqueued_total{task,queue}`` — on the producer

Read at scrape time: ``asyncq_tasks_in_flight``, ``asyncq_prefetch_buffer`` (the
worker's statistics), ``asyncq_event_loop_lag_seconds`` (how late a 0.25 s sleep woke,
last sample), ``asyncq_queue_depth{queue,state}`` with state waiting, scheduled and dead
(asked of the broker at most once per ``depth_ttl`` seconds; the scrape waits up to
2 s for it). With task events too (``--events --metrics-port``, one
:func:`~asyncq.events.observed.observed` middleware): ``asyncq_events_dropped_total``,
the events the worker dropped because more than its buffer holds came between two
batches (the runs are still counted here).

``-w N``: each child process serves its own port, ``port + i - 1`` for child ``i``
(scrape them all, or sum by job); prometheus-client's multiprocess mode is not used.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

from asyncq.errors import ConfigurationError
from asyncq.middleware import Call, Middleware, Outcomes
from asyncq.middleware._row import ENQUEUED_AT, drain

try:
    import prometheus_client as prom
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector
except ImportError:  # pragma: no cover - the extra is not installed
    prom = None  # type: ignore[assignment]
    Collector = object  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from asyncq.worker import Worker

__all__ = ["ENQUEUED_AT", "Metrics"]

logger = logging.getLogger("asyncq.metrics")

_LAG_EVERY: Final = 0.25


class _Live(Collector):
    """Gauges read when scraped: the worker's statistics and the broker's queue depths."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        yield from m.stats.families()
        if m.events_dropped is not None:
            yield CounterMetricFamily("asyncq_events_dropped",
                                      "Task events dropped by the worker (too many between "
                                      "two batches).", m.events_dropped())
        worker = m.worker
        if worker is None:
            return
        stats = worker.statistics()
        yield GaugeMetricFamily("asyncq_tasks_in_flight", "Tasks running now.", stats.running)
        yield GaugeMetricFamily("asyncq_prefetch_buffer",
                                "Messages held waiting for a free slot.", stats.buffered)
        yield GaugeMetricFamily("asyncq_event_loop_lag_seconds",
                                "How late the worker's event loop woke (last sample).", m.lag)
        depth = GaugeMetricFamily("asyncq_queue_depth", "Messages in a queue, by state.",
                                  labels=["queue", "state"])
        for queue, states in m.depths().items():
            for state, count in states.items():
                depth.add_metric([queue, state], count)
        yield depth


class Metrics(Middleware):
    """Prometheus metrics of enqueues and runs; ``port`` starts an HTTP endpoint when the
    worker starts (``addr`` defaults to ``$ASYNCQ_METRICS_ADDR`` or 0.0.0.0)."""

    def __init__(self, *, port: int | None = None, addr: str | None = None,
                 registry: Any = None, depth_ttl: float = 5.0) -> None:
        if prom is None:
            raise ConfigurationError("metrics need prometheus-client: "
                                     "pip install 'asyncq[metrics]'")
        self.port = port
        self.addr = addr or os.environ.get("ASYNCQ_METRICS_ADDR", "0.0.0.0")
        self.registry = registry if registry is not None else prom.CollectorRegistry()
        self.depth_ttl = depth_ttl
        from asyncq.middleware._runstats import RunStats

        self.stats = RunStats()
        self.outcomes: Outcomes = []
        self.stats.source = self._take_outcomes
        self.enqueued = prom.Counter("asyncq_tasks_enqueued", "Tasks sent.",
                                     ["task", "queue"], registry=self.registry)
        self.registry.register(_Live(self))
        self.worker: Worker | None = None
        #: the count of events dropped, when task events go with these metrics
        self.events_dropped: Callable[[], int] | None = None
        self.lag = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._server: Any = None
        self._depths: dict[str, dict[str, int]] = {}
        self._depths_at = 0.0

    # -- producer ----------------------------------------------------------------------
    async def before_enqueue(self, call: Call) -> None:
        call.headers[ENQUEUED_AT] = time.time()

    async def after_enqueue(self, call: Call, task_id: str) -> None:
        queue = call.options.queue or call.task.app.queue_for(call.task)
        self.enqueued.labels(call.name, queue).inc()

    # -- worker ------------------------------------------------------------------------
    async def worker_start(self, worker: Worker) -> None:
        self.worker = worker
        self._loop = asyncio.get_running_loop()
        self._sampler = asyncio.create_task(self._sample_lag(), name="asyncq-loop-lag")
        if self.port is not None:
            self._server, _ = prom.start_http_server(self.port, self.addr,
                                                     registry=self.registry)
            logger.info("metrics on http://%s:%d/metrics", self.addr, self.port)

    async def worker_stop(self, worker: Worker) -> None:
        if self._sampler is not None:
            from asyncq.events.monitor import stop_tasks

            await stop_tasks([self._sampler])
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.worker = None

    def _take_outcomes(self) -> None:
        """The outcomes the worker gave since the last fold, as rows to fold."""
        self.stats.add(drain(self.outcomes))

    async def _sample_lag(self) -> None:
        from asyncq.events.monitor import cancelling

        while not cancelling():
            before = time.perf_counter()
            await asyncio.sleep(_LAG_EVERY)
            self.lag = max(0.0, time.perf_counter() - before - _LAG_EVERY)
            self.stats.fold()

    # -- queue depths, from the scrape thread -------------------------------------------
    def depths(self) -> dict[str, dict[str, int]]:
        """Cached queue depths, refreshed on the worker's loop when older than the TTL."""
        loop, worker = self._loop, self.worker
        if (loop is None or worker is None or loop.is_closed()
                or time.monotonic() - self._depths_at < self.depth_ttl):
            return self._depths
        from asyncq.events.queues import queue_depths

        future = asyncio.run_coroutine_threadsafe(
            queue_depths(worker.app, worker.queues), loop)
        try:
            self._depths = {q: d.as_counts() for q, d in future.result(timeout=2.0).items()}
            self._depths_at = time.monotonic()
        except Exception as exc:
            future.cancel()
            logger.warning("could not read queue depths: %s", exc)
        return self._depths
