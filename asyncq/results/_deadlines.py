"""Timeouts of result waits: one timer per 10 ms of deadlines, not one per wait.

``asyncio.timeout`` schedules a timer for each wait and cancels it when the wait ends.
With a thousand waits in flight (a web app awaiting the tasks it sends: benchmark W6)
the event loop's timer heap churns, and that was a third of the waiting process's CPU.
Here the waits whose deadlines fall in the same 10 ms (``GRAIN``) share one timer, which
is cancelled when its last wait ends. A wait times out up to ``GRAIN`` after its
deadline, never before. Cancellation works as with ``asyncio.timeout``: the task is
cancelled, and the CancelledError that this caused (not one from anyone else) becomes a
TimeoutError.
"""

from __future__ import annotations

import asyncio
import math
import types
from collections.abc import Awaitable, Generator
from typing import Any, Final, TypeVar

__all__ = ["GRAIN", "Deadlines", "awaiting"]

T = TypeVar("T")

#: Seconds of deadlines that share a timer.
GRAIN: Final = 0.01

_Slot = tuple[set["asyncio.Task[object]"], asyncio.TimerHandle]


class Deadlines:
    """Shared timers for the waits of one event loop."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: dict[int, _Slot] = {}
        #: tasks cancelled by a timer, until their wait sees it
        self._expired: set[asyncio.Task[object]] = set()

    async def within(self, awaitable: Awaitable[T], delay: float) -> T:
        """``await awaitable``, raising TimeoutError once ``delay`` seconds passed."""
        return await awaiting(self.waiting(awaitable, delay, asyncio.get_running_loop()))

    def waiting(self, awaitable: Awaitable[T], delay: float,
                loop: asyncio.AbstractEventLoop) -> Generator[Any, None, T]:
        """:meth:`within` as the steps of a generator, for ``yield from`` in the task that
        waits (no coroutine of its own); ``loop`` is the running loop."""
        if loop is not self._loop:  # timers belong to a loop: none of another one's
            self._loop, self._slots, self._expired = loop, {}, set()
        task: asyncio.Task[object] | None = asyncio.current_task(loop)
        assert task is not None
        cancelling = task.cancelling()
        when = (loop.time() + delay) / GRAIN
        if not math.isfinite(when):  # timeout=inf (or too far to schedule): no timer
            return (yield from awaitable.__await__())
        number = math.ceil(when)
        slot = self._slots.get(number)
        if slot is None:
            slot = self._slots[number] = (set(), loop.call_at(number * GRAIN, self._fire, number))
        slot[0].add(task)
        try:
            return (yield from awaitable.__await__())
        except asyncio.CancelledError:
            if task in self._expired:
                self._expired.discard(task)
                if task.uncancel() <= cancelling:
                    raise TimeoutError from None
            raise
        finally:
            self._leave(number, slot, task)

    def _leave(self, number: int, slot: _Slot, task: asyncio.Task[object]) -> None:
        waiting, timer = slot
        waiting.discard(task)
        if not waiting and self._slots.get(number) is slot:
            del self._slots[number]
            timer.cancel()
        if task in self._expired:  # it ended on its own just as its time was up
            self._expired.discard(task)
            task.uncancel()

    def _fire(self, number: int) -> None:
        slot = self._slots.pop(number, None)
        for task in slot[0] if slot else ():
            self._expired.add(task)
            task.cancel()


@types.coroutine
def awaiting(steps: Generator[Any, None, T]) -> Generator[Any, None, T]:
    """A plain generator's steps as something ``await`` takes."""
    return (yield from steps)
