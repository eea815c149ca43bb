"""The middleware seam: hooks around enqueue and around each task's execution.

A middleware is a subclass of :class:`Middleware` that overrides some of its hooks;
the rest are no-ops that cost nothing, because the App and the worker call only the
hooks a middleware overrides, and only for the tasks it :meth:`~Middleware.applies_to`.
A task that no extra middleware applies to runs as fast as with none at all.

Order. ``App(middleware=[a, b])`` puts ``a`` outermost. Around one task::

    a.before_run -> b.before_run -> built-ins' before_run
      a.around_run( b.around_run( built-ins' around_run( the task ) ) )
    built-ins' after_run -> b.after_run -> a.after_run        (reverse order)

and around one enqueue ``a.before_enqueue -> b.before_enqueue``, then the publish, then
``b.after_enqueue -> a.after_enqueue``. The built-ins are, outermost first:
:class:`~asyncq.middleware.expiry.Expiry`, :class:`~asyncq.middleware.started.TrackStarted`,
:class:`~asyncq.middleware.hooks.TaskHooks`, :class:`~asyncq.middleware.retries.Retries`
and :class:`~asyncq.middleware.time_limits.TimeLimits`. A ``before_run`` that returns a
:class:`Skip` ends the run there: the task does not run, the skip's state is recorded,
and the ``after_run`` of every middleware whose ``before_run`` ran is called.

Observers. A middleware that only needs to know outcomes (events, metrics) sets
:attr:`Middleware.outcomes` to a list instead of overriding ``after_run``: the worker
extends it with one :data:`OutcomeRow` per run outcome (its values, see
:mod:`asyncq.middleware._row`), synchronously, after the ``after_run`` hooks and before
the outcome is recorded (no coroutine, no :class:`RunResult` per task), and the
middleware takes them in batches (:func:`asyncq.middleware._row.drain`, from a
periodic loop of its own).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from asyncq.states import TaskState

if TYPE_CHECKING:
    from asyncq.app import App
    from asyncq.brokers import Delivery
    from asyncq.context import Request
    from asyncq.message import Message
    from asyncq.task import CallOptions, Task
    from asyncq.worker import Worker

__all__ = ["HOOKS", "Call", "Job", "Middleware", "OutcomeRow", "Outcomes", "Pipeline",
           "RunResult", "Skip", "overrides"]

CallNext = Callable[[], Awaitable[Any]]
#: One outcome, as observers see it: the event row :data:`asyncq.events.ROW`,
#: ``(type, ts, id, task, queue, attempt, state, runtime, error, delay, worker,
#: enqueued_at)``: the event type (``task-succeeded``...), when the outcome was decided
#: (unix time), the message's id, task name, queue and attempt, the final or retry
#: state, the run time in seconds (``None`` where the task did not run), the error text
#: (FAILURE, RETRY, skips; ``None`` on success), the retry delay (RETRY), the worker's
#: name and the message's ``asyncq-enqueued-at`` header (or ``None``). Plain values
#: only, the state too (``"SUCCESS"``, not the enum member): the garbage collector stops
#: tracking such a tuple, while a buffer of jobs or enum members makes its work grow
#: with the buffer. Made once: events send it, metrics fold it. A success is told in the
#: short form :data:`asyncq.events.SUCCESS_ROW`, ``(ts, id, task, queue, attempt,
#: runtime, worker, enqueued_at)``: its type, state, error and delay follow from it;
#: the worker tells it with the message's headers in place of ``enqueued_at`` (read in
#: the batch), and an observer's list keeps its values, not the tuple. Another outcome
#: is told as ``(row, *PAD)`` (:data:`asyncq.middleware._row.PAD`): as long.
OutcomeRow = (tuple[float, str, str, str, int, float, str, Mapping[str, Any]]
              | tuple[tuple[Any, ...], None, None, None, None, None, None, Mapping[str, Any]])
#: An observer's buffer of outcomes: the values of the rows told, one after the other.
Outcomes = list[Any]


@dataclass(slots=True, eq=False)
class Call:
    """One enqueue, as middleware sees it before it is sent.

    ``headers`` may be changed (they travel in the message); raising refuses the call
    (the caller of ``enqueue`` gets the exception and nothing is sent).
    """

    task: Task[..., Any]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    options: CallOptions
    headers: dict[str, Any]

    @property
    def name(self) -> str:
        return self.task.name


class Job:
    """One delivery the worker runs: its message, task and delivery, and a scratch
    dict (``state``) where middleware keep what they need between hooks.

    A plain class with slots: one is made per message, on the worker's hot path.
    """

    __slots__ = ("app", "delivery", "message", "pipeline", "state", "task")

    def __init__(self, app: App, message: Message, task: Task[..., Any], delivery: Delivery,
                 pipeline: Pipeline) -> None:
        self.app = app
        self.message = message
        self.task = task
        self.delivery = delivery
        self.pipeline = pipeline
        self.state: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<Job {self.message.task}[{self.message.id}]>"

    @property
    def id(self) -> str:
        return self.message.id

    @property
    def name(self) -> str:
        return self.message.task

    @property
    def queue(self) -> str:
        return self.delivery.queue

    @property
    def attempt(self) -> int:
        return self.message.attempt

    @property
    def request(self) -> Request:
        from asyncq.context import request_of

        return request_of(self)


@dataclass(frozen=True, slots=True)
class Skip:
    """Returned by ``before_run``: do not run the task; record ``state`` with this
    error type and message (``REVOKED`` for a revoked task, ``CANCELLED`` if expired)."""

    state: TaskState
    error_type: str
    message: str


@dataclass(slots=True, eq=False)
class RunResult:
    """What ``after_run`` is told: the final or retry state of this run, its value
    (SUCCESS) or exception (FAILURE, RETRY), the retry delay (RETRY), and how long the
    task ran, in seconds (``None`` where it did not run)."""

    state: TaskState
    value: Any = None
    error: BaseException | None = None
    delay: float | None = None
    skipped: Skip | None = None
    runtime: float | None = None


class Middleware:
    """Base class: override the hooks you need; each one you do not is never called."""

    #: An observer's buffer of outcomes (see the module's "Observers"); ``None``: not one.
    outcomes: Outcomes | None = None

    def uses(self, hook: str) -> bool:
        """Whether the worker calls ``hook`` (one of :data:`HOOKS`) of this middleware;
        by default, the hooks its class overrides."""
        return overrides(self, hook)

    def applies_to(self, task: Task[..., Any]) -> bool:
        """Whether this middleware's run hooks are used for ``task`` (checked once per
        task; enqueue hooks apply to every call)."""
        return True

    # -- producer side ------------------------------------------------------------
    async def before_enqueue(self, call: Call) -> None:
        """Before a call is sent: add ``call.headers``, or raise to refuse it."""

    async def after_enqueue(self, call: Call, task_id: str) -> None:
        """After the broker has the message."""

    # -- worker lifecycle ---------------------------------------------------------
    async def worker_start(self, worker: Worker) -> None:
        """The worker is connected and about to consume."""

    async def worker_stop(self, worker: Worker) -> None:
        """The worker stopped consuming and settled what it held."""

    # -- around one task ----------------------------------------------------------
    def check_run(self, job: Job) -> Skip | None:
        """A quick synchronous check before the run (no I/O: a dict or set lookup);
        a :class:`Skip` ends the run. Runs before every ``before_run``."""
        return None
    async def admit(self, job: Job) -> None:
        """Wait until ``job`` may take a run slot (rate limits). Called before the job
        takes a slot, so other tasks keep running meanwhile; jobs of one task are
        admitted one at a time, in order. Only for tasks this middleware applies to:
        a worker whose tasks no middleware admits pays nothing for it."""

    async def before_run(self, job: Job) -> Skip | None:
        """Before the task runs (after the redelivery check); a :class:`Skip` ends the run."""
        return None

    async def around_run(self, job: Job, call_next: CallNext) -> Any:
        """Wrap the call itself: ``return await call_next()`` runs the rest (time limits,
        tracing spans)."""
        return await call_next()

    def retry_delay(self, job: Job, error: BaseException) -> float | None:
        """Seconds before the task runs again after ``error``, or ``None`` (not this one's
        call). The first middleware that answers decides."""
        return None

    async def on_success(self, job: Job, value: Any) -> None:
        """The task returned ``value``."""

    async def on_retry(self, job: Job, error: BaseException, delay: float) -> None:
        """The task failed with ``error`` and runs again in ``delay`` seconds."""

    async def on_failure(self, job: Job, error: BaseException) -> None:
        """The task failed for good with ``error``."""

    async def after_run(self, job: Job, result: RunResult) -> None:
        """The outcome of this run is decided (recorded just after)."""


#: The hooks a middleware can override; :func:`overrides` tells which ones it does.
HOOKS: Final = ("before_enqueue", "after_enqueue", "worker_start", "worker_stop",
                "check_run", "admit", "before_run", "around_run", "retry_delay", "on_success",
                "on_retry", "on_failure", "after_run")


def overrides(middleware: Middleware, hook: str) -> bool:
    """Whether ``middleware``'s class overrides ``hook`` of :class:`Middleware`."""
    return getattr(type(middleware), hook) is not getattr(Middleware, hook)


class Pipeline:
    """The run hooks that apply to one task, in calling order (built once per task)."""

    __slots__ = ("admit", "after", "around", "before", "checks", "failure", "observed",
                 "retry", "retry_hooks", "sinks", "success", "tell")

    def __init__(self, middleware: Sequence[Middleware], task: Task[..., Any]) -> None:
        used = [mw for mw in middleware if mw.applies_to(task)]

        def having(hook: str) -> list[Middleware]:
            return [mw for mw in used if mw.uses(hook)]

        self.checks = having("check_run")
        self.admit = having("admit")
        self.before = having("before_run")
        self.around = having("around_run")
        self.retry = having("retry_delay")
        self.success = having("on_success")
        self.retry_hooks = having("on_retry")
        self.failure = having("on_failure")
        self.after = list(reversed(having("after_run")))
        #: someone is told of a success (on_success or after_run hooks)
        self.observed = bool(self.success or self.after)
        #: the observers' outcome buffers
        self.sinks = [mw.outcomes for mw in used if mw.outcomes is not None]
        #: adds one outcome row's values to every sink (``None``: no observer): one call
        self.tell: Callable[[OutcomeRow], None] | None = (
            None if not self.sinks else self.sinks[0].extend if len(self.sinks) == 1
            else partial(_tell_all, self.sinks))


def _tell_all(sinks: list[Outcomes], row: OutcomeRow) -> None:
    for sink in sinks:
        sink.extend(row)
