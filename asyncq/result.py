"""The awaitable result handle."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

from asyncq._loops import ensure_loop
from asyncq.errors import (
    ResultUnavailable,
    TaskCancelled,
    TaskFailed,
    TaskRejected,
    TaskRevoked,
)
from asyncq.records import NOT_PLAIN, Progress, success_value
from asyncq.results import REJECTED, ResultRecord
from asyncq.results._deadlines import awaiting
from asyncq.states import TaskState

if TYPE_CHECKING:
    from asyncq.app import App
    from asyncq.results import ResultBackend

__all__ = ["REJECTED", "TaskResult"]

R = TypeVar("R")


class TaskResult(Generic[R]):
    """A handle on one task's outcome: ``await handle`` gives the task's return value.

    Built by ``enqueue`` or, from an id alone, by ``app.result(task_id)``.
    """

    __slots__ = ("_app", "_backend", "_ignored", "_since", "id", "task")

    def __init__(self, backend: ResultBackend, task_id: str, task: str | None = None,
                 *, ignored: bool = False, app: App | None = None,
                 since: int | None = None) -> None:
        self._backend = backend
        #: the backend's ``generation`` when enqueue made this handle for the new id it
        #: published (None: made otherwise, or awaited already)
        self._since = since
        self._ignored = ignored
        self._app = app
        self.id = task_id
        self.task = task

    def __repr__(self) -> str:
        return f"<TaskResult {self.task or '?'}[{self.id}]>"

    def __await__(self) -> Generator[Any, None, R]:
        # a generator, no coroutine of get's per await (a subclass's own get: below)
        return self._outcome(None, True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass with a ``get`` of its own and no ``__await__`` awaits its ``get``."""
        super().__init_subclass__(**kwargs)
        if "get" in cls.__dict__ and "__await__" not in cls.__dict__:
            cls.__await__ = _await_get  # type: ignore[method-assign,assignment]

    @overload
    async def get(self, timeout: float | None = None, *, propagate: Literal[True] = True
                  ) -> R: ...

    @overload
    async def get(self, timeout: float | None = None, *, propagate: bool
                  ) -> R | TaskFailed | TaskCancelled: ...

    async def get(self, timeout: float | None = None, *, propagate: bool = True) -> Any:
        """Wait for the outcome; raise :class:`~asyncq.ResultTimeout` after ``timeout`` s.

        A failed task raises :class:`~asyncq.TaskFailed` with the remote type name,
        message and traceback text; with ``propagate=False`` the failure (a
        ``TaskFailed`` or ``TaskCancelled``) is returned instead of raised.
        """
        return await awaiting(self._outcome(timeout, propagate))

    def _outcome(self, timeout: float | None, propagate: bool) -> Generator[Any, None, Any]:
        """:meth:`get`, as the plain generator ``__await__`` returns."""
        if self._ignored:
            raise ResultUnavailable(f"task {self.task} ignores its results")
        app = self._app
        if app is None or not app.on_bound_loop() or app.backend is not self._backend:
            yield from ensure_loop(self._backend).__await__()  # (the common case: none)
        # the record comes over the channel once, to one wait: any further await (one
        # running alongside, or after this one timed out or was cancelled just as the
        # record reached it) reads the key
        since, self._since = self._since, None
        backend = self._backend
        fut = backend.wait_now(self.id, since)
        if fut is None:
            raw: bytes = yield from backend.wait_raw(self.id, timeout, since).__await__()
        else:  # no coroutine (the hot path of a process awaiting its own tasks)
            try:
                if timeout is None:
                    raw = yield from fut
                else:
                    raw = yield from backend.timed(fut, self.id, timeout, fut.get_loop())
            except BaseException:  # given up (timed out, cancelled): the wait is forgotten
                backend.abandon(self.id, fut)
                raise
        if backend.signer is None:  # the common record, read without a ResultRecord
            value = success_value(raw, max_size=backend.max_size)
            if value is not NOT_PLAIN:
                return value
        try:
            return unwrap(self.id, backend.decode(self.id, raw))
        except (TaskFailed, TaskCancelled) as exc:
            if propagate:
                raise
            return exc

    async def info(self) -> ResultRecord | None:
        """The stored record, or ``None`` while nothing is known."""
        await ensure_loop(self._backend)
        return await self._backend.get(self.id)

    async def state(self) -> TaskState:
        record = await self.info()
        return TaskState.PENDING if record is None else record.state

    async def ready(self) -> bool:
        return (await self.state()).ready

    async def successful(self) -> bool:
        return await self.state() is TaskState.SUCCESS

    async def failed(self) -> bool:
        return await self.state() is TaskState.FAILURE

    async def traceback(self) -> str | None:
        record = await self.info()
        return None if record is None else record.traceback

    async def forget(self) -> None:
        """Delete the stored result."""
        await self._backend.forget(self.id)

    async def progress(self) -> Progress | None:
        """The progress the running task last reported, if any (see
        ``current_request().progress``)."""
        record = await self.info()
        return None if record is None else record.progress

    async def revoke(self, *, terminate: bool = False) -> None:
        """Revoke the task: it will not run (``REVOKED``; awaiting raises
        :class:`~asyncq.TaskRevoked`). With ``terminate`` a run in progress is cancelled
        too. See :meth:`asyncq.App.revoke`."""
        if self._app is None:
            raise ResultUnavailable("this handle was built without an App: use "
                                    "app.revoke(task_id)")
        await self._app.revoke(self.id, terminate=terminate)


def unwrap(task_id: str, record: ResultRecord) -> Any:
    """The value of a final record, or the error it stands for."""
    if record.state is TaskState.SUCCESS:
        return record.value
    if record.state is TaskState.CANCELLED:
        raise TaskCancelled(f"task {task_id} was cancelled: {record.error_message or ''}")
    if record.state is TaskState.REVOKED:
        raise TaskRevoked(f"task {task_id} was revoked: {record.error_message or ''}")
    error = TaskRejected if record.error_type == REJECTED else TaskFailed
    raise error(task_id, record.error_type or "Error", record.error_message or "",
                record.traceback)


def _await_get(handle: TaskResult[Any]) -> Generator[Any, None, Any]:
    """``__await__`` of a subclass that has a ``get`` of its own."""
    return handle.get().__await__()
