"""Worker-side middleware: heartbeats and control (:class:`Heartbeats`), and task events
(:class:`Events`).

Both are off unless installed (``App(middleware=[Events()])`` or ``asyncq worker APP
--events``). :class:`Heartbeats` overrides only the worker lifecycle hooks, so it costs
nothing per task; :class:`Events` is an outcome observer
(:attr:`~asyncq.middleware.Middleware.outcomes`): the worker appends one tuple per run
to its deque (the event row), and a background task sends them in batches
(every :data:`FLUSH_EVERY` seconds, one round trip) — no hook call and never a server
call per task.

One middleware instance serves one worker at a time (the usual one worker per process).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from asyncq.events import MAX_EVENTS, Bus, Event, Subscription, bus_for, weight, worker_name
from asyncq.events.control import CONTROL_TOPIC, ControlServer
from asyncq.middleware import Job, Middleware, Outcomes
from asyncq.middleware._row import MAX_ERROR, Successes, drain
from asyncq.worker.execute import Dead

if TYPE_CHECKING:
    from asyncq.brokers import Delivery
    from asyncq.worker import Worker

__all__ = ["FLUSH_EVERY", "Events", "Heartbeats"]

logger = logging.getLogger("asyncq.events")

#: Seconds between two batches of events sent to the bus.
FLUSH_EVERY: Final = 0.25
#: Seconds the worker waits to announce itself offline when it stops.
STOP_TIMEOUT: Final = 5.0
#: Seconds between two warnings that events were dropped, at least.
WARN_EVERY: Final = 60.0


class Drops:
    """Events a worker dropped because more than its buffer's limit came between two
    batches (the oldest go): counted (``asyncq_events_dropped_total`` with metrics on)
    and logged at most once every :data:`WARN_EVERY` seconds."""

    def __init__(self) -> None:
        self.count = 0
        self._since_warning = 0
        self._warned_at = -WARN_EVERY

    def note(self, count: int, limit: int) -> None:
        self.count += count
        self._since_warning += count
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            logger.warning("dropped %d event(s) (more than %d between two batches, every "
                           "%gs); metrics still count every run", self._since_warning,
                           limit, FLUSH_EVERY)
            self._warned_at = now
            self._since_warning = 0


class _Side:
    """What a running worker's monitor holds: its bus, buffer and background tasks."""

    def __init__(self, worker: Worker, bus: Bus, interval: float, drops: Drops,
                 limit: int = MAX_EVENTS) -> None:
        self.worker = worker
        self.drops = drops
        self.bus = bus
        self.interval = interval
        self.name = worker_name()
        self.started = time.time()
        #: events as dicts, outcome rows (tuples: :data:`asyncq.events.ROW`) and success
        #: rows as columns (``Successes``), :attr:`count` events in all
        self.buffer: collections.deque[Event] = collections.deque()
        self.count = 0
        self.limit = limit
        self.lock = threading.Lock()
        self.tasks: list[asyncio.Task[None]] = []
        self.subscription: Subscription | None = None
        #: called before each batch with the worker's name: outcomes to send
        self.source: Callable[[str], list[Event]] | None = None

    def info(self, state: str) -> dict[str, Any]:
        stats = self.worker.statistics()
        now = time.time()
        return {"worker": self.name, "host": socket.gethostname(), "pid": os.getpid(),
                "app": self.worker.app.name, "state": state, "ts": now,
                "interval": self.interval, "started": self.started,
                "uptime": round(now - self.started, 3), "queues": list(self.worker.queues),
                "concurrency": self.worker.concurrency, "running": stats.running,
                "buffered": stats.buffered, "processed": stats.settled}

    def add(self, event: dict[str, Any]) -> None:
        event["ts"] = time.time()
        event["worker"] = self.name
        self.keep((event,))

    def keep(self, events: Sequence[Event]) -> None:
        """Buffer events (from any thread: a scrape's fold keeps what it drained); the
        oldest beyond the buffer's limit are dropped and counted."""
        with self.lock:
            self.buffer.extend(events)
            self.count += sum(map(weight, events))
            over = self.count - self.limit
            if over > 0:
                self._drop(over)
        if over > 0:
            self.drops.note(over, self.limit)

    def _drop(self, over: int) -> None:
        """Drop the ``over`` oldest events (part of a ``Successes``, if need be)."""
        buffer = self.buffer
        self.count -= over
        while over > 0:
            first = buffer.popleft()
            size = weight(first)
            if size > over:
                assert isinstance(first, Successes)
                buffer.appendleft(first.part(over, size))
            over -= size

    def take(self) -> list[Event]:
        """Every buffered event, oldest first; the buffer is left empty."""
        with self.lock:
            batch = list(self.buffer)
            self.buffer.clear()
            self.count = 0
        return batch

    def collect(self) -> None:
        """Buffer the outcomes told since the last batch."""
        if self.source is not None:
            self.keep(self.source(self.name))

    async def flush(self) -> None:
        self.collect()
        batch = self.take()  # outcomes go as they are: readers make them maps
        if not batch:
            return
        try:
            await self.bus.emit(batch)
        except Exception as exc:
            logger.warning("could not send %d event(s): %s", len(batch), exc)

    async def beat(self, state: str) -> None:
        info = self.info(state)
        self.keep(({**info, "type": f"worker-{state}"},))
        try:
            await self.bus.put_worker(self.name, info)
        except Exception as exc:
            logger.warning("could not record the heartbeat: %s", exc)
        await self.flush()

    async def heartbeat_loop(self) -> None:
        while not cancelling():
            await asyncio.sleep(self.interval)
            await self.beat("heartbeat")

    async def flush_loop(self) -> None:
        while not cancelling():
            await asyncio.sleep(FLUSH_EVERY)
            await self.flush()

    async def collect_loop(self) -> None:
        """Buffer the outcomes told while a batch is sent, however long it takes: the
        buffer is bounded, the observer's list is not. (With metrics, ``Observed``, the
        metrics' fold every 0.25 s does it: no second wake-up.)"""
        while not cancelling():
            await asyncio.sleep(FLUSH_EVERY)
            self.collect()


class Heartbeats(Middleware):
    """Announce the worker online, every ``interval`` seconds and offline; answer control
    requests (``control=False`` to refuse them all)."""

    def __init__(self, interval: float = 2.0, *, control: bool = True) -> None:
        if interval <= 0:
            raise ValueError("the heartbeat interval must be positive")
        self.interval = interval
        self.control = control
        #: events buffered between two batches at most (beyond: the oldest are dropped)
        self.buffer_limit = MAX_EVENTS
        #: events dropped so far (all the workers this middleware served)
        self.drops = Drops()
        self._side: _Side | None = None

    @property
    def side(self) -> _Side | None:
        return self._side

    async def worker_start(self, worker: Worker) -> None:
        side = self._side = _Side(worker, bus_for(worker.app), self.interval, self.drops,
                                  self.buffer_limit)
        await side.beat("online")
        side.tasks += [asyncio.create_task(side.heartbeat_loop(), name="asyncq-heartbeat"),
                       asyncio.create_task(side.flush_loop(), name="asyncq-events")]
        if self.control:
            try:
                side.subscription = await side.bus.subscribe(CONTROL_TOPIC)
            except Exception as exc:
                logger.warning("control requests will not be answered: %s", exc)
            else:
                server = ControlServer(worker, side.bus, side.name, side.subscription)
                side.tasks.append(asyncio.create_task(server.serve(), name="asyncq-control"))

    async def worker_stop(self, worker: Worker) -> None:
        side, self._side = self._side, None
        if side is None:
            return
        await stop_tasks(side.tasks)
        try:  # a server that does not answer must not keep the worker from exiting
            async with asyncio.timeout(STOP_TIMEOUT):
                await _say_goodbye(side)
        except TimeoutError:
            logger.warning("could not announce the worker offline within %gs", STOP_TIMEOUT)


def cancelling() -> bool:
    """Whether this task was asked to stop (even if a client library swallowed the
    ``CancelledError``: then the loop must end by itself)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def stop_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel background tasks and wait for them, :data:`STOP_TIMEOUT` at most."""
    for task in tasks:
        task.cancel()
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
        if pending:
            logger.warning("%d background task(s) did not stop within %gs: %s", len(pending),
                           STOP_TIMEOUT, ", ".join(t.get_name() for t in pending))
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            logger.warning("%s failed: %r", task.get_name(), task.exception())


def _no_one(dead: Dead) -> None:
    """Dead letters told to nobody (the worker stopped)."""


def _announce_received(worker: Worker, side: _Side) -> None:
    """Wrap the worker's executor's ``prepare`` (which turns a delivery into a job or a
    dead letter) to buffer a task-received event per job."""
    prepare = worker.executor.prepare

    def observed(delivery: Delivery) -> Job | Dead:
        prepared = prepare(delivery)
        if not isinstance(prepared, Dead):
            side.add({"type": "task-received", "id": prepared.id, "task": prepared.name,
                      "queue": delivery.queue, "attempt": prepared.attempt})
        return prepared

    setattr(worker.executor, "prepare", observed)  # noqa: B010 - shadows the method


async def _say_goodbye(side: _Side) -> None:
    if side.subscription is not None:
        with contextlib.suppress(Exception):
            await side.subscription.aclose()
    side.keep(({**side.info("offline"), "type": "worker-offline"},))
    await side.flush()
    with contextlib.suppress(Exception):
        await side.bus.drop_worker(side.name)
    with contextlib.suppress(Exception):
        await side.bus.aclose()


class Events(Heartbeats):
    """:class:`Heartbeats` plus task events: the outcome of every run (succeeded, failed,
    retried, revoked, cancelled, with its run time) and dead-lettered for a message
    refused before it ran (undecodable, unknown task, bad arguments, too many
    deliveries); with ``received=True`` and ``started=True`` also task-received (the
    worker took the message) and task-started (just before it runs).

    One run costs the worker one tuple (the event row) appended to :attr:`outcomes` (its
    bytes are made in the batch); received and started add one each, so they
    are off by default.
    Received and dead-lettered come from the worker's executor (``prepare``, which turns
    a delivery into a job or a dead letter), since no middleware hook sees a delivery
    before it becomes a job: dead letters through its ``refused`` callback (nothing on
    the path of a good message), task-received by wrapping that one method of the
    worker it serves while it runs (only when ``received`` is on).
    """

    def __init__(self, interval: float = 2.0, *, control: bool = True,
                 received: bool = False, started: bool = False) -> None:
        super().__init__(interval, control=control)
        self.received = received
        self.started = started
        self.outcomes: Outcomes = []
        #: the outcomes to send, given the worker's name (replaced by ``Observed``)
        self.source: Callable[[str], list[Event]] = self.take_outcomes

    def uses(self, hook: str) -> bool:
        if hook == "before_run":  # task-started events only
            return self.started
        return super().uses(hook)

    async def worker_start(self, worker: Worker) -> None:
        await super().worker_start(worker)
        side = self._side
        assert side is not None
        side.source = self.source
        if self.source == self.take_outcomes:  # alone (``Observed``: the metrics' fold)
            side.tasks.append(asyncio.create_task(side.collect_loop(), name="asyncq-outcomes"))

        def refused(dead: Dead) -> None:
            side.add({"type": "task-dead-lettered", "id": dead.task_id, "task": dead.task,
                      "queue": dead.delivery.queue, "error": dead.reason[:MAX_ERROR]})

        worker.executor.refused = refused
        if self.received:  # task-received only: a plain worker's ``prepare`` is not wrapped
            _announce_received(worker, side)

    async def worker_stop(self, worker: Worker) -> None:
        vars(worker.executor).pop("prepare", None)
        worker.executor.refused = _no_one
        await super().worker_stop(worker)

    async def before_run(self, job: Job) -> None:
        if self.started:
            self.announce(job)
        return None

    def announce(self, job: Job) -> None:
        """Buffer a task-started event."""
        if self._side is not None:
            self._side.add({"type": "task-started", "id": job.id, "task": job.name,
                            "queue": job.queue, "attempt": job.attempt})

    def take_outcomes(self, worker: str) -> list[Event]:
        """The outcomes the worker gave since the last batch, as events."""
        return list(drain(self.outcomes))

    def keep(self, rows: list[Event]) -> None:
        """Buffer outcome rows made by :func:`~asyncq.middleware._row.drain`."""
        side = self._side
        if side is not None and rows:
            side.keep(rows)

    @property
    def name(self) -> str:
        """The worker's name in events (empty while no worker runs)."""
        side = self._side
        return "" if side is None else side.name


