"""The App: task registry, configuration, and the broker and backend it owns."""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar, overload

from asyncq._outgoing import Preparer
from asyncq._urls import mask_url, scheme_of
from asyncq.brokers import Broker, Outgoing
from asyncq.codec import DEFAULT_MAX_SIZE
from asyncq.errors import (
    ConfigurationError,
    MessageTooLarge,
    SignatureError,
    TaskNotRegistered,
)
from asyncq.message import Message, valid_id
from asyncq.result import TaskResult
from asyncq.results import DEFAULT_RESULT_TTL, REJECTED, ResultBackend
from asyncq.routing import Router, RouteSpec
from asyncq.signing import MAGIC as SIGNED_MAGIC
from asyncq.signing import Signer
from asyncq.task import CallOptions, Hook, Signature, Task, TaskConfig

__all__ = ["App"]

P = ParamSpec("P")
R = TypeVar("R")

_BROKERS = {
    "memory": "asyncq.brokers.memory:MemoryBroker",
    "redis": "asyncq.brokers.redis:RedisBroker",
    "rediss": "asyncq.brokers.redis:RedisBroker",
    "amqp": "asyncq.brokers.amqp:AmqpBroker",
    "amqps": "asyncq.brokers.amqp:AmqpBroker",
}
_BACKENDS = {
    "memory": "asyncq.results.memory:MemoryResultBackend",
    "redis": "asyncq.results.redis:RedisResultBackend",
    "rediss": "asyncq.results.redis:RedisResultBackend",
    "amqp": "asyncq.results.amqp:AmqpResultBackend",
    "amqps": "asyncq.results.amqp:AmqpResultBackend",
}


def _load(table: dict[str, str], url: str, what: str) -> Any:
    path = table.get(scheme_of(url))
    if path is None:
        raise ConfigurationError(f"no {what} for URL {mask_url(url)} "
                                 f"(schemes: {', '.join(sorted(table))})")
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


class App:
    """An asyncq application.

    ``broker`` and ``backend`` take URLs or instances. Each comes from code first, then
    from the environment (``ASYNCQ_BROKER``, ``ASYNCQ_BACKEND``), then the default:
    ``memory://`` for the broker; for results the broker's server (Redis, memory) or
    back over AMQP (RabbitMQ).
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
        task_routes: Mapping[str, RouteSpec] | None = None,
        signing_keys: Mapping[str, bytes | str] | None = None,
        signing_key_id: str | None = None,
    ) -> None:
        if not name or not valid_id(name):
            raise ConfigurationError(f"invalid app name {name!r}")
        self.name = name
        self.default_queue = default_queue
        self.max_message_size = max_message_size
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.router = Router(task_routes)
        self._preparer = Preparer(self)
        self.signer = Signer(signing_keys, signing_key_id) if signing_keys else None
        if isinstance(broker, Broker):
            self.broker: Broker = broker
        else:
            url = broker or os.environ.get("ASYNCQ_BROKER", "memory://")
            self.broker = _load(_BROKERS, url, "broker")(url)
        self.backend: ResultBackend = self._make_backend(backend, result_ttl)
        self._users = 0
        self._connected = False
        self._lock: asyncio.Lock | None = None

    def _make_backend(self, backend: str | ResultBackend | None, ttl: float) -> ResultBackend:
        if isinstance(backend, ResultBackend):
            return backend
        url = backend or os.environ.get("ASYNCQ_BACKEND") or self.broker.url
        cls = _load(_BACKENDS, url, "result backend")
        if scheme_of(url).startswith("amqp"):
            return cls(url, ttl=ttl, broker=self.broker)  # type: ignore[no-any-return]
        return cls(url, ttl=ttl, max_size=self.max_message_size)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<App {self.name} broker={self.broker.safe_url} backend={self.backend.safe_url}>"

    # -- registration ----------------------------------------------------------------
    @overload
    def task(self, fn: Callable[P, Awaitable[R]], /) -> Task[P, R]: ...

    @overload
    def task(
        self, fn: None = None, /, *, name: str | None = None, queue: str | None = None,
        timeout: float | None = None, soft_timeout: float | None = None,
        retries: int = 0, retry_on: tuple[type[BaseException], ...] = (),
        retry_backoff: float = 1.0, retry_backoff_max: float = 600.0,
        retry_jitter: bool = True, ignore_result: bool = False, track_started: bool = False,
        on_success: Hook | None = None, on_failure: Hook | None = None,
        on_retry: Hook | None = None,
    ) -> Callable[[Callable[P, Awaitable[R]]], Task[P, R]]: ...

    def task(
        self, fn: Callable[..., Awaitable[Any]] | None = None, /, *, name: str | None = None,
        queue: str | None = None, **options: Any,
    ) -> Any:
        """Register a coroutine function as a task: ``@app.task`` or ``@app.task(queue=...)``.

        Options are the fields of :class:`~asyncq.task.TaskConfig`: ``timeout``,
        ``soft_timeout``, ``retries``, ``retry_on``, ``retry_backoff``,
        ``retry_backoff_max``, ``retry_jitter``, ``ignore_result``, ``track_started``,
        ``on_success``, ``on_failure``, ``on_retry``.
        """

        def register(func: Callable[..., Awaitable[Any]]) -> Task[Any, Any]:
            try:
                config = TaskConfig(name=name or f"{func.__module__}.{func.__qualname__}",
                                    queue=queue or self.default_queue, **options)
            except TypeError as exc:
                raise ConfigurationError(f"@app.task: {exc}") from None
            if config.name in self.tasks:
                raise ConfigurationError(f"a task named {config.name!r} is already registered")
            task = Task(self, func, config)
            self.tasks[config.name] = task
            return task

        return register if fn is None else register(fn)

    # -- lifecycle -------------------------------------------------------------------
    async def connect(self) -> None:
        """Connect broker and backend (idempotent); raises BrokerUnavailable."""
        if self._connected:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._connected:
                return
            await self.broker.connect()
            await self.backend.connect()
            await self.broker.ping()
            self._connected = True

    async def close(self) -> None:
        if not self._connected:
            return
        self._connected = False
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

    # -- wire --------------------------------------------------------------------------
    def encode_message(self, message: Message) -> bytes:
        body = message.encode()
        return self.signer.sign(body) if self.signer is not None else body

    def decode_message(self, data: bytes) -> Message:
        """Verify (when signing is on) before decoding; every failure is a DecodeError."""
        if len(data) > self.max_message_size:
            raise MessageTooLarge(f"message of {len(data)} bytes exceeds the "
                                  f"{self.max_message_size} byte limit")
        if self.signer is not None:
            data = self.signer.verify(data)
        elif data.startswith(SIGNED_MAGIC):
            raise SignatureError("message is signed but this app has no signing keys")
        return Message.decode(data, max_size=self.max_message_size)

    # -- sending ---------------------------------------------------------------------
    def result(self, task_id: str) -> TaskResult[Any]:
        """A handle for ``task_id``, in any process."""
        if not valid_id(task_id):
            raise ValueError(f"invalid task id {task_id!r}")
        return TaskResult(self.backend, task_id)

    async def send_signature(self, sig: Signature[R]) -> TaskResult[R]:
        outgoing, handle = self._preparer.prepare(sig)
        if not self._connected:
            await self.connect()
        await self.broker.publish(outgoing)
        return handle

    async def enqueue_many(self, signatures: Iterable[Signature[Any]]) -> list[TaskResult[Any]]:
        """Send many calls in as few round trips as the broker allows."""
        outgoing, handles = self._preparer.prepare_many(signatures)
        await self.connect()
        await self.broker.publish_many(outgoing)
        return handles

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

    async def send_task(self, name: str, args: Sequence[Any] = (),
                        kwargs: dict[str, Any] | None = None,
                        **options: Any) -> TaskResult[Any]:
        """Send by name, for producers that do not import the task's code."""
        task = self.tasks.get(name)
        if task is None:
            raise TaskNotRegistered(f"no task named {name!r} on app {self.name!r}")
        return await self.send_signature(
            Signature(task, tuple(args), kwargs or {}, CallOptions(**options)))

    def _prepare(self, sig: Signature[R]) -> tuple[Outgoing, TaskResult[R]]:
        return self._preparer.prepare(sig)
