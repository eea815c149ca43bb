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
from collections.abc import Iterator
from typing import Any, Final

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.utils import INF

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


class _Histogram:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(BUCKETS, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(BUCKETS, self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == INF else repr(bound), running))
        return out


class RunStats:
    """Outcomes, run times, queue waits and retries by task and queue."""

    def __init__(self) -> None:
        #: outcome rows (:func:`asyncq.middleware._row.run_row`)
        self.pending: deque[tuple[Any, ...]] = deque(maxlen=_MAX_PENDING)
        self._lock = threading.Lock()
        self._outcomes: dict[tuple[str, str, str], int] = {}
        self._retries: dict[Key, int] = {}
        self._run: dict[Key, _Histogram] = {}
        self._wait: dict[Key, _Histogram] = {}

    def fold(self) -> None:
        """Move pending runs into the totals (from any thread)."""
        pending = self.pending
        with self._lock:
            while pending:
                try:
                    kind, ts, _, task, queue, _, _, run, _, delay, _, sent = pending.popleft()
                except IndexError:
                    break
                key = (task, queue)
                counted = (task, queue, _OUTCOMES.get(kind, "failed"))
                self._outcomes[counted] = self._outcomes.get(counted, 0) + 1
                if run is not None:
                    self._histogram(self._run, key).observe(run)
                    if isinstance(sent, int | float):  # enqueue to start
                        self._histogram(self._wait, key).observe(max(0.0, ts - run - sent))
                if delay is not None:
                    self._retries[key] = self._retries.get(key, 0) + 1

    @staticmethod
    def _histogram(table: dict[Key, _Histogram], key: Key) -> _Histogram:
        found = table.get(key)
        if found is None:
            found = table[key] = _Histogram()
        return found

    def families(self) -> Iterator[Any]:
        self.fold()
        with self._lock:
            tasks = CounterMetricFamily("asyncq_tasks", "Task runs by outcome.",
                                        labels=["task", "queue", "outcome"])
            for labels, count in self._outcomes.items():
                tasks.add_metric(list(labels), count)
            retries = CounterMetricFamily("asyncq_task_retries", "Retries scheduled.",
                                          labels=["task", "queue"])
            for key, count in self._retries.items():
                retries.add_metric(list(key), count)
            run = HistogramMetricFamily("asyncq_task_run_seconds", "Task run time.",
                                        labels=["task", "queue"])
            for key, hist in self._run.items():
                run.add_metric(list(key), hist.buckets(), hist.total)
            wait = HistogramMetricFamily("asyncq_task_queue_wait_seconds",
                                         "Time from enqueue to start.", labels=["task", "queue"])
            for key, hist in self._wait.items():
                wait.add_metric(list(key), hist.buckets(), hist.total)
        yield from (tasks, retries, run, wait)
