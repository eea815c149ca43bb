"""Cheap per-task accounting for :mod:`asyncq.middleware.prometheus`.

A run costs one tuple appended to a deque; the tuples are folded into counters and
histogram buckets in batches (every 0.25 s on the worker's loop, and at each scrape in
the scrape thread), under a lock only the folding takes. prometheus-client's own
``labels().observe()`` costs several times more per call (a lock, a label lookup and a
bucket search in Python), which a drain of tens of thousands of tasks a second feels.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from itertools import compress, repeat
from math import isfinite
from operator import eq, ne, sub
from typing import Any, Final

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.utils import INF

from asyncq.middleware._row import SHORT, Successes

__all__ = ["BUCKETS", "RunStats"]

#: Upper bounds of the histogram buckets, seconds (prometheus-client's defaults).
BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                  7.5, 10.0, INF)
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

    def succeeded(self, ts: list[Any], runs: list[Any], sent: list[Any]) -> None:
        """Count success rows (:data:`asyncq.events.SUCCESS_ROW`) of this series, given
        as their columns of times, run times and enqueue stamps."""
        n = len(runs)
        self.kinds["task-succeeded"] = self.kinds.get("task-succeeded", 0) + n
        self.run_sum += _histogram(self.run, runs)
        if sent.count(None) == n:  # the producer did not stamp them
            return
        try:
            waits = list(map(sub, map(sub, ts, runs), sent))
        except TypeError:  # a stamp that is not a number: those rows have no wait
            waits = [t - r - s for t, r, s in zip(ts, runs, sent, strict=True)
                     if isinstance(s, _NUMBER)]
        if not isfinite(sum(waits)) or min(waits, default=0.0) < 0.0:
            waits = [0.0 if wait < 0.0 else wait for wait in waits]
        self.wait_sum += _histogram(self.wait, waits)

    def outcomes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for kind, count in self.kinds.items():
            outcome = _OUTCOMES.get(kind, "failed")
            out[outcome] = out.get(outcome, 0) + count
        return out


def _histogram(counts: list[int], values: Sequence[float]) -> float:
    """Add ``values`` to the bucket ``counts`` (value ``v`` in the first bucket whose
    bound is at least ``v``, as ``bisect_left``); their sum. In C but for a loop over
    the buckets: one bucket for all (max, min), else sorted and cut at each bound."""
    total = sum(values)
    if not values:
        return total
    if not isfinite(total):  # an infinite or NaN value: one at a time, as the rows do
        for value in values:
            counts[bisect_left(BUCKETS, value)] += 1
        return total
    last = bisect_left(BUCKETS, max(values))
    first = 0 if last == 0 else bisect_left(BUCKETS, min(values))
    if first == last:
        counts[first] += len(values)
        return total
    ordered = sorted(values)
    start = 0
    for i in range(first, len(BUCKETS)):
        end = bisect_right(ordered, BUCKETS[i], start)
        counts[i] += end - start
        start = end
    return total


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
        #: called by each fold: folds (:meth:`add`) the outcomes waiting in the observer
        self.source: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._series: dict[Key, _Series] = {}

    def fold(self) -> None:
        """Move the runs told since the last fold into the totals (from any thread)."""
        if self.source is not None:
            self.source()

    def add(self, rows: list[Any]) -> None:
        """Fold outcome rows now (from any thread): what an observer does with a batch
        it took."""
        with self._lock:
            self._fold(rows)

    def _fold(self, items: list[Any]) -> None:
        """Successes by columns; full rows (failures, retries, skips: few) by a loop.
        Success rows given as tuples are made columns first."""
        rows = [item for item in items if type(item) is not Successes]
        if len(rows) < len(items):
            for item in items:
                if type(item) is Successes:
                    self._fold_successes(item)
        if not rows:
            return
        sizes = list(map(len, rows))
        if sizes.count(SHORT):
            self._fold_successes(Successes.of_rows(
                list(compress(rows, map(eq, sizes, repeat(SHORT))))))
            rows = list(compress(rows, map(ne, sizes, repeat(SHORT))))
        self._fold_rows(rows)

    def _fold_successes(self, rows: Successes) -> None:
        """Success rows by columns: a batch mostly has one task and queue, and its run
        times one bucket."""
        n = len(rows)
        if not n:
            return
        tasks, queues = rows.tasks, rows.queues
        if tasks.count(tasks[0]) == n and queues.count(queues[0]) == n:
            self._of((tasks[0], queues[0])).succeeded(rows.ts, rows.runs, rows.sent)
            return
        groups: dict[Key, list[tuple[Any, Any, Any]]] = {}
        for key, t, run, sent in zip(zip(tasks, queues, strict=True), rows.ts, rows.runs,
                                     rows.sent, strict=True):
            groups.setdefault(key, []).append((t, run, sent))
        for key, group in groups.items():
            ts, runs, stamps = (list(column) for column in zip(*group, strict=True))
            self._of(key).succeeded(ts, runs, stamps)

    def _fold_rows(self, rows: list[Any]) -> None:
        """Full rows (:data:`asyncq.events.ROW`): one loop with no call per row; the rows
        of a batch mostly share their task and queue."""
        last_task = last_queue = None
        series = _Series()
        kinds = series.kinds
        for kind, ts, _, task, queue, _, _, run, _, delay, _, sent in rows:
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
