"""JSON log lines (``asyncq worker APP --log-format json``).

Every record logged while a task runs carries its ``task_id``, ``task``, ``queue`` and
``attempt``, read by :class:`TaskContext` from the running task's context variable
(:mod:`asyncq.context`). The worker's own lines about a task (received, succeeded,
failed, retried, handed back) carry them too: :class:`LogContext`, a middleware that
``--log-format json`` installs, keeps the job in that variable from ``before_run`` to
the end of its handler, and a line logged before that (``received``) gets the task name
and id from its arguments. Records logged outside a task have none of them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any, Final

from asyncq.context import current_request, set_request
from asyncq.message import valid_id
from asyncq.middleware import Job, Middleware

__all__ = ["JsonFormatter", "LogContext", "TaskContext", "use_json_logs"]

_FIELDS: Final = ("task_id", "task", "queue", "attempt")


class LogContext(Middleware):
    """Keeps the job in the request context variable for the rest of its handler, so
    the worker's lines about its outcome carry the task's fields."""

    async def before_run(self, job: Job) -> None:
        set_request(job)  # the handler runs in its own asyncio task (its own context)
        return None


class TaskContext(logging.Filter):
    """Adds the running task's id, name, queue and attempt to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            request = current_request()
        except LookupError:
            args = record.args
            if (record.name == "asyncq.worker" and isinstance(args, tuple) and len(args) >= 2
                    and valid_id(args[1])):  # "%s[%s] ..." % (task, id)
                record.task, record.task_id = str(args[0]), args[1]
            return True
        record.task_id = request.id
        record.task = request.task
        record.queue = request.queue
        record.attempt = request.attempt
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, process, message, task fields,
    exception text."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname, "logger": record.name,
            "process": record.processName, "message": record.getMessage(),
        }
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def use_json_logs(logger: logging.Logger | None = None) -> None:
    """Give every handler of ``logger`` (default: the root logger) the JSON formatter and
    the task-context filter."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        handler.setFormatter(JsonFormatter())
        if not any(isinstance(f, TaskContext) for f in handler.filters):
            handler.addFilter(TaskContext())
