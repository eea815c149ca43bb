"""Execute one delivery: decode, look up, bind, run, and turn the result into an outcome."""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asyncq._cancel import cancelled_by_caller
from asyncq.backoff import retry_delay
from asyncq.brokers import Delivery, KeyWrite, Outgoing
from asyncq.context import Request, RequestFields, reset_request, set_request
from asyncq.errors import (
    DecodeError,
    Retry,
    SerializationError,
    SignatureError,
    TimeLimitExceeded,
)
from asyncq.message import Message, peek_id
from asyncq.results import REJECTED, ResultRecord
from asyncq.states import TaskState
from asyncq.worker.limits import call_with_limits

if TYPE_CHECKING:
    from asyncq.app import App
    from asyncq.task import Task

__all__ = ["Ack", "Dead", "Executor", "Outcome", "Requeue", "RetryLater"]

logger = logging.getLogger("asyncq.worker")

MAX_TRACEBACK = 64 * 1024

DEFAULT_RETRY_LIMIT = 3


@dataclass(slots=True, eq=False)
class Ack:
    delivery: Delivery
    write: KeyWrite | None = None


@dataclass(slots=True, eq=False)
class Dead:
    delivery: Delivery
    reason: str
    task_id: str | None = None
    task: str | None = None


@dataclass(slots=True, eq=False)
class Requeue:
    """Hand back; ``counted`` when the worker failed it (it then counts as a delivery)."""

    delivery: Delivery
    counted: bool = False


@dataclass(slots=True, eq=False)
class RetryLater:
    """Publish ``again`` (the next attempt, delayed), then ack with a RETRY record."""

    delivery: Delivery
    again: Outgoing
    write: KeyWrite


Outcome = Ack | Dead | Requeue | RetryLater


class Executor:
    """Turns deliveries into outcomes; never raises (but for cancellation)."""

    def __init__(self, app: App, *, max_deliveries: int) -> None:
        self.app = app
        self.max_deliveries = max_deliveries
        self.max_size = app.max_message_size
        self.backend = app.backend

    def prepare(self, delivery: Delivery) -> tuple[Message, Task[Any, Any]] | Dead:
        """Validate a delivery before it takes a slot; bad input becomes a dead letter."""
        try:
            message = self.app.decode_message(delivery.body)
        except DecodeError as exc:
            return Dead(delivery, f"undecodable message: {exc}", self._trusted_id(delivery, exc))
        task = self.app.tasks.get(message.task)
        if task is None:
            return Dead(delivery, f"unknown task {message.task!r}", message.id, message.task)
        try:
            if message.kwargs or len(message.args) != task.plain_arity:
                task.signature.bind(*message.args, **message.kwargs)
        except TypeError as exc:
            return Dead(delivery, f"arguments do not match {message.task}(): {exc}",
                        message.id, message.task)
        if delivery.delivery_count > self.max_deliveries:
            return Dead(delivery, f"delivered {delivery.delivery_count} times without an outcome "
                        "(the task may crash its worker)", message.id, message.task)
        return message, task

    def _trusted_id(self, delivery: Delivery, exc: DecodeError) -> str | None:
        """The id a rejection record may be stored under, if the message can be trusted.

        With signing on, only a verified message's id is used: an id read from a
        message nobody can vouch for could be a forgery aimed at another task's result.
        """
        body = delivery.body
        signer = self.app.signer
        if isinstance(exc, SignatureError):
            return None
        if signer is not None:
            try:
                body = signer.verify(body)
            except SignatureError:
                return None
        return peek_id(body)

    async def skip_reason(self, message: Message, delivery: Delivery) -> Ack | None:
        """An outcome without running: expired, or already recorded by an earlier delivery."""
        expires = message.options.get("expires")
        if isinstance(expires, int | float) and time.time() > expires:
            record = ResultRecord(TaskState.CANCELLED, error_type="Expired",
                                  error_message="the task expired before it ran",
                                  task=message.task, finished_at=time.time())
            return Ack(delivery, self.backend.key_write(message.id, record))
        if delivery.delivery_count > 1:
            existing = await self.backend.get(message.id)
            if existing is not None and existing.ready and existing.error_type != REJECTED:
                logger.info("%s[%s] already has a result; acking the redelivery",
                            message.task, message.id)
                return Ack(delivery)
        return None

    async def run(self, message: Message, task: Task[Any, Any],
                  delivery: Delivery) -> Ack | RetryLater:
        """Run the task under its limits; exceptions become RETRY or FAILURE records."""
        cfg = task.config
        fields = (message.id, message.task, delivery.queue, message.attempt, cfg.retries,
                  delivery.delivery_count, message.headers)
        if cfg.track_started:
            await self.backend.store(message.id, ResultRecord(
                TaskState.STARTED, attempt=message.attempt, task=message.task))
        started = time.perf_counter()
        token = set_request(fields)
        try:
            if cfg.soft_timeout is None and cfg.timeout is None:
                value = await task.fn(*message.args, **message.kwargs)
            else:
                value = await call_with_limits(lambda: task.fn(*message.args, **message.kwargs),
                                               cfg.soft_timeout, cfg.timeout)
        except Exception as exc:
            return await self._failed(fields, message, task, delivery, exc, started)
        except asyncio.CancelledError as exc:
            if cancelled_by_caller():
                raise  # the worker is stopping: the handler hands the message back
            # the task raised CancelledError itself (an inner task it awaited was
            # cancelled, say): a failure of the task like any other exception
            return await self._failed(fields, message, task, delivery, exc, started)
        finally:
            reset_request(token)
        if cfg.on_success is not None:
            await _hook(cfg.on_success, Request(*fields), value)
        if cfg.ignore_result:
            self._log_success(message, started)
            return Ack(delivery)
        return Ack(delivery, self._success(message, value, started))

    async def _failed(self, fields: RequestFields, message: Message, task: Task[Any, Any],
                      delivery: Delivery, exc: BaseException, started: float
                      ) -> Ack | RetryLater:
        delay = self._retry_delay(task, message.attempt, exc)
        if delay is not None:
            cause = exc.cause if isinstance(exc, Retry) and exc.cause is not None else exc
            if task.config.on_retry is not None:
                await _hook(task.config.on_retry, Request(*fields), cause, delay)
            return self._retry(message, delivery, cause, delay)
        if isinstance(exc, Retry) and exc.cause is not None:
            exc = exc.cause if isinstance(exc.cause, Exception) else exc
        if task.config.on_failure is not None:
            await _hook(task.config.on_failure, Request(*fields), exc)
        return Ack(delivery, self._failure(message, exc, started))

    @staticmethod
    def _retry_delay(task: Task[Any, Any], attempt: int, exc: BaseException) -> float | None:
        cfg = task.config
        if isinstance(exc, Retry):
            limit = exc.max_retries if exc.max_retries is not None else (
                cfg.retries or DEFAULT_RETRY_LIMIT)
        elif cfg.retries and isinstance(exc, cfg.retry_on):
            limit = cfg.retries
        else:
            return None
        if attempt >= limit:
            return None
        if isinstance(exc, Retry) and exc.delay is not None:
            return max(0.0, exc.delay)
        return retry_delay(attempt, base=cfg.retry_backoff, cap=cfg.retry_backoff_max,
                           jitter=cfg.retry_jitter)

    def _retry(self, message: Message, delivery: Delivery, exc: BaseException,
               delay: float) -> RetryLater:
        eta = time.time() + delay
        options = {**message.options, "eta": eta}
        nxt = Message(message.id, message.task, message.args, message.kwargs, options,
                      message.headers, message.attempt + 1)
        again = Outgoing(message.id, delivery.queue, self.app.encode_message(nxt), eta)
        etype, text, tb = describe(exc)
        logger.warning("%s[%s] will retry in %.2fs (attempt %d): %s: %s", message.task,
                       message.id, delay, message.attempt + 1, etype, text)
        record = ResultRecord(TaskState.RETRY, None, etype, text, tb, message.attempt + 1,
                              message.task, None)
        return RetryLater(delivery, again, self.backend.key_write(message.id, record))

    def _success(self, message: Message, value: Any, started: float) -> KeyWrite:
        try:
            write = self.backend.success_write(message.id, value, message.attempt, message.task)
        except SerializationError as exc:
            return self._error(message, "asyncq.SerializationError",
                               f"the return value cannot be serialized: {exc}")
        if len(write.value) > self.max_size:
            return self._error(message, "asyncq.SerializationError",
                               f"the return value takes {len(write.value)} bytes, over the "
                               f"{self.max_size} byte limit")
        self._log_success(message, started)
        return write

    @staticmethod
    def _log_success(message: Message, started: float) -> None:
        if logger.isEnabledFor(logging.INFO):
            logger.info("%s[%s] succeeded in %.4fs", message.task, message.id,
                        time.perf_counter() - started)

    def _failure(self, message: Message, exc: BaseException, started: float) -> KeyWrite:
        elapsed = time.perf_counter() - started
        etype, text, tb = describe(exc)
        if isinstance(exc, TimeLimitExceeded):
            etype = "TimeoutError"
        logger.error("%s[%s] failed in %.4fs: %s: %s", message.task, message.id, elapsed,
                     etype, text)
        return self._error(message, etype, text, tb)

    def _error(self, message: Message, etype: str, text: str, tb: str | None = None) -> KeyWrite:
        record = ResultRecord(TaskState.FAILURE, None, etype, text, tb, message.attempt,
                              message.task, time.time())
        return self.backend.key_write(message.id, record)


async def _hook(hook: Any, *args: Any) -> None:
    """Run a user hook; its failure is logged and never changes the task's outcome."""
    if hook is None:
        return
    try:
        await hook(*args)
    except Exception:
        logger.exception("hook %s failed", getattr(hook, "__qualname__", hook))


def rejection(dead: Dead) -> ResultRecord:
    """The FAILURE record a handle sees for a dead-lettered message."""
    return ResultRecord(TaskState.FAILURE, None, REJECTED, dead.reason, None, 0, dead.task,
                        time.time())


def describe(exc: BaseException) -> tuple[str, str, str]:
    """Type name, message and traceback text, even for exceptions that cannot print."""
    cls = type(exc)
    module = cls.__module__
    etype = cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
    try:
        text = str(exc)
    except Exception:
        text = f"<unprintable {etype}>"
    try:
        tb = "".join(traceback.format_exception(exc))
    except Exception:
        tb = f"<traceback unavailable for {etype}>"
    return etype, text, tb[-MAX_TRACEBACK:]
