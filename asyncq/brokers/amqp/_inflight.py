"""What a publisher has written that awaits RabbitMQ's confirms, kept within bounds.

A written batch's frames stay in this process until RabbitMQ reads them: while its
flow control holds the connection back, in the socket's write buffer. So the written
batches awaiting confirms are bounded twice, by count and by the bytes of their
messages; a batch larger than the byte bound goes alone.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Final, Protocol

__all__ = ["FRAME_BYTES", "InFlight", "batch_bytes"]

#: bytes a message's frames add to its body, about (method and header frames)
FRAME_BYTES: Final = 128


class _HasBody(Protocol):
    body: bytes


def batch_bytes(messages: Sequence[_HasBody]) -> int:
    """The bytes a batch of messages takes on the wire, about."""
    return sum(len(message.body) for message in messages) + FRAME_BYTES * len(messages)


class InFlight:
    """At most ``batches`` written batches and ``limit`` bytes of them awaiting confirms
    (one batch whatever its size). Batches wait their turn in order: a large one that
    needs the window empty is not overtaken by smaller ones for ever. :meth:`try_acquire`
    may count room for more batches (a burst's early writes), never for more bytes."""

    def __init__(self, batches: int, limit: int) -> None:
        self._batches = batches
        self._limit = limit
        self.count = 0
        self.bytes = 0
        self._queue: deque[tuple[int, asyncio.Future[None]]] = deque()

    def fits(self, size: int, batches: int | None = None) -> bool:
        most = self._batches if batches is None else batches
        return self.count == 0 or (self.count < most and self.bytes + size <= self._limit)

    async def acquire(self, size: int) -> None:
        """Wait until a batch of ``size`` bytes fits, after those waiting before it, and
        count it in."""
        if not self._queue and self.fits(size):
            self._count_in(size)
            return
        entry = (size, asyncio.get_running_loop().create_future())
        self._queue.append(entry)
        try:
            await entry[1]
        except asyncio.CancelledError:
            if entry[1].done() and not entry[1].cancelled():  # counted in, then cancelled
                self.release(size)
            elif entry in self._queue:
                self._queue.remove(entry)
                self._wake()  # the next one may fit now
            raise

    def try_acquire(self, size: int, batches: int | None = None) -> bool:
        """:meth:`acquire` when it would not wait (nobody waits and the batch fits), room
        counted for ``batches`` batches rather than the window's own count if given."""
        if self._queue or not self.fits(size, batches):
            return False
        self._count_in(size)
        return True

    def release(self, size: int) -> None:
        """A batch of ``size`` bytes is settled: the next ones in line go if they fit."""
        self.count -= 1
        self.bytes -= size
        self._wake()

    def _count_in(self, size: int) -> None:
        self.count += 1
        self.bytes += size

    def _wake(self) -> None:
        queue = self._queue
        while queue and self.fits(queue[0][0]):
            size, waiter = queue.popleft()
            if not waiter.done():  # (one cancelled meanwhile takes no room)
                self._count_in(size)
                waiter.set_result(None)
