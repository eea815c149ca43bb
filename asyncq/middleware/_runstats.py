"""Cheap per-task accounting for :mod:`asyncq.middleware.prometheus`.

A run costs one tuple appended to a deque; the tuples are folded into counters and
histogram buckets in batches (every 0.25 s on the worker's loop, and at each scrape in
the scrape thread), under a lock only the folding takes. prometheus-client's own
``labels().observe()`` costs several times more per call (a lock, a label lookup and a
bucket search in Python), which a drain of tens of thousands of tasks a second feels.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Final

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.utils import INF

from asyncq.middleware._row import take

__all__ = ["BUCKETS", "RunStats"]

#: Upper bounds of the histogram buckets, seconds (prometheus-client's defaults).
BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                  7.5, 10.0, INF)
_MAX_PENDING: Final = 1_000_000
#: The outcome label of each event type.
_OUTCOMES: Final = {"task-succeeded": "succeeded", "task-failed": "failed",
                    "task-retried": "retried", "task-revoked": "revoked",
                    "task-cancelled": "cancelled"}

Key = tuple[str, str]
_NUMBER: Final = (int, float)


class _Series:
    """What is counted for one (task, queue): outcomes by event type, retries, and the
    run-time and queue-wait histograms (bucket counts and sums)."""

    __slots__ = ("kinds", "retries", "run", "run_sum", "wait", "wait_sum")

    def __init__(self) -> None:
        self.kinds: dict[str, int] = {}
        self.retries = 0
        self.run = [0] * len(BUCKETS)
        self.run_sum = 0.0
        self.wait = [0] * len(BUCKETS)
        self.wait_sum = 0.0

    def outcomes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for kind, count in self.kinds.items():
            outcome = _OUTCOMES.get(kind, "failed")
            out[outcome] = out.get(outcome, 0) + count
        return out


def _buckets(counts: list[int]) -> list[tuple[str, float]]:
    """Cumulative bucket counts, labelled with their upper bounds."""
    out: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip(BUCKETS, counts, strict=True):
        running += count
        out.append(("+Inf" if bound == INF else repr(bound), running))
    return out


class RunStats:
    """Outcomes, run times, queue waits and retries by task and queue."""

    def __init__(self) -> None:
        #: outcome rows (:func:`asyncq.middleware._row.drain`)
        self.pending: deque[tuple[Any, ...]] = deque(maxlen=_MAX_PENDING)
        #: called first by each fold: moves outcomes waiting elsewhere into ``pending``
        self.source: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._series: dict[Key, _Series] = {}

    def fold(self) -> None:
        """Move pending runs into the totals (from any thread). One loop with no call
        per row: the rows of a batch mostly share their task and queue."""
        if self.source is not None:
            self.source()
        with self._lock:
            last_task = last_queue = None
            series = _Series()
            kinds = series.kinds
            for kind, ts, _, task, queue, _, _, run, _, delay, _, sent in take(self.pending):
                if task != last_task or queue != last_queue:
                    last_task, last_queue = task, queue
                    series = self._of((task, queue))
                    kinds = series.kinds
                kinds[kind] = kinds.get(kind, 0) + 1
                if run is not None:
                    series.run[bisect_left(BUCKETS, run)] += 1
                    series.run_sum += run
                    if isinstance(sent, _NUMBER):  # enqueue to start
                        wait = ts - run - sent
                        if wait < 0.0:
                            wait = 0.0
                        series.wait[bisect_left(BUCKETS, wait)] += 1
                        series.wait_sum += wait
                if delay is not None:
                    series.retries += 1

    def _of(self, key: Key) -> _Series:
        found = self._series.get(key)
        if found is None:
            found = self._series[key] = _Series()
        return found

    def families(self) -> Iterator[Any]:
        self.fold()
        with self._lock:
            tasks = CounterMetricFamily("asyncq_tasks", "Task runs by outcome.",
                                        labels=["task", "queue", "outcome"])
            retries = CounterMetricFamily("asyncq_task_retries", "Retries scheduled.",
                                          labels=["task", "queue"])
            run = HistogramMetricFamily("asyncq_task_run_seconds", "Task run time.",
                                        labels=["task", "queue"])
            wait = HistogramMetricFamily("asyncq_task_queue_wait_seconds",
                                         "Time from enqueue to start.", labels=["task", "queue"])
            for key, series in self._series.items():
                self._export(key, series, (tasks, retries, run, wait))
        yield from (tasks, retries, run, wait)

    @staticmethod
    def _export(key: Key, series: _Series, families: tuple[Any, Any, Any, Any]) -> None:
        tasks, retries, run, wait = families
        labels = list(key)
        for outcome, count in series.outcomes().items():
            tasks.add_metric([*labels, outcome], count)
        if series.retries:
            retries.add_metric(labels, series.retries)
        if any(series.run):
            run.add_metric(labels, _buckets(series.run), series.run_sum)
        if any(series.wait):
            wait.add_metric(labels, _buckets(series.wait), series.wait_sum)
