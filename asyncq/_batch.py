"""Coalescing of concurrent calls into batches (one round trip for many callers)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

__all__ = ["Coalescer", "raise_first", "runs_by_size"]

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger("asyncq.batch")

Flush = Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]]
#: a flush that settles the callers' futures itself, possibly after it returned
FlushInto = Callable[[Sequence[T], Sequence["asyncio.Future[R]"]], Awaitable[None]]
#: sends a full batch at once if it can (True: it took the batch and settles its futures)
Early = Callable[[Sequence[T], Sequence["asyncio.Future[R]"]], bool]


class Coalescer(Generic[T, R]):
    """Callers ``submit`` one item each; a single flusher sends whatever has gathered.

    While one batch is on the wire the next one gathers, so a lone caller pays one
    round trip and many concurrent callers share round trips. Order is preserved.
    ``flush`` returns one result or exception per item. Callers still waiting when
    :meth:`aclose` runs get ``closed()``, an error of the owner's choosing.

    With ``into`` instead of ``flush``, the callers' futures are handed over with their
    items and the owner settles them, when it likes (after the next batch went, say):
    one future per caller rather than a future of a future. If ``into`` raises, the
    futures it left unsettled get the error.

    ``early`` (with ``into``) is offered the first full batch each time ``max_batch``
    more callers have gathered before the runner started (a burst of callers in one turn
    of the event loop runs before the runner does, and a batch sent while they run is
    on the wire that much sooner); it may refuse, and the runner sends what it left.
    """

    def __init__(self, flush: Flush[T, R] | None = None, *, into: FlushInto[T, R] | None = None,
                 max_batch: int = 1000,
                 closed: Callable[[], BaseException] = lambda: RuntimeError(
                     "closed before the batch was sent"),
                 early: Early[T, R] | None = None) -> None:
        if (flush is None) == (into is None):
            raise TypeError("Coalescer takes flush or into, one of them")
        if early is not None and into is None:
            raise TypeError("Coalescer takes early with into only")
        self._flush = flush
        self._into = into
        self._early = early
        #: a runner was made and has not started yet: nothing of this Coalescer is on
        #: its way, so an early batch overtakes nothing
        self._unstarted = False
        self._max_batch = max_batch
        self._closed = closed
        #: items waiting to be sent and their futures, side by side (not as pairs: one
        #: object less per waiting caller for the garbage collector to visit)
        self._items: list[T] = []
        self._futures: list[asyncio.Future[R]] = []
        self._runner: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        return await self.future(item)

    def future(self, item: T) -> asyncio.Future[R]:
        """Submit ``item``; its outcome comes in the future returned (awaiting that
        rather than :meth:`submit` saves a coroutine per item on a hot path)."""
        runner = self._runner
        if runner is not None and not runner.done():
            # the batch gathers on the loop its sender runs on (and on Python 3.11
            # get_running_loop is a getpid system call)
            future: asyncio.Future[R] = runner.get_loop().create_future()
            self._items.append(item)
            self._futures.append(future)
            if (self._early is not None and self._unstarted
                    and len(self._futures) % self._max_batch == 0):
                self._hurry()
            return future
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._items.append(item)
        self._futures.append(future)
        # the item waits before the runner starts: an eager task (3.12's
        # eager_task_factory) runs up to its first wait inside create_task
        self._unstarted = True
        self._runner = loop.create_task(self._run())
        return future

    async def submit_many(self, items: Sequence[T]) -> list[R | BaseException]:
        """Submit ``items`` in order and wait for all: one outcome each, an exception
        as a value. Cancelling the caller skips the items not yet sent."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[R]] = [loop.create_future() for _ in items]
        self._items.extend(items)
        self._futures.extend(futures)
        self._start()
        try:
            if futures:
                await asyncio.wait(futures)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return [_outcome(f) for f in futures]

    def _start(self) -> None:
        if self._runner is None or self._runner.done():
            self._unstarted = True
            self._runner = asyncio.get_running_loop().create_task(self._run())

    def post(self, item: T) -> None:
        """Submit without waiting: for clean-up nobody needs to wait for (failures are
        logged at DEBUG, and the next batch goes on)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_log_failure)
        self._items.append(item)
        self._futures.append(future)
        self._start()

    def _hurry(self) -> None:
        """Offer the first full batch to ``early`` (the runner has not started)."""
        assert self._early is not None
        size = self._max_batch
        futures = self._futures[:size]
        if self._any_done(futures):  # a cancelled caller: the runner skips it
            return
        try:
            taken = self._early(self._items[:size], futures)
        except Exception:  # the runner sends the batch as usual
            logger.debug("an early batch failed", exc_info=True)
            return
        if taken:
            del self._items[:size], self._futures[:size]

    @staticmethod
    def _any_done(futures: list[asyncio.Future[R]]) -> bool:
        return any([future.done() for future in futures])

    async def _run(self) -> None:
        size = self._max_batch
        self._unstarted = False
        while self._futures:
            items, futures = self._items[:size], self._futures[:size]
            del self._items[:size], self._futures[:size]
            if self._any_done(futures):  # cancelled callers: skipped
                live = [i for i, future in enumerate(futures) if not future.done()]
                items, futures = [items[i] for i in live], [futures[i] for i in live]
            if futures:
                await self._send(items, futures)

    async def _call(self, items: list[T], futures: list[asyncio.Future[R]]
                    ) -> Sequence[R | BaseException] | None:
        """The flush's results; None with ``into`` (it settles the futures itself)."""
        if self._into is not None:
            await self._into(items, futures)
            return None
        assert self._flush is not None
        return await self._flush(items)

    async def _send(self, items: list[T], futures: list[asyncio.Future[R]]) -> None:
        try:
            results = await self._call(items, futures)
        except asyncio.CancelledError:  # aclose: nobody cancelled the callers themselves
            for fut in futures:
                if not fut.done():
                    fut.set_exception(self._closed())
            raise
        except BaseException as exc:  # every caller of this batch gets the error
            for fut in futures:
                if not fut.done():
                    fut.set_exception(exc)
            return
        _settle(futures, results)

    async def aclose(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None and not runner.done():
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        futures, self._items, self._futures = self._futures, [], []
        for fut in futures:
            if not fut.done():
                fut.set_exception(self._closed())


def _settle(futures: list[asyncio.Future[R]],
            results: Sequence[R | BaseException] | None) -> None:
    """Each caller's result or exception (None: the flush settled them itself)."""
    if results is None:
        return
    for fut, result in zip(futures, results, strict=True):
        if fut.done():
            continue
        if isinstance(result, BaseException):
            fut.set_exception(result)
        else:
            fut.set_result(result)


def raise_first(outcomes: Iterable[object]) -> None:
    """Raise the first exception among a batch's outcomes, if there is one."""
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


def runs_by_size(sizes: Sequence[int], limit: int, count: int | None = None) -> list[slice]:
    """Positions ``0..len(sizes)-1`` cut, in order, into runs whose sizes add up to at
    most ``limit`` (an item larger than ``limit`` is a run of its own), of at most
    ``count`` items each when it is given."""
    runs: list[slice] = []
    start, total = 0, 0
    most = len(sizes) if count is None else count
    for index, size in enumerate(sizes):
        if index > start and (total + size > limit or index - start == most):
            runs.append(slice(start, index))
            start, total = index, 0
        total += size
    if start < len(sizes):
        runs.append(slice(start, len(sizes)))
    return runs


def _outcome(future: asyncio.Future[Any]) -> Any:
    """A done future's result, or its exception (a cancelled one: CancelledError)."""
    if future.cancelled():
        return asyncio.CancelledError()
    return future.exception() or future.result()


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.debug("a posted batch item failed: %r", future.exception())
