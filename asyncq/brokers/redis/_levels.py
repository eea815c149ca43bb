"""Priorities on Redis: one stream per priority level in use, read highest first.

Level 0 (no ``priority``, the default) is the queue's plain stream
``asyncq:{queue}:stream``, so a queue nobody sends priorities to is read exactly as
before. A message with ``priority=1..9`` goes to ``asyncq:{queue}:p<level>`` (delayed:
``asyncq:{queue}:p<level>:delayed``), and the level is added to the set
``asyncq:{queue}:levels``. Consumers read that set with their periodic promotion
(every 0.25 s); once a queue has levels, each fetch reads its streams highest level
first in one script (``read_levels.lua``), so a higher level is always taken before a
lower one (strict priority: under a constant load of high-priority messages, lower
ones wait; no aging), and FIFO holds within a level. Deliveries of level streams carry
their stream, so acks, hand-backs, dead letters and lease renewals reach the right one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from asyncq.brokers import Delivery, Settlement
from asyncq.brokers.redis._keys import LEVELS, level_key, stream_key

__all__ = ["LevelDelivery", "Levels", "by_stream", "delivery_for", "ids_by_stream", "level_of",
           "stream_of"]


class LevelDelivery(Delivery):
    """A delivery from a priority stream (level 1-9), which it names."""

    __slots__ = ("stream",)

    def __init__(self, body: bytes, queue: str, delivery_count: int, tag: Any,
                 stream: str) -> None:
        super().__init__(body, queue, delivery_count, tag)
        self.stream = stream


def stream_of(delivery: Delivery) -> str:
    """The stream a delivery came from."""
    if type(delivery) is LevelDelivery:
        return delivery.stream
    return stream_key(delivery.queue)


def delivery_for(stream: str, queue: str, body: bytes, count: int, tag: Any) -> Delivery:
    if stream == stream_key(queue):
        return Delivery(body, queue, count, tag)
    return LevelDelivery(body, queue, count, tag, stream)


def level_of(priority: int | None) -> int:
    """The stream level of a message's priority (0 when it has none)."""
    if not priority:
        return 0
    if priority not in LEVELS:
        raise ValueError(f"priority must be 0 to 9, not {priority!r}")
    return priority


class Levels:
    """The priority levels in use on each consumed queue, as last read from the server."""

    def __init__(self) -> None:
        self._by_queue: dict[str, list[int]] = {}

    def known(self, queue: str) -> list[int]:
        return self._by_queue.get(queue, [])

    def update(self, queue: str, members: Any) -> list[str]:
        """Record the levels the server lists; return the streams new to us."""
        found: set[int] = set()
        for member in members or ():
            try:
                level = int(member)
            except ValueError:
                continue
            if level in LEVELS and level > 0:
                found.add(level)
        levels = sorted(found, reverse=True)
        old = set(self._by_queue.get(queue, []))
        if levels:
            self._by_queue[queue] = levels
        return [level_key(queue, lv) for lv in levels if lv not in old]

    def forget(self, queue: str) -> None:
        """No longer read ``queue`` (its levels are found again if it is read again)."""
        self._by_queue.pop(queue, None)

    def streams(self, queue: str) -> list[str]:
        """The queue's streams, highest level first, the plain stream last."""
        return [*(level_key(queue, lv) for lv in self.known(queue)), stream_key(queue)]


def by_stream(items: Sequence[Settlement]) -> dict[str, list[Settlement]]:
    """``items`` grouped by the stream of their delivery, in order within each: grouped
    by queue first (no stream name made per item), a priority level's by its stream."""
    by_queue: dict[str, list[Settlement]] = {}
    by_level: dict[str, list[Settlement]] = {}
    for item in items:
        delivery = item.delivery
        if type(delivery) is LevelDelivery:
            by_level.setdefault(delivery.stream, []).append(item)
        else:
            by_queue.setdefault(delivery.queue, []).append(item)
    by_stream = {stream_key(queue): group for queue, group in by_queue.items()}
    by_stream.update(by_level)  # (never a queue's plain stream: see delivery_for)
    return by_stream


def ids_by_stream(deliveries: Sequence[Delivery]) -> dict[str, list[Any]]:
    by_stream: dict[str, list[Any]] = {}
    for delivery in deliveries:
        by_stream.setdefault(stream_of(delivery), []).append(delivery.tag)
    return by_stream
