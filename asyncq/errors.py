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
    │   ├── PublishError            the broker did not confirm a publish
    │   └── NotReplicated           fewer replicas than asked (``wait_replicas``) confirmed a
    │                               write in time: it may be lost if the master fails now
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

import builtins

__all__ = [
    "AsyncqError",
    "BrokerError",
    "BrokerUnavailable",
    "ConfigurationError",
    "DecodeError",
    "MessageTooLarge",
    "NotReplicated",
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


class NotReplicated(BrokerError):
    """Fewer replicas than ``wait_replicas`` acknowledged a write within ``wait_timeout``.

    The master has the write (an enqueue may still run), but a failover now could lose
    it: retrying the enqueue is safe for idempotent tasks.
    """


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

    def matches(self, *types: type[BaseException] | str | tuple[type[BaseException] | str, ...]
                ) -> bool:
        """Whether the remote exception is one of ``types``, compared by name.

        ``err.matches(ValueError)``, ``err.matches((KeyError, "shop.errors.OutOfStock"))``.
        A class is named as the worker records it (``module.QualName``, or the bare name
        for builtins); a string without a dot matches the last part of the recorded
        name. A builtin recorded type also matches its builtin base classes
        (``matches(LookupError)`` for a ``KeyError``); other classes match by their
        own name only. Nothing named in the record is ever imported.
        """
        names = _recorded_names(self.exc_type)
        for wanted in _flatten(types):
            name = wanted if isinstance(wanted, str) else _type_name(wanted)
            if name in names or ("." not in name and name == self.exc_type.rpartition(".")[2]):
                return True
        return False


def _flatten(types: tuple[object, ...]) -> list[type[BaseException] | str]:
    flat: list[type[BaseException] | str] = []
    for item in types:
        if isinstance(item, tuple):
            flat.extend(_flatten(item))
        elif isinstance(item, str) or (isinstance(item, type) and
                                       issubclass(item, BaseException)):
            flat.append(item)
        else:
            raise TypeError(f"matches() takes exception classes or names, not {item!r}")
    return flat


def _type_name(cls: type[BaseException]) -> str:
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _recorded_names(exc_type: str) -> set[str]:
    """The recorded name, and a builtin's base class names (looked up among the
    builtins only, never imported)."""
    found = getattr(builtins, exc_type, None) if exc_type.isidentifier() else None
    if isinstance(found, type) and issubclass(found, BaseException):
        return {cls.__qualname__ for cls in found.__mro__}
    return {exc_type}


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
