"""The asyncq error tree.

Every error asyncq raises on purpose derives from :class:`AsyncqError`::

    AsyncqError
    ├── ConfigurationError          bad URL, bad option, unknown scheme
    ├── SerializationError          an argument or result msgpack cannot carry
    ├── DecodeError                 bytes that are not a valid asyncq message/record
    │   ├── MessageTooLarge         over the configured size limit
    │   └── SignatureError          signature missing, unknown key id, or wrong
    ├── BrokerError                 the broker refused or could not be reached
    │   ├── BrokerUnavailable       connect/publish failed within its deadline
    │   └── PublishError            the broker did not confirm a publish
    ├── ResultError                 about a result handle
    │   ├── ResultTimeout           (also a builtin TimeoutError) no result in time
    │   ├── ResultUnavailable       the task ignores results / the backend cannot answer
    │   ├── TaskFailed              the task raised; carries the remote type, message, traceback
    │   │   └── TaskRejected        the message never ran (unknown task, bad arguments, ...)
    │   ├── TaskCancelled           the task was cancelled (it expired before it ran)
    │   └── TaskRevoked             the task was revoked (``handle.revoke()``)
    ├── TaskNotRegistered           a name the app does not know (lookup on the producer side)
    └── TimeLimitExceeded           (also a builtin TimeoutError) raised in the worker when a
                                    task runs past its time limit; ``retry_on=(TimeoutError,)``
                                    retries it, and ``on_failure`` hooks receive it

Control-flow exceptions raised *inside* tasks are not errors and are not logged as such::

    Retry                           ``raise asyncq.Retry(delay=5)``: run again later
"""

from __future__ import annotations

__all__ = [
    "AsyncqError",
    "BrokerError",
    "BrokerUnavailable",
    "ConfigurationError",
    "DecodeError",
    "MessageTooLarge",
    "PublishError",
    "ResultError",
    "ResultTimeout",
    "ResultUnavailable",
    "Retry",
    "SerializationError",
    "SignatureError",
    "TaskCancelled",
    "TaskFailed",
    "TaskNotRegistered",
    "TaskRejected",
    "TaskRevoked",
    "TimeLimitExceeded",
]


class AsyncqError(Exception):
    """Root of every error asyncq raises."""


class ConfigurationError(AsyncqError):
    """An option, URL or name is not usable."""


class SerializationError(AsyncqError):
    """A value cannot be serialized with asyncq's msgpack codec."""


class DecodeError(AsyncqError):
    """Bytes could not be decoded into an asyncq message or result record."""


class MessageTooLarge(DecodeError):
    """A payload is larger than the configured limit (checked before unpacking)."""


class SignatureError(DecodeError):
    """A message's HMAC signature is missing, unknown or wrong (checked before decoding)."""


class BrokerError(AsyncqError):
    """The broker failed an operation."""


class BrokerUnavailable(BrokerError):
    """The broker could not be reached within the deadline."""


class PublishError(BrokerError):
    """A publish was not confirmed by the broker."""


class ResultError(AsyncqError):
    """Base for errors about a task result."""


class ResultTimeout(ResultError, TimeoutError):
    """No result arrived within the timeout."""


class ResultUnavailable(ResultError):
    """The result cannot be known (ignored results, no backend)."""


class TaskFailed(ResultError):
    """The remote task failed.

    The remote exception is never re-imported: only its type name, message and
    formatted traceback travel back.
    """

    def __init__(
        self, task_id: str, exc_type: str, exc_message: str, traceback: str | None = None
    ) -> None:
        self.task_id = task_id
        self.exc_type = exc_type
        self.exc_message = exc_message
        self.traceback = traceback
        super().__init__(f"task {task_id} failed: {exc_type}: {exc_message}")


class TaskRejected(TaskFailed):
    """The message was dead-lettered before running (unknown task, bad arguments...)."""


class TaskCancelled(ResultError):
    """The task was cancelled: it expired before a worker ran it."""


class TaskRevoked(ResultError):
    """The task was revoked: it never ran, or (``terminate=True``) was stopped."""


class TaskNotRegistered(AsyncqError, LookupError):
    """No task with this name is registered on the app."""


class Retry(Exception):
    """Raise inside a task to run it again after ``delay`` seconds.

    Without ``delay`` the task's backoff decides. ``max_retries`` overrides the
    task's ``retries`` (default 3 when the task sets none). The task fails with
    ``cause`` (or this exception) once retries are used up.
    """

    def __init__(self, delay: float | None = None, *, max_retries: int | None = None,
                 cause: BaseException | None = None) -> None:
        self.delay = delay
        self.max_retries = max_retries
        self.cause = cause
        super().__init__(f"retry requested (delay={delay})")


class TimeLimitExceeded(AsyncqError, TimeoutError):
    """A task ran past its soft or hard time limit (raised in the worker)."""

    def __init__(self, kind: str, seconds: float) -> None:
        self.kind = kind
        self.seconds = seconds
        super().__init__(f"the task exceeded its {kind}time limit of {seconds:g} s")
