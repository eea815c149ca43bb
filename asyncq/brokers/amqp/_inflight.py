"""What a publisher has written that awaits RabbitMQ's confirms, kept within bounds.

A written batch's frames stay in this process until RabbitMQ reads them: while its
flow control holds the connection back, in the socket's write buffer. So the written
batches awaiting confirms are bounded twice, by count and by the bytes of their
messages; a batch larger than the byte bound goes alone.
"""

from __future__ import annotations

import asyncio
from typing import Final

__all__ = ["FRAME_BYTES", "InFlight", "batch_bytes"]

#: bytes a message's frames add to its body, about (method and header frames)
FRAME_BYTES: Final = 128


def batch_bytes(bodies: list[bytes]) -> int:
    """The bytes a batch of message bodies takes on the wire, about."""
    return sum(map(len, bodies)) + FRAME_BYTES * len(bodies)


class InFlight:
    """At most ``batches`` written batches and ``limit`` bytes of them awaiting confirms
    (one batch whatever its size)."""

    def __init__(self, batches: int, limit: int) -> None:
        self._batches = batches
        self._limit = limit
        self.count = 0
        self.bytes = 0
        self._waiters: list[asyncio.Future[None]] = []

    def fits(self, size: int) -> bool:
        return self.count == 0 or (self.count < self._batches and self.bytes + size <= self._limit)

    async def acquire(self, size: int) -> None:
        """Wait until a batch of ``size`` bytes fits, and count it in."""
        while not self.fits(size):
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:  # (cancelled before a release woke it)
                    self._waiters.remove(waiter)
        self.count += 1
        self.bytes += size

    def release(self, size: int) -> None:
        """A batch of ``size`` bytes is settled: whoever waits looks again."""
        self.count -= 1
        self.bytes -= size
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
