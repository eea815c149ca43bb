"""Execute one delivery: decode, look up, bind, run through the task's middleware, and
turn what happened into an outcome to settle.

What happens around the call (expiry, ``track_started``, hooks, retries, time limits,
and whatever the App adds) is middleware (:mod:`asyncq.middleware`); this module keeps
only what makes the result record right: a redelivered message whose outcome is already
recorded is acked without running again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from asyncq._cancel import cancelled_by_caller
from asyncq._text import bounded
from asyncq.brokers import DEAD_BODY_KEEP, Delivery, Outgoing
from asyncq.context import reset_request, set_request
from asyncq.errors import DecodeError, Retry, SerializationError, TimeLimitExceeded
from asyncq.middleware import CallNext, Job, Middleware, Pipeline, RunResult, Skip
from asyncq.middleware._row import ENQUEUED_AT, EVENT_TYPES, MAX_ERROR, NO_HEADERS, WALL
from asyncq.records import REJECTED, KeyWrite, ResultRecord
from asyncq.states import TaskState
from asyncq.task import WORKFLOW_HEADER
from asyncq.worker.outcomes import (
    Ack,
    Dead,
    Outcome,
    Requeue,
    RetryLater,
    describe,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from asyncq.app import App
    from asyncq.message import Message
    from asyncq.task import Task

__all__ = ["Ack", "Dead", "Executor", "Outcome", "Requeue", "RetryLater"]

logger = logging.getLogger("asyncq.worker")

#: the name of the (last) worker made in this process: one per process
_NAME = [""]
#: Characters of an unknown task's name kept in its dead letter (the reason, the field).
_MAX_NAME = 200
#: The clock of run times (one global lookup per success, not two)
_clock = time.perf_counter


class Executor:
    """Turns deliveries into outcomes; never raises (but for cancellation)."""

    def __init__(self, app: App, *, max_deliveries: int) -> None:
        self.app = app
        self.codec = app.codec
        self.max_deliveries = max_deliveries
        self.backend = app.backend
        self._middleware = app.run_middleware()
        self._pipelines: dict[Task[Any, Any], Pipeline] = {}
        self._workflow_pipelines: dict[Task[Any, Any], Pipeline] = {}
        from asyncq.events import worker_name

        #: this process's worker name, in the observers' outcome rows
        self.name = _NAME[0] = worker_name()
        #: told of each dead letter :meth:`prepare` makes (the events middleware sets it)
        self.refused: Callable[[Dead], None] = _ignore

    def pipeline(self, task: Task[Any, Any]) -> Pipeline:
        found = self._pipelines.get(task)
        if found is None:
            found = self._pipelines[task] = Pipeline(self._middleware, task)
        return found

    def forget_pipelines(self) -> None:
        """Build each task's pipeline again on its next message (a middleware's
        ``applies_to`` changed: a rate limit set at run time)."""
        self._pipelines.clear()
        self._workflow_pipelines.clear()

    def workflow_pipeline(self, task: Task[Any, Any]) -> Pipeline:
        """The pipeline of a message that carries workflow state: with the canvas
        middleware outermost (a plain message never pays for it)."""
        found = self._workflow_pipelines.get(task)
        if found is None:
            from asyncq.canvas._middleware import Canvas

            found = self._workflow_pipelines[task] = Pipeline(
                [Canvas(), *self._middleware], task)
        return found

    def prepare(self, delivery: Delivery) -> Job | Dead:
        """Validate a delivery before it takes a slot; bad input becomes a dead letter."""
        try:
            message = self.codec.decode(delivery.body, delivery.queue)
        except DecodeError as exc:
            return self._undecodable(delivery, exc)
        return self._job(delivery, message)

    def prepare_all(self, deliveries: Sequence[Delivery]) -> list[Job | Dead]:
        """:meth:`prepare` of each of a fetched batch: the plain messages decoded in one
        pass (:meth:`WireCodec.decode_batch`), and a plain call of a known task made a
        job inline; the rest one by one, as ``prepare`` does."""
        prepare = self.prepare
        if "prepare" in vars(self):  # wrapped (task-received events): it sees each one
            return [prepare(delivery) for delivery in deliveries]
        tasks, pipelines, app = self.app.tasks, self._pipelines, self.app
        out: list[Job | Dead] = []
        messages = self.codec.decode_batch([delivery.body for delivery in deliveries])
        for delivery, message in zip(deliveries, messages, strict=True):
            if message is None:
                out.append(prepare(delivery))
                continue
            task = tasks.get(message.task)
            pipeline = pipelines.get(task) if task is not None else None
            if (task is None or pipeline is None or message.kwargs
                    or len(message.args) != task.plain_arity
                    or WORKFLOW_HEADER in message.headers):
                out.append(self._job(delivery, message))
            else:
                out.append(Job(app, message, task, delivery, pipeline))
        return out

    def _job(self, delivery: Delivery, message: Message) -> Job | Dead:
        """The job of a decoded message, or the dead letter of an unknown task or of
        arguments that do not bind."""
        task = self.app.tasks.get(message.task)
        if task is None:  # the name is the sender's: any length, any characters
            name = bounded(message.task, _MAX_NAME)
            return Dead(delivery, f"unknown task {name!r}", message.id, name)
        error = self.codec.bind_error(task, message.args, message.kwargs)
        if error is not None:  # names an argument the sender chose: bounded too
            return Dead(delivery, bounded(f"arguments do not match {message.task}(): {error}"),
                        message.id, message.task)
        if WORKFLOW_HEADER in message.headers:
            return Job(self.app, message, task, delivery, self.workflow_pipeline(task))
        return Job(self.app, message, task, delivery, self.pipeline(task))

    def _undecodable(self, delivery: Delivery, exc: DecodeError) -> Dead:
        task_id = self.codec.trusted_id(delivery.body, exc, delivery.queue)
        reason = bounded(f"undecodable message: {exc}")
        size = len(delivery.body)
        if size > self.codec.max_size:  # keep its start only: the store is not a sink
            delivery.body = delivery.body[:DEAD_BODY_KEEP]
            reason += f"; the dead letter keeps its first {DEAD_BODY_KEEP} of {size} bytes"
        return Dead(delivery, reason, task_id)

    async def execute(self, job: Job) -> Outcome:
        """Run ``job`` through its pipeline; exceptions become RETRY or FAILURE records."""
        count = job.delivery.delivery_count
        if (count > 1 or count > self.max_deliveries) and (
                stopped := await self._redelivered(job, count)) is not None:
            return stopped
        pipe = job.pipeline
        for mw in pipe.checks:  # the first Skip of the check_run hooks ends the run
            skip = mw.check_run(job)
            if skip is not None:
                return await self._skipped(job, skip)
        if pipe.before and (stopped := await self._before(job)) is not None:
            return stopped
        started = time.perf_counter()
        token = set_request(job)
        try:
            if pipe.around:
                value = await _chain(job, pipe.around, 0)()
            else:
                message = job.message
                value = await job.task.fn(*message.args, **message.kwargs)
        except Exception as exc:
            return await self._failed(job, exc, started)
        except asyncio.CancelledError as exc:
            if cancelled_by_caller():
                raise  # the worker is stopping: the handler hands the message back
            # the task raised CancelledError itself (an inner task it awaited was
            # cancelled, say): a failure of the task like any other exception
            return await self._failed(job, exc, started)
        finally:
            reset_request(token)
        if pipe.observed:
            await self._observe_success(job, value, started)
        return self._succeeded(job, value, started)

    async def _observe_success(self, job: Job, value: Any, started: float) -> None:
        for mw in job.pipeline.success:
            await _observe(mw.on_success(job, value))
        await self._after(job, RunResult(TaskState.SUCCESS, value,
                                         runtime=time.perf_counter() - started))

    async def _before(self, job: Job) -> Outcome | None:
        """The ``before_run`` hooks; an outcome if one skipped the run or raised."""
        for mw in job.pipeline.before:
            try:
                skip = await mw.before_run(job)
            except Exception as exc:
                return await self._failed(job, exc)
            if skip is not None:
                return await self._skipped(job, skip)
        return None

    async def _redelivered(self, job: Job, count: int) -> Outcome | None:
        """The outcome of a message that came back: an Ack if its outcome is recorded
        (however often it came back), a Dead if it came back too often; else None."""
        if count > 1 and await self._recorded(job):
            return Ack(job.delivery)
        if count > self.max_deliveries:
            return self._over_limit(job)
        return None

    def _over_limit(self, job: Job) -> Dead:
        """A message that came back too often with no outcome recorded (a task that
        crashes its worker): dead-lettered without running."""
        count = job.delivery.delivery_count
        return Dead(job.delivery, f"delivered {count} times without an outcome (the task may "
                    "crash its worker)", job.message.id, job.message.task)

    async def _recorded(self, job: Job) -> bool:
        """Whether an earlier delivery of this message already recorded its outcome."""
        try:
            existing = await self.backend.get(job.id)
        except DecodeError:  # a forged or broken record: this run writes a genuine one
            return False
        if existing is not None and existing.ready and existing.error_type != REJECTED:
            logger.info("%s[%s] already has a result; acking the redelivery", job.name, job.id)
            return True
        return False

    async def _after(self, job: Job, result: RunResult) -> None:
        if not job.pipeline.after:
            return
        for mw in job.pipeline.after:
            await _observe(mw.after_run(job, result))

    async def _skipped(self, job: Job, skip: Skip) -> Ack:
        await self._after(job, RunResult(skip.state, skipped=skip))
        _tell(job, skip.state, None, skip.message[:MAX_ERROR], None)
        record = ResultRecord(skip.state, error_type=skip.error_type,
                              error_message=skip.message, task=job.name,
                              finished_at=time.time())
        return Ack(job.delivery, self.backend.key_write(job.id, record))

    def _succeeded(self, job: Job, value: Any, started: float) -> Ack:
        tell = job.pipeline.tell
        if tell is not None:  # the observers' success row (SUCCESS_ROW; the headers for
            message = job.message  # the enqueue stamp, read in the batch: ``_row.stamps``)
            now = _clock()  # one clock read: wall time = now + WALL[0]
            tell((now + WALL[0], message.id, message.task, job.delivery.queue,
                  message.attempt, now - started, self.name, message.headers))
        if job.task.config.ignore_result:
            _log_success(job, started)
            return Ack(job.delivery)
        return Ack(job.delivery, self._success(job, value, started))

    async def _failed(self, job: Job, exc: BaseException, started: float | None = None
                      ) -> Ack | RetryLater:
        delay = self._retry_delay(job, exc)
        if delay is not None:
            cause = exc.cause if isinstance(exc, Retry) and exc.cause is not None else exc
            for mw in job.pipeline.retry_hooks:
                await _observe(mw.on_retry(job, cause, delay))
            runtime = _since(started)
            await self._after(job, RunResult(TaskState.RETRY, error=cause, delay=delay,
                                             runtime=runtime))
            _tell(job, TaskState.RETRY, runtime, _error_text(cause), delay)
            return self._retry(job, cause, delay)
        if isinstance(exc, Retry) and isinstance(exc.cause, Exception):
            exc = exc.cause
        for mw in job.pipeline.failure:
            await _observe(mw.on_failure(job, exc))
        runtime = _since(started)
        await self._after(job, RunResult(TaskState.FAILURE, error=exc, runtime=runtime))
        _tell(job, TaskState.FAILURE, runtime, _error_text(exc), None)
        return Ack(job.delivery, self._failure(job, exc, started))

    @staticmethod
    def _retry_delay(job: Job, exc: BaseException) -> float | None:
        for mw in job.pipeline.retry:
            delay = mw.retry_delay(job, exc)
            if delay is not None:
                return delay
        return None

    def _retry(self, job: Job, exc: BaseException, delay: float) -> RetryLater:
        message = job.message
        eta = time.time() + delay
        body = self.codec.encode(message.id, message.task, message.args, message.kwargs,
                                 {**message.options, "eta": eta}, message.headers,
                                 message.attempt + 1, queue=job.queue)
        again = Outgoing(message.id, job.queue, body, eta)
        etype, text, tb = describe(exc)
        logger.warning("%s[%s] will retry in %.2fs (attempt %d): %s: %s", message.task,
                       message.id, delay, message.attempt + 1, bounded(etype), bounded(text))
        record = ResultRecord(TaskState.RETRY, None, etype, text, tb, message.attempt + 1,
                              message.task, None)
        return RetryLater(job.delivery, again, self.backend.key_write(message.id, record))

    def _success(self, job: Job, value: Any, started: float) -> KeyWrite:
        try:
            message = job.message
            write = self.backend.success_write(message.id, value, message.attempt, message.task)
        except SerializationError as exc:
            return self._error(job, "asyncq.SerializationError",
                               f"the return value cannot be serialized: {exc}")
        if len(write.value) > self.codec.max_size:
            return self._error(job, "asyncq.SerializationError",
                               f"the return value takes {len(write.value)} bytes, over the "
                               f"{self.codec.max_size} byte limit")
        if logger.isEnabledFor(logging.INFO):
            _log_success(job, started)
        return write

    def _failure(self, job: Job, exc: BaseException, started: float | None) -> KeyWrite:
        elapsed = 0.0 if started is None else time.perf_counter() - started
        etype, text, tb = describe(exc)
        if isinstance(exc, TimeLimitExceeded):
            etype = "TimeoutError"
        logger.error("%s[%s] failed in %.4fs: %s: %s", job.name, job.id, elapsed,
                     bounded(etype), bounded(text))
        return self._error(job, etype, text, tb)

    def _error(self, job: Job, etype: str, text: str, tb: str | None = None) -> KeyWrite:
        record = ResultRecord(TaskState.FAILURE, None, etype, text, tb, job.attempt, job.name,
                              time.time())
        return self.backend.key_write(job.id, record)


def _chain(job: Job, around: list[Middleware], index: int) -> CallNext:
    """The call of ``around[index]`` wrapping the rest, the task itself innermost."""
    if index == len(around):
        return lambda: job.task.fn(*job.message.args, **job.message.kwargs)
    inner = _chain(job, around, index + 1)
    return lambda: around[index].around_run(job, inner)


def _tell(job: Job, state: TaskState, runtime: float | None, error: str | None,
          delay: float | None) -> None:
    """Give the observers (:attr:`Middleware.outcomes`) a run's outcome: its full row,
    padded to a success row's length."""
    tell = job.pipeline.tell
    if tell is not None:
        message = job.message
        tell(((EVENT_TYPES.get(state, "task-failed"), time.time(), message.id, message.task,
               job.delivery.queue, message.attempt, state.value, runtime, error, delay,
               _NAME[0], message.headers.get(ENQUEUED_AT)),
              None, None, None, None, None, None, NO_HEADERS))  # PAD: a success row's length


def _ignore(dead: Dead) -> None:
    """The default :attr:`Executor.refused`: nobody is told."""


def _error_text(error: BaseException) -> str:
    try:
        return f"{type(error).__name__}: {error}"[:MAX_ERROR]
    except Exception:
        return f"{type(error).__name__}: <unprintable>"


def _since(started: float | None) -> float | None:
    return None if started is None else time.perf_counter() - started


async def _observe(hook: Any) -> None:
    """Await an observing hook; its failure is logged and never changes the outcome."""
    try:
        await hook
    except Exception:
        logger.exception("a middleware hook failed")


def _log_success(job: Job, started: float) -> None:
    if logger.isEnabledFor(logging.INFO):
        logger.info("%s[%s] succeeded in %.4fs", job.name, job.id,
                    time.perf_counter() - started)
