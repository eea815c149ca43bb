"""Typed tasks: ``Task[P, R]`` wraps a function registered on an App.

A coroutine function runs on the worker's event loop; a plain ``def`` function runs in
the worker's bounded thread pool (:mod:`asyncq._threads`). Either way
``await task.enqueue(...)`` is a ``TaskResult[R]``.
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import (
    TYPE_CHECKING,
    Any,
    Final,
    Generic,
    ParamSpec,
    Protocol,
    TypedDict,
    TypeVar,
    Unpack,
    overload,
)

from asyncq._names import check_priority, queue_error
from asyncq._threads import in_thread
from asyncq.errors import ConfigurationError

if TYPE_CHECKING:
    from asyncq.app import App
    from asyncq.canvas import Chain, Chord, Group
    from asyncq.result import TaskResult

__all__ = ["BoundTask", "CallOptions", "OptionsDict", "Signature", "Task", "TaskConfig",
           "TaskDecorator", "checked_task_defaults"]

P = ParamSpec("P")
R = TypeVar("R")


#: ``on_success`` / ``on_failure`` / ``on_retry``: an ``async def`` or a plain ``def``.
Hook = Callable[..., Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class TaskConfig:
    """Per-task defaults, set in ``@app.task(...)``.

    ``timeout`` is the hard time limit and ``soft_timeout`` the soft one (see
    docs/reliability.md); ``retries`` with ``retry_on`` retry on those exception
    types with exponential backoff (``retry_backoff`` base seconds, capped at
    ``retry_backoff_max``, full jitter unless ``retry_jitter=False``).
    Hooks are ``on_success(request, value)``, ``on_failure(request, exc)`` and
    ``on_retry(request, exc, delay)``, ``async def`` or plain ``def`` (a plain one runs
    on the event loop: keep it short); ``request.args`` and ``request.kwargs`` are the
    call's arguments.
    """

    name: str
    queue: str = "default"
    timeout: float | None = None
    soft_timeout: float | None = None
    ignore_result: bool = False
    track_started: bool = False
    retries: int = 0
    retry_on: tuple[type[BaseException], ...] = ()
    retry_backoff: float = 1.0
    retry_backoff_max: float = 600.0
    retry_jitter: bool = True
    on_success: Hook | None = None
    on_failure: Hook | None = None
    on_retry: Hook | None = None
    rate_limit: str | None = None

    def __post_init__(self) -> None:
        if self.rate_limit is not None:
            from asyncq.ratelimit import parse_rate

            parse_rate(self.rate_limit)  # a bad limit fails at registration


@dataclass(frozen=True, slots=True)
class CallOptions:
    """Per-call options (Celery's ``apply_async`` keywords)."""

    queue: str | None = None
    countdown: float | None = None
    eta: dt.datetime | float | None = None
    expires: dt.datetime | float | None = None
    task_id: str | None = None
    priority: int | None = None
    routing_key: str | None = None
    exchange: str | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)


    def with_headers(self, headers: Mapping[str, Any]) -> CallOptions:
        """These options with ``headers`` instead of their own."""
        return replace(self, headers=headers)


class OptionsDict(TypedDict, total=False):
    """The keyword arguments of ``task.options(...)``: a typo is a type error."""

    queue: str | None
    countdown: float | None
    eta: dt.datetime | float | None
    expires: dt.datetime | float | None
    task_id: str | None
    priority: int | None
    routing_key: str | None
    exchange: str | None
    headers: Mapping[str, Any]
    link: Signature[Any] | Sequence[Signature[Any]]
    link_error: Signature[Any] | Sequence[Signature[Any]]


#: The header that carries workflow state (links, chains, chords): asyncq.canvas.
WORKFLOW_HEADER: Final = "asyncq.wf"
#: The options of a plain call, shared (CallOptions is frozen; its headers are read-only).
NO_OPTIONS: Final = CallOptions(headers=MappingProxyType({}))


@dataclass(slots=True)
class Signature(Generic[R]):
    """A task call ready to send: ``add.s(2, 3)``, used by ``app.enqueue_many``.

    Not frozen: batches build one per call, and a frozen dataclass's ``__init__`` costs
    three times more. Treat it as read-only.
    """

    task: Task[..., R]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    options: CallOptions = NO_OPTIONS
    #: in a chain, an immutable step (``task.si(...)``) does not get the previous result
    immutable: bool = False

    def enqueue(self) -> Coroutine[Any, Any, TaskResult[R]]:
        """Send this call (a coroutine: ``await sig.enqueue()``)."""
        return self.task.app.send_signature(self)

    def __or__(self, other: Signature[Any] | Chain[Any]) -> Chain[Any]:
        """``a.s(1) | b.s()``: a chain (see :mod:`asyncq.canvas`)."""
        from asyncq.canvas import Chain

        return Chain(self, other)

    def __ror__(self, other: Group) -> Chord[Any]:
        from asyncq.canvas import Chord, Group

        if not isinstance(other, Group):
            return NotImplemented
        return Chord(other, self)


class TaskDecorator(Protocol):
    """What ``@app.task(...)`` returns: registers an ``async def`` or a plain ``def``."""

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]], /) -> Task[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


class Task(Generic[P, R]):
    """A function registered on an :class:`~asyncq.App`.

    ``await task(*args)`` runs it here and now; ``await task.enqueue(*args)`` sends it
    to a worker and returns a :class:`~asyncq.TaskResult`. A plain ``def`` function
    (``is_sync``) runs in a thread of the worker's pool; ``fn`` is then a coroutine
    function that does so.
    """

    def __init__(self, app: App, fn: Callable[P, Awaitable[R]] | Callable[P, R],
                 config: TaskConfig) -> None:
        if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
            raise ConfigurationError(f"task {config.name!r}: a generator cannot be a task")
        self.app = app
        self.is_sync = not _is_async(fn)
        self.fn: Callable[P, Awaitable[R]] = (
            in_thread(fn) if self.is_sync else fn)  # type: ignore[arg-type,assignment]
        self.config = config
        self.signature = inspect.signature(fn)
        self.plain_arity = _plain_arity(self.signature)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    @property
    def name(self) -> str:
        return self.config.name

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.config.queue}>"

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self.fn(*args, **kwargs)

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, TaskResult[R]]:
        """Send to a worker: ``await task.enqueue(...)`` returns once the broker has the
        message. (The App's coroutine, returned as it is: one coroutine less per call.)"""
        return self.app.send_signature(Signature(self, args, kwargs))

    def s(self, *args: Any, **kwargs: Any) -> Signature[R]:
        """A signature of this call, for ``app.enqueue_many`` and workflows.

        It may be partial, as in Celery: in a chain, the previous step's result comes
        first (``fetch.s(url) | parse.s()``). So its arguments are checked when it is
        sent, not by the type checker; ``si()`` takes a complete, type-checked call.
        """
        return Signature(self, args, kwargs)

    def si(self, *args: P.args, **kwargs: P.kwargs) -> Signature[R]:
        """An immutable signature: in a chain it does not get the previous result."""
        return Signature(self, args, kwargs, NO_OPTIONS, True)

    def options(self, **options: Unpack[OptionsDict]) -> BoundTask[P, R]:
        """Per-call options: ``await add.options(countdown=5, queue="slow").enqueue(2, 3)``.

        Accepts the fields of :class:`CallOptions`, and Celery's ``link`` (signatures
        called with the result) and ``link_error`` (called with the task's id when it
        fails for good); those need a shared result backend (see docs/guides/workflows.md).
        """
        return BoundTask(self, _call_options(options))


class BoundTask(Generic[P, R]):
    """A task with per-call options applied."""

    def __init__(self, task: Task[P, R], options: CallOptions) -> None:
        self.task = task
        self.call_options = options

    def options(self, **options: Unpack[OptionsDict]) -> BoundTask[P, R]:
        return BoundTask(self.task, _call_options(options, self.call_options))

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, TaskResult[R]]:
        """Send to a worker with these options (a coroutine, as :meth:`Task.enqueue`)."""
        return self.task.app.send_signature(
            Signature(self.task, args, kwargs, self.call_options))

    def s(self, *args: Any, **kwargs: Any) -> Signature[R]:
        """A possibly partial signature (see :meth:`Task.s`)."""
        return Signature(self.task, args, kwargs, self.call_options)

    def si(self, *args: P.args, **kwargs: P.kwargs) -> Signature[R]:
        return Signature(self.task, args, kwargs, self.call_options, True)


def _is_async(fn: Callable[..., Any]) -> bool:
    call = getattr(fn, "__call__", None)  # noqa: B004  (an instance with async __call__)
    return inspect.iscoroutinefunction(fn) or (
        not inspect.isroutine(fn) and inspect.iscoroutinefunction(call))


def _call_options(options: OptionsDict, base: CallOptions | None = None) -> CallOptions:
    """CallOptions from ``options(...)`` keywords; an unknown one is a TypeError."""
    unknown = set(options) - set(OptionsDict.__annotations__)
    if unknown:
        raise TypeError(f"unknown call option(s): {', '.join(sorted(unknown))} "
                        f"(known: {', '.join(OptionsDict.__annotations__)})")
    queue = options.get("queue")
    if queue is not None and (error := queue_error(queue)) is not None:
        raise ValueError(f"options(queue=...): {error}")
    check_priority(options.get("priority"))
    given: dict[str, Any] = dict(options)
    link, link_error = given.pop("link", None), given.pop("link_error", None)
    result = CallOptions(**given) if base is None else replace(base, **given)
    if link is None and link_error is None:
        return result
    from asyncq.canvas._spec import link_header

    headers = dict(result.headers)
    wf = dict(headers.get(WORKFLOW_HEADER) or {})
    for key, specs in link_header(link, link_error).items():
        wf[key] = [*wf.get(key, []), *specs]
    headers[WORKFLOW_HEADER] = wf
    return result.with_headers(headers)


def _plain_arity(signature: inspect.Signature) -> int | None:
    """The parameter count when every parameter is required and positional-capable.

    Then a call with that many positional arguments and no keywords binds, and the
    per-call ``Signature.bind`` can be skipped (it costs more than the rest of enqueue).
    """
    plain = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = signature.parameters.values()
    if all(p.kind in plain and p.default is inspect.Parameter.empty for p in params):
        return len(signature.parameters)
    return None


def checked_task_defaults(defaults: Mapping[str, Any] | None) -> dict[str, Any]:
    """``App(task_defaults=...)`` checked now: a bad key is a ConfigurationError."""
    if not defaults:
        return {}
    refused = {"name", "queue"} & set(defaults)
    if refused:
        raise ConfigurationError(f"task_defaults cannot set {', '.join(sorted(refused))} "
                                 "(use default_queue for the queue)")
    try:
        TaskConfig(name="task_defaults", **defaults)
    except TypeError as exc:
        raise ConfigurationError(f"task_defaults: {exc}") from None
    return dict(defaults)
