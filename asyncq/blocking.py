"""A blocking client for synchronous code: scripts, Django or Flask views, threads.

::

    with app.blocking() as client:          # its own event loop, in a thread
        handle = client.enqueue(add, 4, 4)
        while not handle.ready():
            time.sleep(0.2)
        print(handle.get(timeout=10))

The client owns a private event loop running in a daemon thread; every call is sent
to that loop and waited for, so any number of threads may share one client. While it
is open the App's connections belong to that loop (using the same App from another
running loop at the same time is refused with a ConfigurationError); after it closes,
the App can be used from ``asyncio.run`` again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from asyncq.errors import ConfigurationError
from asyncq.states import TaskState
from asyncq.task import BoundTask, Signature, Task

if TYPE_CHECKING:
    from types import TracebackType

    from asyncq.app import App
    from asyncq.records import ResultRecord
    from asyncq.result import TaskResult
    from asyncq.worker import Worker

__all__ = ["BlockingClient", "BlockingResult"]

T = TypeVar("T")
R = TypeVar("R")


class BlockingClient:
    """Send tasks and read results from synchronous code (see the module docstring)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self._entered = False

    def __repr__(self) -> str:
        return f"<BlockingClient {self.app.name} {'open' if self._loop else 'closed'}>"

    # -- lifecycle -------------------------------------------------------------------
    def open(self) -> BlockingClient:
        with self._guard:
            if self._loop is not None:
                return self
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="asyncq-blocking",
                                      daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        try:
            self.run(self.app.__aenter__())  # a user of the App until close()
        except BaseException:
            self._stop_loop()
            raise
        self._entered = True
        return self

    def close(self) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            if self._entered:
                self._entered = False
                asyncio.run_coroutine_threadsafe(self.app.__aexit__(None, None, None),
                                                 loop).result(timeout=30)
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        with self._guard:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()

    def __enter__(self) -> BlockingClient:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @contextlib.contextmanager
    def worker(self, queues: Sequence[str] | None = None, **options: Any) -> Iterator[Worker]:
        """An in-process worker on the client's loop while the block runs (for tests of
        synchronous code on ``memory://``, say); options are :class:`~asyncq.Worker`'s."""
        from asyncq.worker import Worker

        loop = self._loop
        if loop is None:
            raise ConfigurationError("the blocking client is closed")
        worker = Worker(self.app, queues, **options)
        running = asyncio.run_coroutine_threadsafe(worker.run(), loop)
        try:
            yield worker
        finally:
            loop.call_soon_threadsafe(worker.stop)
            running.result(timeout=worker.shutdown_timeout + 30)

    # -- calls -----------------------------------------------------------------------
    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the client's loop and wait for its result (thread-safe)."""
        loop = self._loop
        if loop is None:
            coro.close()
            raise ConfigurationError("the blocking client is closed: use "
                                     "`with app.blocking() as client:`")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # an interrupted caller leaves nothing running behind
            raise

    @overload
    def enqueue(self, task: Task[..., R] | BoundTask[..., R] | Signature[R],
                *args: Any, **kwargs: Any) -> BlockingResult[R]: ...

    @overload
    def enqueue(self, task: Any, *args: Any, **kwargs: Any) -> BlockingResult[Any]: ...

    def enqueue(self, task: Any, *args: Any, **kwargs: Any) -> BlockingResult[Any]:
        """Send ``task(*args, **kwargs)``; also takes a signature, a chain, a group or
        a chord (with no arguments). Returns a :class:`BlockingResult`."""
        if isinstance(task, Task | BoundTask):
            handle: TaskResult[Any] = self.run(task.enqueue(*args, **kwargs))
        elif args or kwargs:
            raise TypeError("arguments go with a task, not with a signature or workflow")
        else:
            handle = self.run(task.enqueue())
        return BlockingResult(self, handle)

    def enqueue_many(self, signatures: Iterable[Signature[R]]) -> list[BlockingResult[R]]:
        handles = self.run(self.app.enqueue_many(list(signatures)))
        return [BlockingResult(self, h) for h in handles]

    def send_task(self, name: str, args: Iterable[Any] = (),
                  kwargs: dict[str, Any] | None = None) -> BlockingResult[Any]:
        """Send by name (Celery's ``send_task``)."""
        return BlockingResult(self, self.run(self.app.send_task(name, tuple(args), kwargs)))

    def result(self, task_id: str) -> BlockingResult[Any]:
        """A handle from an id (a task's or a workflow's), like ``app.result``."""
        return BlockingResult(self, self.app.result(task_id))


class BlockingResult(Generic[R]):
    """A :class:`~asyncq.TaskResult` (or workflow handle) for synchronous code."""

    def __init__(self, client: BlockingClient, handle: TaskResult[R]) -> None:
        self.client = client
        self.handle = handle

    def __repr__(self) -> str:
        return f"<BlockingResult {self.handle!r}>"

    @property
    def id(self) -> str:
        return self.handle.id

    def get(self, timeout: float | None = None, *, propagate: bool = True) -> Any:
        """Wait for the result; see :meth:`asyncq.TaskResult.get`."""
        return self.client.run(self.handle.get(timeout, propagate=propagate))

    def state(self) -> TaskState:
        return self.client.run(self.handle.state())

    def ready(self) -> bool:
        return self.client.run(self.handle.ready())

    def successful(self) -> bool:
        return self.client.run(self.handle.successful())

    def failed(self) -> bool:
        return self.client.run(self.handle.failed())

    def info(self) -> ResultRecord | None:
        return self.client.run(self.handle.info())

    def traceback(self) -> str | None:
        return self.client.run(self.handle.traceback())

    def forget(self) -> None:
        self.client.run(self.handle.forget())
