"""In-process broker (``memory://``): the product's fake, for users' own tests.

Messages still travel as encoded bytes, so serialization bugs show up in tests.
Brokers created with the same URL in one process share their queues, also across
event loops and threads (a web app under Starlette's TestClient runs on a loop of its
own): the queues are guarded by a lock and a consumer on another loop is woken through
that loop's ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from asyncq._loops import call_in_loop
from asyncq.brokers import (
    WORKER_GROUP,
    Broker,
    Consumer,
    DeadItem,
    DeadLetter,
    Delivery,
    Outgoing,
    Settlement,
)

__all__ = ["MemoryBroker"]


@dataclass
class _Hub:
    queues: dict[str, deque[tuple[bytes, int]]] = field(default_factory=dict)
    delayed: list[tuple[float, int, str, bytes]] = field(default_factory=list)
    dead: dict[str, list[DeadLetter]] = field(default_factory=dict)
    #: consumers waiting for a change, with the loop each one waits on
    watchers: dict[asyncio.Event, asyncio.AbstractEventLoop] = field(default_factory=dict)
    seq: itertools.count[int] = field(default_factory=itertools.count)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def queue(self, name: str) -> deque[tuple[bytes, int]]:
        return self.queues.setdefault(name, deque())

    def delayed_count(self, queue: str) -> int:
        return sum(1 for entry in self.delayed if entry[2] == queue)

    def wake(self) -> None:
        for event, loop in list(self.watchers.items()):
            call_in_loop(loop, event.set)

    def promote_due(self) -> float | None:
        """Move due delayed messages to their queues; return seconds to the next one."""
        now = time.time()
        with self.lock:
            while self.delayed and self.delayed[0][0] <= now:
                _, _, queue, body = heapq.heappop(self.delayed)
                self.queue(queue).append((body, 0))
            return self.delayed[0][0] - now if self.delayed else None


_HUBS: dict[str, _Hub] = {}


class MemoryBroker(Broker):
    """Queues in this process's memory; nothing survives the process."""

    loop_bound = False


    def __init__(self, url: str = "memory://") -> None:
        super().__init__(url)
        self._hub = _HUBS.setdefault(url, _Hub())

    async def publish(self, message: Outgoing) -> None:
        if message.delay() > 0:
            assert message.eta is not None
            entry = (message.eta, next(self._hub.seq), message.queue, message.body)
            with self._hub.lock:
                heapq.heappush(self._hub.delayed, entry)
        else:
            self._hub.queue(message.queue).append((message.body, 0))
        self._hub.wake()

    def consumer(
        self, queues: Sequence[str], *, prefetch: int, lease: float, group: str = WORKER_GROUP
    ) -> Consumer:
        return _MemoryConsumer(self._hub, list(queues))

    async def queue_size(self, queue: str) -> int:
        return len(self._hub.queue(queue))

    async def delete_queue(self, queue: str) -> None:
        self._hub.queues.pop(queue, None)
        self._hub.dead.pop(queue, None)
        self._hub.delayed = [e for e in self._hub.delayed if e[2] != queue]
        heapq.heapify(self._hub.delayed)

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        return list(self._hub.dead.get(queue, [])[:limit])

    async def purge_dead(self, queue: str) -> int:
        return len(self._hub.dead.pop(queue, []))

    async def requeue_dead(self, queue: str, refs: Sequence[str]) -> int:
        wanted = set(refs)
        kept: list[DeadLetter] = []
        moved = 0
        for letter in self._hub.dead.get(queue, []):
            if letter.ref in wanted:
                self._hub.queue(queue).append((letter.body, 0))
                moved += 1
            else:
                kept.append(letter)
        self._hub.dead[queue] = kept
        self._hub.wake()
        return moved

    async def scheduled_size(self, queue: str) -> int:
        return self._hub.delayed_count(queue)

    def pending(self, queue: str) -> int:
        """Messages waiting plus delayed ones for ``queue`` (test helper)."""
        return len(self._hub.queue(queue)) + self._hub.delayed_count(queue)


class _MemoryConsumer(Consumer):
    def __init__(self, hub: _Hub, queues: list[str]) -> None:
        self._hub = hub
        self._queues = queues
        self._held: dict[int, Delivery] = {}
        self._woken = False
        self._changed: asyncio.Event | None = None  # what fetch's wait waits for

    async def fetch(self, limit: int, timeout: float) -> Sequence[Delivery]:
        deadline = time.monotonic() + timeout
        while True:
            out = self._take(limit)
            remaining = deadline - time.monotonic()
            if out or remaining <= 0 or self._woken:
                self._woken = False
                return out
            await self._wait_change(remaining)

    def wake(self) -> None:
        self._woken = True
        if self._changed is not None:
            self._changed.set()

    async def _wait_change(self, remaining: float) -> None:
        self._changed = changed = asyncio.Event()
        self._hub.watchers[changed] = asyncio.get_running_loop()
        next_due = self._hub.promote_due()
        wait = remaining if next_due is None else min(remaining, next_due)
        try:
            async with asyncio.timeout(max(wait, 0.001)):
                await changed.wait()
        except TimeoutError:
            pass
        finally:
            self._hub.watchers.pop(changed, None)
            self._changed = None

    async def cancel_queue(self, queue: str) -> None:
        if queue in self._queues:
            self._queues.remove(queue)

    async def add_queue(self, queue: str) -> None:
        if queue not in self._queues:
            self._queues.append(queue)

    def _take(self, limit: int) -> list[Delivery]:
        self._hub.promote_due()
        out: list[Delivery] = []
        with self._hub.lock:
            for name in self._queues:
                queue = self._hub.queue(name)
                while queue and len(out) < limit:
                    body, count = queue.popleft()
                    out.append(Delivery(body, name, count + 1))
        for delivery in out:
            self._held[id(delivery)] = delivery
        return out

    async def ack(self, items: Sequence[Settlement]) -> None:
        for item in items:
            self._held.pop(id(item.delivery), None)

    async def requeue(self, deliveries: Sequence[Delivery], *, counted: bool = False) -> None:
        self._return(deliveries, counted=counted)

    def _return(self, deliveries: Sequence[Delivery], *, counted: bool) -> None:
        for delivery in reversed(deliveries):  # back to the front, in their order
            if self._held.pop(id(delivery), None) is not None:
                earlier = delivery.delivery_count - (0 if counted else 1)
                self._hub.queue(delivery.queue).appendleft((delivery.body, earlier))
        self._hub.wake()

    async def dead_letter(self, items: Sequence[DeadItem]) -> None:
        for item in items:
            delivery = item.delivery
            self._held.pop(id(delivery), None)
            letter = DeadLetter(
                ref=str(next(self._hub.seq)), queue=delivery.queue, body=delivery.body,
                reason=item.reason, task_id=item.task_id, task=item.task,
                deliveries=delivery.delivery_count, dead_at=time.time(),
            )
            self._hub.dead.setdefault(delivery.queue, []).append(letter)

    async def close(self) -> None:
        """Hand back whatever is still held, keeping the counts (as the others do)."""
        self._return(list(self._held.values()), counted=False)
