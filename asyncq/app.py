"""The App: task registry, configuration, and the broker and backend it owns."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar, Unpack, overload

from asyncq._loops import LoopCloser, never, owned_by, rebuild_for_new_loop, running_test
from asyncq._names import check_queue
from asyncq._sending import Sender
from asyncq.beat.entries import Entry, ScheduleSpec, add_entry, periodic
from asyncq.brokers import Broker, broker_class
from asyncq.codec import DEFAULT_MAX_SIZE
from asyncq.compression import Compressor
from asyncq.control import DEFAULT_REVOKE_WINDOW, Revocation
from asyncq.errors import ConfigurationError, TaskNotRegistered
from asyncq.message import valid_id
from asyncq.middleware import Middleware
from asyncq.middleware.expiry import Expiry
from asyncq.middleware.hooks import TaskHooks
from asyncq.middleware.rate_limit import RateLimit
from asyncq.middleware.replay import ReplayGuard
from asyncq.middleware.retries import Retries
from asyncq.middleware.revoke import Revoke
from asyncq.middleware.started import TrackStarted
from asyncq.middleware.time_limits import TimeLimits
from asyncq.records import REJECTED, ResultRecord
from asyncq.result import TaskResult
from asyncq.results import DEFAULT_RESULT_TTL, ResultBackend, backend_class
from asyncq.routing import Router, RoutesConfig
from asyncq.schedule import DEFAULT_GRACE, Missed, zone
from asyncq.signing import Signer
from asyncq.states import TaskState
from asyncq.task import (
    Hook,
    OptionsDict,
    Signature,
    Task,
    TaskConfig,
    TaskDecorator,
    checked_task_defaults,
)
from asyncq.wire import DEFAULT_MAX_AGE, WireCodec

if TYPE_CHECKING:
    from asyncq.blocking import BlockingClient
    from asyncq.events.control import Control, Inspect

__all__ = ["App"]

#: Ids of workflow handles start with their kind (see asyncq.canvas).
WORKFLOW_PREFIXES: Final = ("chain-", "group-", "chord-")

P = ParamSpec("P")
R = TypeVar("R")


class App:
    """An asyncq application.

    ``broker`` and ``backend`` take URLs or instances. Each comes from code first, then
    from the environment (``ASYNCQ_BROKER``, ``ASYNCQ_BACKEND``), then the default:
    ``memory://`` for the broker; for results where the broker says: its own server
    (Redis, memory) or back over the broker (RabbitMQ, ``rpc://``). ``middleware``
    wraps every enqueue and every task run (see :mod:`asyncq.middleware`; the first is
    outermost).
    ``task_defaults`` are options every ``@app.task`` gets unless it sets them
    (``{"retries": 3, "timeout": 30}``: any :class:`~asyncq.task.TaskConfig` field but
    ``name`` and ``queue``). ``compression`` (``"zlib"`` or ``"zstd"``) compresses
    messages of 1 KiB and more (see :mod:`asyncq.compression`). ``revoke_window`` is
    how long a revocation holds, in seconds (``None``: no revocations, and no revoke
    check around tasks; see :meth:`revoke`).
    """

    def __init__(
        self,
        name: str,
        broker: str | Broker | None = None,
        backend: str | ResultBackend | None = None,
        *,
        default_queue: str = "default",
        result_ttl: float = DEFAULT_RESULT_TTL,
        max_message_size: int = DEFAULT_MAX_SIZE,
        task_routes: RoutesConfig | None = None,
        signing_keys: Mapping[str, bytes | str] | None = None,
        signing_key_id: str | None = None,
        signing_max_age: float = DEFAULT_MAX_AGE,
        middleware: Sequence[Middleware] = (),
        timezone: str | dt.tzinfo | None = None,
        task_defaults: Mapping[str, Any] | None = None,
        compression: str | None = None,
        revoke_window: float | None = DEFAULT_REVOKE_WINDOW,
    ) -> None:
        if not name or not valid_id(name):
            raise ConfigurationError(f"invalid app name {name!r}")
        self.name = name
        self.default_queue = check_queue(default_queue, "App(default_queue=...)")
        self.tasks: dict[str, Task[Any, Any]] = {}
        #: the default zone of cron entries (UTC unless ``timezone`` names one)
        self.timezone = zone(timezone)
        #: periodic entries by name (``app.periodic``, ``app.schedule``; run by asyncq.beat)
        self.entries: dict[str, Entry] = {}
        self.router = Router(task_routes)
        signer = Signer(signing_keys, signing_key_id) if signing_keys else None
        self.task_defaults = checked_task_defaults(task_defaults)
        self.codec = WireCodec(max_size=max_message_size, signer=signer,
                               max_age=signing_max_age,
                               compressor=Compressor(compression) if compression else None)
        self.middleware: tuple[Middleware, ...] = ()
        self._sender = Sender(self)
        self._preparer = self._sender.preparer
        for mw in middleware:
            self.add_middleware(mw)
        if isinstance(broker, Broker):
            self.broker: Broker = broker
        else:
            url = broker or os.environ.get("ASYNCQ_BROKER", "memory://")
            self.broker = broker_class(url)(url)
        self._revoke = Revoke(name, revoke_window) if revoke_window else None
        self._builtins: tuple[Middleware, ...] = (
            *((self._revoke,) if self._revoke else ()), RateLimit(),
            # replays of signed messages (asyncq.middleware.replay): only with signing on
            *((ReplayGuard(),) if signer is not None else ()),
            Expiry(), TrackStarted(), TaskHooks(), Retries(), TimeLimits())
        self.backend: ResultBackend = self._make_backend(backend, result_ttl)
        #: whether broker and backend were built here from URLs (so they can be rebuilt
        #: for a new event loop)
        self.rebuildable = not isinstance(broker, Broker) and not isinstance(
            backend, ResultBackend)
        if signer is not None:  # results are signed with the same keys
            self.backend.signer = signer
        self._users = 0
        self._connected = False
        self._lock: asyncio.Lock | None = None
        #: the event loop this App's connections belong to (None before the first connect)
        self.bound_loop: asyncio.AbstractEventLoop | None = None
        #: whether the caller runs on ``bound_loop`` while connected (no system call:
        #: :func:`asyncq._loops.running_test`); never while not connected
        self.on_bound_loop: Callable[[], bool] = never
        self._closer = LoopCloser()
        owned_by(self.backend, self)

    def _make_backend(self, backend: str | ResultBackend | None, ttl: float) -> ResultBackend:
        if isinstance(backend, ResultBackend):
            return backend
        url = backend or os.environ.get("ASYNCQ_BACKEND") or self.broker.default_backend_url()
        return backend_class(url).create(url, ttl=ttl, max_size=self.codec.max_size,
                                         broker=self.broker)

    @property
    def max_message_size(self) -> int:
        return self.codec.max_size

    @property
    def signer(self) -> Signer | None:
        """The signing keys' holder (key ids only in its repr), or None."""
        return self.codec.signer

    def add_middleware(self, middleware: Middleware) -> None:
        """Add ``middleware`` inside those already there (before a worker starts)."""
        self.middleware = (*self.middleware, middleware)
        self._sender.set_middleware(self.middleware)

    def run_middleware(self) -> list[Middleware]:
        """Every middleware around a task run, outermost first: the App's, then the
        built-ins (expiry, track_started, hooks, retries, time limits)."""
        return [*self.middleware, *self._builtins]

    @property
    def control(self) -> Control:
        """Control requests to this app's workers (ping, shutdown, rate_limit, ...)."""
        from asyncq.events.control import Control

        return Control(self)

    def inspect(self, destination: Sequence[str] | None = None, timeout: float = 1.0
                ) -> Inspect:
        """Questions to this app's workers (active, reserved, stats, ...)."""
        return self.control.inspect(destination, timeout)

    def __repr__(self) -> str:
        return f"<App {self.name} broker={self.broker.safe_url} backend={self.backend.safe_url}>"

    # -- registration ----------------------------------------------------------------
    @overload
    def task(self, fn: Callable[P, Awaitable[R]], /) -> Task[P, R]: ...

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self, fn: None = None, /, *, name: str | None = None, queue: str | None = None,
        timeout: float | None = None, soft_timeout: float | None = None,
        retries: int = 0, retry_on: tuple[type[BaseException], ...] = (),
        retry_backoff: float = 1.0, retry_backoff_max: float = 600.0,
        retry_jitter: bool = True, ignore_result: bool = False, track_started: bool = False,
        on_success: Hook | None = None, on_failure: Hook | None = None,
        on_retry: Hook | None = None, rate_limit: str | None = None,
    ) -> TaskDecorator: ...

    def task(
        self, fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
        queue: str | None = None, **options: Any,
    ) -> Any:
        """Register a task: ``@app.task`` or ``@app.task(queue=...)``.

        An ``async def`` runs on the worker's event loop; a plain ``def`` runs in the
        worker's thread pool (``Worker(threads=...)``). The App's ``task_defaults``
        apply to every option not given here.

        Options are the fields of :class:`~asyncq.task.TaskConfig`: ``timeout``,
        ``soft_timeout``, ``retries``, ``retry_on``, ``retry_backoff``,
        ``retry_backoff_max``, ``retry_jitter``, ``ignore_result``, ``track_started``,
        ``on_success``, ``on_failure``, ``on_retry``, ``rate_limit``.
        """

        def register(func: Callable[..., Any]) -> Task[Any, Any]:
            try:
                config = TaskConfig(name=name or f"{func.__module__}.{func.__qualname__}",
                                    queue=queue or self.default_queue,
                                    **{**self.task_defaults, **options})
            except TypeError as exc:
                raise ConfigurationError(f"@app.task: {exc}") from None
            if queue is not None:
                check_queue(queue, f"@app.task {config.name!r}")
            if config.name in self.tasks:
                raise ConfigurationError(f"a task named {config.name!r} is already registered")
            task = Task(self, func, config)
            self.tasks[config.name] = task
            return task

        return register if fn is None else register(fn)

    def periodic(
        self, every: ScheduleSpec, /, *, name: str | None = None,
        tz: str | dt.tzinfo | None = None, missed: Missed = "latest",
        grace: dt.timedelta | float = DEFAULT_GRACE, **options: Any,
    ) -> Callable[[Callable[P, Awaitable[R]]], Task[P, R]]:
        """Register a task and run it on a schedule: ``@app.periodic(timedelta(seconds=5))``,
        ``@app.periodic(crontab(hour="7"), tz="Europe/Berlin")``, ``@app.periodic("*/15 * *
        * *")``. ``name`` names the task and the entry; other options go to ``app.task``.
        See docs/guides/periodic.md for ``missed`` and ``grace``."""
        return periodic(self, every, name=name, tz=tz, missed=missed, grace=grace,
                        options=options)

    def schedule(
        self, sig: Signature[Any], every: ScheduleSpec, /, *, name: str | None = None,
        tz: str | dt.tzinfo | None = None, missed: Missed = "latest",
        grace: dt.timedelta | float = DEFAULT_GRACE,
    ) -> Entry:
        """Send a call on a schedule: ``app.schedule(add.s(2, 3), timedelta(minutes=1))``."""
        return add_entry(self, sig, every, name=name, tz=tz, missed=missed, grace=grace)

    # -- lifecycle -------------------------------------------------------------------
    async def connect(self) -> None:
        """Connect broker and backend (idempotent); raises BrokerUnavailable.

        On a new event loop after the first one was closed (``asyncio.run`` again),
        the broker's and backend's connections are rebuilt first (see
        :mod:`asyncq._loops`).
        """
        loop = asyncio.get_running_loop()
        if self._connected and (self.bound_loop is loop or not self._loop_bound):
            return  # (memory:// serves every loop of the process: nothing to rebuild)
        if self.bound_loop is not None and self.bound_loop is not loop:
            rebuild_for_new_loop(self)  # or ConfigurationError
            self._connected, self._lock, self.bound_loop = False, None, None
            self.on_bound_loop = never
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._connected:
                return
            self.bound_loop = loop
            await self.broker.connect()
            await self.backend.connect()
            await self.broker.ping()
            self._connected = True
            self.on_bound_loop = running_test(loop)  # sends and waits here: no connect()
            await self._closer.arm(self)

    @property
    def _loop_bound(self) -> bool:
        """Whether the broker's or backend's connections belong to one event loop."""
        return self.broker.loop_bound or self.backend.loop_bound

    async def close(self) -> None:
        if not self._connected or self.bound_loop is not asyncio.get_running_loop():
            return
        self._connected = False
        self.on_bound_loop = never
        await self._closer.disarm()
        await self.backend.close()
        await self.broker.close()

    async def __aenter__(self) -> App:
        self._users += 1
        try:
            await self.connect()
        except BaseException:
            self._users -= 1
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._users -= 1
        if self._users <= 0:
            self._users = 0
            await self.close()

    def queue_for(self, task: Task[Any, Any]) -> str:
        """The queue a task goes to when a call does not say otherwise."""
        route = self.router.route(task.name)
        return (route.queue if route else None) or task.config.queue

    # -- sending ---------------------------------------------------------------------
    @overload
    def result(self, task_id: str) -> TaskResult[Any]: ...

    @overload
    def result(self, task_id: str, task: Task[..., R]) -> TaskResult[R]: ...

    def result(self, task_id: str, task: Task[..., Any] | None = None) -> TaskResult[Any]:
        """A handle for ``task_id``, in any process; typed as ``task``'s result if given."""
        if not valid_id(task_id):
            raise ValueError(f"invalid task id {task_id!r}")
        if task_id.startswith(WORKFLOW_PREFIXES):  # chain-, group-, chord-: asyncq.canvas
            from asyncq.canvas._handles import workflow_handle

            return workflow_handle(self, task_id)
        return TaskResult(self.backend, task_id, task.name if task is not None else None,
                          app=self)

    def blocking(self) -> BlockingClient:
        """A client for synchronous code (scripts, Django or Flask views): it runs its
        own event loop in a thread and may be shared by threads::

            with app.blocking() as client:
                handle = client.enqueue(add, 4, 4)
                print(handle.get(timeout=10))
        """
        from asyncq.blocking import BlockingClient

        return BlockingClient(self)

    def send_signature(self, sig: Signature[R]) -> Coroutine[Any, Any, TaskResult[R]]:
        """Send one call (what ``enqueue`` does); returns once the broker has it."""
        return self._sender.send(sig)

    async def enqueue_many(self, signatures: Iterable[Signature[R]]) -> list[TaskResult[R]]:
        """Send many calls in as few round trips as the broker allows."""
        return await self._sender.send_many(signatures)

    async def requeue_dead(self, queue: str, refs: Sequence[str]) -> int:
        """Put dead letters back on ``queue``, clearing the rejections they left.

        A handle awaited after this waits for the rerun instead of reporting the old
        ``TaskRejected`` (the broker's own ``requeue_dead`` moves messages only).
        """
        await self.connect()
        wanted = set(refs)
        for letter in await self.broker.dead_letters(queue, 1_000_000):
            if letter.ref in wanted and letter.task_id is not None:
                record = await self.backend.get(letter.task_id)
                if record is not None and record.error_type == REJECTED:
                    await self.backend.forget(letter.task_id)
        return await self.broker.requeue_dead(queue, list(refs))

    async def revoke(self, task_id: str, *, terminate: bool = False) -> None:
        """Revoke a task by id: it will not run (its state becomes ``REVOKED``, final,
        and awaiting it raises :class:`~asyncq.TaskRevoked`).

        Every worker of this app hears of it within a second and skips the message when
        it comes (queued or delayed); workers started within ``revoke_window`` seconds
        read it when they start. With ``terminate`` a run in progress is cancelled
        (``CancelledError`` at its next ``await``). A task that already finished keeps
        its outcome. See docs/guides/controlling.md.
        """
        if not valid_id(task_id):
            raise ValueError(f"invalid task id {task_id!r}")
        if self._revoke is None:
            raise ConfigurationError(f"app {self.name!r} has revocations off "
                                     "(revoke_window=None)")
        await self.connect()
        now = time.time()
        await self.backend.store(task_id, ResultRecord(
            TaskState.REVOKED, error_type="Revoked",
            error_message="terminated" if terminate else "revoked", finished_at=now))
        await self._revoke.bus(self.broker).publish(Revocation(task_id, terminate, now))

    async def send_task(self, name: str, args: Sequence[Any] = (),
                        kwargs: dict[str, Any] | None = None,
                        **options: Unpack[OptionsDict]) -> TaskResult[Any]:
        """Send by name, for producers that do not import the task's code."""
        task = self.tasks.get(name)
        if task is None:
            raise TaskNotRegistered(f"no task named {name!r} on app {self.name!r}")
        return await task.options(**options).enqueue(*args, **(kwargs or {}))

