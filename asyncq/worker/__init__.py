"""The worker: fetch (bounded by free slots), run (on its runners), settle."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from asyncq._names import check_queue
from asyncq._threads import pool_size, task_threads
from asyncq.brokers import Consumer, Delivery
from asyncq.errors import ConfigurationError
from asyncq.middleware import Job, overrides
from asyncq.worker import _queues
from asyncq.worker._parts import (
    WorkerStats,
    _cancel,
    _default_queues,
    _quietly,
    _task_codes,
)
from asyncq.worker.admission import Admission
from asyncq.worker.execute import Dead, Executor, Outcome, Requeue
from asyncq.worker.runners import Runners
from asyncq.worker.settle import Settler
from asyncq.worker.watchdog import LoopWatchdog

if TYPE_CHECKING:
    from asyncq.app import App

__all__ = ["Worker", "WorkerStats"]

logger = logging.getLogger("asyncq.worker")


class Worker:
    """Consumes ``queues`` of ``app`` with at most ``concurrency`` tasks running.

    ``prefetch`` caps messages held beyond the running ones (default: ``concurrency``);
    ``lease`` is how long a silent worker keeps its messages before peers recover
    them (renewed while tasks run); ``shutdown_timeout`` is the grace period running
    tasks get on :meth:`stop`.
    """

    def __init__(self, app: App, queues: Sequence[str] | None = None, *,
                 concurrency: int = 100, prefetch: int | None = None,
                 shutdown_timeout: float = 30.0, lease: float = 60.0,
                 max_deliveries: int = 5, fetch_timeout: float = 1.0,
                 loop_lag_threshold: float | None = 1.0,
                 unsafe_server: Literal["warn", "refuse", "ignore"] = "warn",
                 threads: int | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.app = app
        self.queues = [check_queue(q, "Worker queues") for q in queues or _default_queues(app)]
        self.concurrency = concurrency
        self.prefetch = concurrency if prefetch is None else max(0, prefetch)
        self.shutdown_timeout = shutdown_timeout
        self.lease = lease
        self.fetch_timeout = fetch_timeout
        self.unsafe_server = unsafe_server
        self.threads = pool_size(threads, concurrency)
        self.watchdog = (LoopWatchdog(_task_codes(app), threshold=loop_lag_threshold)
                         if loop_lag_threshold else None)
        self.executor = Executor(app, max_deliveries=max_deliveries)
        # A first redelivery is usually a bystander of a crash (or of a broker restart,
        # which can flag every recovered message redelivered): it runs as usual. A
        # message back a second time runs alone (see _run_suspect), and so does one on
        # its last allowed delivery.
        self._isolate_from = max(2, min(3, max_deliveries))
        self._runners = Runners(concurrency, self._handle)
        self._buffer = self._runners.jobs
        self._admission = Admission(self._admitted, self._not_admitted)
        self._suspects: deque[Job] = deque()
        self._suspected = asyncio.Event()
        self._calm = asyncio.Event()
        self._room = asyncio.Event()
        self._stop = asyncio.Event()
        self._abort = asyncio.Event()
        self._held = 0
        self._backlog = False  # the last read came back full
        #: queues no longer consumed: what a fetch in progress still brings goes back
        self._cancelled: set[str] = set()
        self._abandoning = False
        self._settled = 0
        self._consumer: Consumer | None = None
        self._settler: Settler | None = None
        self.started = asyncio.Event()

    # -- public --------------------------------------------------------------------
    def statistics(self) -> WorkerStats:
        return WorkerStats(len(self._runners),
                           len(self._buffer) + len(self._suspects) + len(self._admission),
                           self._held, self._settled, self._stop.is_set())

    def held(self) -> dict[str, list[Delivery]]:
        """Deliveries running (``active``) and waiting for a slot (``reserved``)."""
        return {"active": [job.delivery for job in self._runners.running()],
                "reserved": [job.delivery for job in (*self._buffer, *self._admission.jobs(),
                                                      *self._suspects)]}

    def running_task(self, task_id: str) -> asyncio.Task[None] | None:
        """The asyncio task running ``task_id`` here, if any (cancelling it hands the
        message back): how middleware stop a job (revoke's ``terminate``)."""
        for handler, job in self._runners.busy.items():
            if job.id == task_id:
                return handler
        return None

    async def cancel_queue(self, queue: str) -> int:
        """Stop consuming ``queue`` while running on: its running tasks finish, its
        messages waiting here for a slot go back to it (the number is returned), and
        the rest stays in it for other consumers. ConfigurationError if the worker does
        not consume it, or it is the last one (stop the worker instead)."""
        return await _queues.cancel(self, queue)

    async def add_queue(self, queue: str) -> None:
        """Consume ``queue`` too (again, after :meth:`cancel_queue`)."""
        await _queues.add(self, queue)

    def _hand_back(self, delivery: Delivery) -> None:
        assert self._settler is not None
        self._settler.add(Requeue(delivery))

    def stop(self) -> None:
        """Stop fetching; running tasks get ``shutdown_timeout`` to finish."""
        self._stop.set()

    def abort(self) -> None:
        """Stop now: running tasks are cancelled and their messages handed back."""
        self._abort.set()
        self._stop.set()

    async def join(self, timeout: float | None = 30.0) -> None:
        """Wait until the worker's queues are empty and nothing is held (for tests).

        Delayed messages (countdown, eta, retries waiting) count as not done yet, where
        the broker can count them (memory and Redis; not RabbitMQ).
        """
        broker = self.app.broker
        async with asyncio.timeout(timeout):
            while True:
                sizes = [await broker.queue_size(q) + await broker.scheduled_size(q)
                         for q in self.queues]
                if not any(sizes) and self._held == 0 and self.started.is_set():
                    return
                await asyncio.sleep(0.01)

    async def run(self) -> None:
        """Run until :meth:`stop`; the app is connected for the duration."""
        async with self.app:
            with task_threads(self.threads, self.app.tasks.values()):
                await self._consume()

    async def _consume(self) -> None:
        await self._check_server()
        consumer = self.app.broker.consumer(
            self.queues, prefetch=self.concurrency + self.prefetch, lease=self.lease)
        self._consumer = consumer
        self._settler = Settler(consumer, self.app.backend, self.app.broker.publish_many,
                                self._on_settled)
        try:
            await consumer.start()  # consuming before it says it is ready
        except BaseException:  # never started: no worker_stop (serve() may try again)
            await consumer.close()
            raise
        try:
            await self._lifecycle("worker_start")
            await self._serve(consumer, self._settler)
        finally:
            await consumer.close()
            await self._lifecycle("worker_stop")

    async def _lifecycle(self, hook: str) -> None:
        for mw in self.app.run_middleware():
            if overrides(mw, hook):
                await getattr(mw, hook)(self)

    async def _check_server(self) -> None:
        if self.unsafe_server == "ignore":
            return
        for warning in await self.app.broker.safety_warnings():
            if self.unsafe_server == "refuse":
                raise ConfigurationError(f"refusing to start: {warning}")
            logger.warning("%s", warning)

    async def __aenter__(self) -> Worker:
        self._task = asyncio.get_running_loop().create_task(self.run())
        started = asyncio.ensure_future(self.started.wait())
        await asyncio.wait({self._task, started}, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if self._task.done():
            self._task.result()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
        await self._task

    # -- stages --------------------------------------------------------------------
    async def _serve(self, consumer: Consumer, settler: Settler) -> None:
        loops = [
            asyncio.create_task(self._fetch_loop(consumer), name="asyncq-fetch"),
            asyncio.create_task(self._suspect_loop(), name="asyncq-suspects"),
            asyncio.create_task(settler.run(), name="asyncq-settle"),
            asyncio.create_task(self._renew_loop(consumer), name="asyncq-renew"),
        ]
        self._runners.start()
        if self.watchdog is not None:
            self.watchdog.start(asyncio.get_running_loop())
        self.started.set()
        try:
            stopped = asyncio.create_task(self._stop.wait())
            await asyncio.wait([stopped, *loops], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
        finally:
            await self._shutdown(loops, settler)
            if self.watchdog is not None:
                self.watchdog.stop()

    async def _fetch_loop(self, consumer: Consumer) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            if self._suspects:  # hold nothing new while redelivered messages run alone
                self._calm.clear()
                await self._calm.wait()
                continue
            free = self.concurrency + self.prefetch - self._held
            if free <= 0 or self._read_later(free):
                self._room.clear()
                await self._room.wait()
                continue
            try:
                batch = await consumer.fetch(free, self.fetch_timeout)
                self._backlog = consumer.fetch_is_a_round_trip and len(batch) == free
            except Exception as exc:
                logger.warning("fetch failed (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            if batch:
                self._accept(batch)

    def _read_later(self, free: int) -> bool:
        """Wait for the settles on their way before reading into half the room or
        less, when they will free more than half and the queue has a backlog (the last
        read came back full, from a consumer whose reads are round trips): else each
        read is as small as the last settle, and a fan-in's reads stayed at half the
        drain's."""
        assert self._settler is not None
        half = (self.concurrency + self.prefetch) // 2
        return self._backlog and free <= half < free + self._settler.settling

    def _accept(self, batch: Sequence[Delivery]) -> None:
        assert self._settler is not None
        self._held += len(batch)
        cancelled = self._cancelled
        if cancelled:  # a fetch in progress when the queue was dropped: hand those back
            for delivery in batch:
                if delivery.queue in cancelled:
                    self._hand_back(delivery)
            batch = [delivery for delivery in batch if delivery.queue not in cancelled]
        isolate_from = self._isolate_from
        for delivery, prepared in zip(batch, self.executor.prepare_all(batch), strict=True):
            if isinstance(prepared, Dead):
                self._settler.add(prepared)
                self.executor.refused(prepared)
            elif delivery.delivery_count >= isolate_from:
                self._suspects.append(prepared)
                self._suspected.set()
            elif prepared.pipeline.admit:
                self._admission.add(prepared)
            else:
                self._buffer.append(prepared)
        self._runners.wake()

    def _admitted(self, job: Job) -> None:
        self._buffer.append(job)
        self._runners.wake()

    def _not_admitted(self, job: Job) -> None:
        assert self._settler is not None
        self._settler.add(Requeue(job.delivery, counted=True))

    async def _suspect_loop(self) -> None:
        while True:
            while not self._suspects:
                self._suspected.clear()
                await self._suspected.wait()
            await self._run_suspect()

    async def _run_suspect(self) -> None:
        """Run a message that came back twice alone, holding nothing else.

        A message that keeps coming back after its worker died may be what kills it.
        Run alone, a crash it causes again counts against it only, not against innocent
        messages that happened to share its worker.
        """
        assert self._consumer is not None
        assert self._settler is not None
        await _quietly("pause the consumer", self._consumer.pause())
        await self._runners.wait_drained()  # what is buffered runs first
        self._runners.halt()
        await self._runners.wait_idle()
        while len(self._suspects) > 1:  # each comes back and runs alone in turn
            self._settler.add(Requeue(self._suspects.pop().delivery))
        # everything else settled or handed back first: if the suspect kills this
        # process, nothing but the suspect is left to be redelivered (and counted)
        await self._settler.wait_settled()
        await self._runners.run_alone(self._suspects.popleft())
        self._runners.resume()
        await _quietly("resume the consumer", self._consumer.resume())
        self._calm.set()

    async def _handle(self, job: Job) -> None:
        assert self._settler is not None
        delivery, message = job.delivery, job.message
        if logger.isEnabledFor(logging.INFO):
            logger.info("%s[%s] received", message.task, message.id)
        try:
            outcome: Outcome = await self.executor.execute(job)
        except asyncio.CancelledError:
            self._settler.add(Requeue(delivery))  # the message is never left held
            if not self._abandoning:
                raise
            logger.warning("%s[%s] did not finish within the shutdown timeout; handed back",
                           message.task, message.id)
            return
        except BaseException as exc:  # (an Exception, or another BaseException it raised)
            logger.exception("%s[%s] could not be processed; handed back", message.task,
                             message.id)
            outcome = Requeue(delivery, counted=True)  # max_deliveries ends a loop of these
            if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
                self._settler.add(outcome)
                raise  # the process is to end (or the coroutine closed): pass it on
        self._settler.add(outcome)

    async def _renew_loop(self, consumer: Consumer) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            held = [job.delivery for job in (*self._runners.running(), *self._buffer,
                                             *self._admission.jobs(), *self._suspects)]
            if not held:
                continue
            try:
                await consumer.renew(held)
            except Exception as exc:
                logger.warning("could not renew the lease of %d message(s): %s", len(held), exc)

    def _on_settled(self, count: int) -> None:
        self._held -= count
        self._settled += count
        self._room.set()

    # -- shutdown ------------------------------------------------------------------
    async def _shutdown(self, loops: list[asyncio.Task[None]], settler: Settler) -> None:
        fetch, suspects, settle, renew = loops
        self._runners.halt()
        await _cancel(suspects)
        await self._stop_fetching(fetch)
        for job in (*await self._admission.close(), *self._buffer, *self._suspects):
            settler.add(Requeue(job.delivery))
        self._buffer.clear()
        self._suspects.clear()
        if self._runners.busy:
            logger.info("waiting up to %gs for %d running task(s)", self.shutdown_timeout,
                        len(self._runners))
        await self._runners.close(self.shutdown_timeout, self._abort, self._abandon)
        settler.close()
        try:
            async with asyncio.timeout(self.shutdown_timeout + 10):
                await settle
        except TimeoutError:
            logger.error("could not settle %d message(s) before exiting; the broker will "
                         "redeliver them", settler.pending)
        await _cancel(renew)

    async def _stop_fetching(self, fetch: asyncio.Task[None]) -> None:
        """Let the fetch loop return by itself (a read ends within ``fetch_timeout``,
        a wait the consumer can end safely at once: :meth:`Consumer.wake`).

        Cancelling a blocking read is a last resort: a cancellation that lands while
        the client library handles its own read timeout can be lost. Whatever a
        stranded read delivered is handed back when the consumer closes.
        """
        self._room.set()
        self._calm.set()
        if self._consumer is not None:
            self._consumer.wake()  # a local wait (RabbitMQ, memory) ends at once
        done, _ = await asyncio.wait({fetch}, timeout=self.fetch_timeout + 2)
        if not done:
            fetch.cancel()
            done, _ = await asyncio.wait({fetch}, timeout=2)
        if not done:
            logger.warning("the fetch loop did not stop; leaving it behind")
        elif not fetch.cancelled() and fetch.exception() is not None:
            logger.error("worker loop failed: %r", fetch.exception())

    def _abandon(self) -> None:
        self._abandoning = True
