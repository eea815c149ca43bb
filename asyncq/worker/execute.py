"""Execute one delivery: decode, look up, bind, run, and turn the result into an outcome."""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asyncq.brokers import Delivery, KeyWrite
from asyncq.errors import DecodeError, SerializationError
from asyncq.message import Message, peek_id
from asyncq.result import REJECTED
from asyncq.results import ResultRecord
from asyncq.states import TaskState

if TYPE_CHECKING:
    from asyncq.app import App
    from asyncq.task import Task

__all__ = ["Ack", "Dead", "Executor", "Outcome", "Requeue"]

logger = logging.getLogger("asyncq.worker")

MAX_TRACEBACK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Ack:
    delivery: Delivery
    write: KeyWrite | None = None


@dataclass(frozen=True, slots=True)
class Dead:
    delivery: Delivery
    reason: str
    task_id: str | None = None
    task: str | None = None


@dataclass(frozen=True, slots=True)
class Requeue:
    delivery: Delivery


Outcome = Ack | Dead | Requeue


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
            message = Message.decode(delivery.body, max_size=self.max_size)
        except DecodeError as exc:
            return Dead(delivery, f"undecodable message: {exc}",
                        peek_id(delivery.body, max_size=self.max_size))
        task = self.app.tasks.get(message.task)
        if task is None:
            return Dead(delivery, f"unknown task {message.task!r}", message.id, message.task)
        try:
            task.signature.bind(*message.args, **message.kwargs)
        except TypeError as exc:
            return Dead(delivery, f"arguments do not match {message.task}(): {exc}",
                        message.id, message.task)
        if delivery.delivery_count > self.max_deliveries:
            return Dead(delivery, f"delivered {delivery.delivery_count} times without an outcome "
                        "(the task may crash its worker)", message.id, message.task)
        return message, task

    async def skip_reason(self, message: Message, delivery: Delivery) -> Ack | None:
        """An outcome without running: expired, or already recorded by an earlier delivery."""
        expires = message.options.get("expires")
        if isinstance(expires, int | float) and time.time() > expires:
            record = ResultRecord(TaskState.CANCELLED, error_type="Expired",
                                  error_message="the task expired before it ran",
                                  task=message.task, finished_at=time.time())
            return Ack(delivery, self.backend.key_write(message.id, record))
        if delivery.delivery_count > 1:
            existing = await self.app.backend.get(message.id)
            if existing is not None and existing.ready:
                logger.info("%s[%s] already has a result; acking the redelivery",
                            message.task, message.id)
                return Ack(delivery)
        return None

    async def run(self, message: Message, task: Task[Any, Any], delivery: Delivery) -> Ack:
        """Run the task under its timeout; exceptions become FAILURE records."""
        if task.config.track_started:
            await self.backend.store(message.id, ResultRecord(
                TaskState.STARTED, attempt=message.attempt, task=message.task))
        started = time.perf_counter()
        try:
            async with asyncio.timeout(task.config.timeout):
                value = await task.fn(*message.args, **message.kwargs)
        except TimeoutError as exc:
            write = self._failure(message, exc, started, timeout=task.config.timeout)
        except Exception as exc:
            write = self._failure(message, exc, started)
        else:
            if task.config.ignore_result:
                self._log_success(message, started)
                return Ack(delivery)
            write = self._success(message, value, started)
        return Ack(delivery, write)

    def _success(self, message: Message, value: Any, started: float) -> KeyWrite:
        record = ResultRecord(TaskState.SUCCESS, value, attempt=message.attempt,
                              task=message.task, finished_at=time.time())
        try:
            write = self.backend.key_write(message.id, record)
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

    def _failure(self, message: Message, exc: BaseException, started: float,
                 timeout: float | None = None) -> KeyWrite:
        elapsed = time.perf_counter() - started
        etype, text, tb = describe(exc)
        if timeout is not None:
            etype, text = "TimeoutError", f"the task exceeded its {timeout:g} s time limit"
        logger.error("%s[%s] failed in %.4fs: %s: %s", message.task, message.id, elapsed,
                     etype, text)
        return self._error(message, etype, text, tb)

    def _error(self, message: Message, etype: str, text: str, tb: str | None = None) -> KeyWrite:
        record = ResultRecord(TaskState.FAILURE, None, etype, text, tb, message.attempt,
                              message.task, time.time())
        return self.backend.key_write(message.id, record)


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
