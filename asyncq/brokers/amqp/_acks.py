"""Settling deliveries on a consumer channel: many acks in one ``basic.ack``.

Every delivery a consumer channel brings is entered in that channel's :class:`Book`
when it arrives, before anything else happens to it (a delayed or redelivered message
that is republished first stays there, unsettled, until its copy is confirmed). When a
batch is acked, the longest run of settled deliveries at the front of the book — every
delivery tag up to ``T`` that is still outstanding, each of them settled — goes as one
``basic.ack(T, multiple=True)``; the settled ones behind an unsettled delivery are
acked one by one. A multiple-ack therefore never covers a delivery whose outcome is not
recorded. A requeue is a ``basic.nack`` of one tag.

The frames of one call go in one write, and the writes of one channel are made in the
order the book was changed (a lock per book): a nack taken out of the book is on the
wire before any multiple-ack computed after it, so no ack can cover it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from aio_pika.exceptions import ChannelInvalidStateError
from aiormq.abc import ChannelFrame
from pamqp import commands as spec

__all__ = ["Book", "Books", "settle"]

logger = logging.getLogger("asyncq.brokers.amqp")


class Book:
    """The outstanding delivery tags of one aiormq channel, in the order they arrived."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self._open: dict[int, bool] = {}  # tag -> settled, in arrival (= tag) order
        self._lock = asyncio.Lock()
        self._last = 0
        self._in_order = True  # tags came 1, 2, 3...: a multiple-ack covers only ours

    def __len__(self) -> int:
        return len(self._open)

    def arrive(self, tag: int) -> None:
        if tag != self._last + 1:  # never seen on a consumer channel; be safe anyway
            self._in_order = False
        self._last = max(self._last, tag)
        self._open[tag] = False

    def ack_frames(self, tags: Iterable[int]) -> list[spec.Basic.Ack]:
        """Mark ``tags`` settled and take out what can be acked now, as frames.

        A tag no longer in the book was settled before: nothing is sent for it.
        """
        marked = [tag for tag in tags if tag in self._open]
        for tag in marked:
            self._open[tag] = True
        frames = self._front()
        for tag in marked:
            if self._open.pop(tag, False):  # behind an unsettled delivery: on its own
                frames.append(spec.Basic.Ack(delivery_tag=tag))
        return frames

    def _front(self) -> list[spec.Basic.Ack]:
        run: list[int] = []
        for tag, settled in self._open.items():
            if not settled:
                break
            run.append(tag)
        for tag in run:
            del self._open[tag]
        if len(run) > 1 and self._in_order:
            return [spec.Basic.Ack(delivery_tag=run[-1], multiple=True)]
        return [spec.Basic.Ack(delivery_tag=tag) for tag in run]

    def nack_frames(self, tags: Iterable[int]) -> list[spec.Basic.Nack]:
        """Take ``tags`` out to be requeued, as frames (none for one settled before)."""
        return [
            spec.Basic.Nack(delivery_tag=tag, requeue=True)
            for tag in tags
            if self._open.pop(tag, None) is not None
        ]

    async def settle(self, tags: list[int], *, ack: bool) -> bool:
        """Ack or requeue ``tags``; False when the channel is closed (they come back)."""
        channel = self.channel
        async with self._lock:
            if channel.is_closed:
                return False
            frames = self.ack_frames(tags) if ack else self.nack_frames(tags)
            if not frames:
                return True
            try:
                await channel.write_queue.put(ChannelFrame.marshall(channel.number, frames))
            except BaseException:
                if not ack:  # a nack not sent: no later multiple-ack may cover its tag
                    self._in_order = False
                raise
        return True


class Books:
    """A :class:`Book` per live consumer channel (a reconnect brings a new channel)."""

    def __init__(self) -> None:
        self._books: dict[int, Book] = {}

    def of(self, channel: Any) -> Book:
        book = self._books.get(id(channel))
        if book is None or book.channel is not channel:
            for key, old in list(self._books.items()):  # channels that closed are done
                if old.channel.is_closed:
                    del self._books[key]
            book = self._books[id(channel)] = Book(channel)
        return book


async def settle(
    books: Books, messages: Sequence[Any], *, ack: bool, timeout: float = 5.0
) -> int:
    """Ack (or requeue) ``messages`` without ever raising: each channel's in one write,
    its acks as multiple-acks where they may be. Returns how many could not be settled
    (their channel is gone: RabbitMQ redelivers them)."""
    by_book: dict[int, tuple[Book, list[int]]] = {}
    failed = 0
    for message in messages:
        try:
            book = books.of(message.channel)
        except ChannelInvalidStateError:
            failed += 1
            continue
        by_book.setdefault(id(book), (book, []))[1].append(message.delivery_tag or 0)
    for book, tags in by_book.values():
        if not await _settle_tags(book, tags, ack=ack, timeout=timeout):
            failed += len(tags)
    return failed


async def _settle_tags(book: Book, tags: list[int], *, ack: bool, timeout: float) -> bool:
    try:
        async with asyncio.timeout(timeout):
            return await book.settle(tags, ack=ack)
    except (ChannelInvalidStateError, TimeoutError, ConnectionError, OSError):
        return False
    except Exception as exc:
        logger.warning("settling messages failed: %s: %s", type(exc).__name__, exc)
        return False
