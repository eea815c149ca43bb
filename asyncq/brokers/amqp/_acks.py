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

__all__ = ["Book", "Books", "Entry", "entries", "settle"]

logger = logging.getLogger("asyncq.brokers.amqp")


class Book:
    """The outstanding delivery tags of one aiormq channel, in the order they arrived.

    Tags arrive in order (1, 2, 3...) but for the first deliveries of a consumer, which
    aio-pika hands over in tasks of their own while asyncq's frame reader already hands
    later ones over: the book knows up to which tag all have arrived (``_upto``) and
    which open tags arrived after a higher one (``_late``). A multiple-ack of ``T`` is
    sent only when every tag up to ``T`` has arrived and none of them is open unsettled.
    """

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self._open: dict[int, bool] = {}  # tag -> settled, in arrival order
        self._lock = asyncio.Lock()
        self._upto = 0  # every tag up to this one has arrived
        self._last = 0  # the highest tag arrived
        self._ahead: set[int] = set()  # arrived, above _upto + 1
        self._late: set[int] = set()  # open, arrived after a higher tag
        self._trusted = True  # False once a nack may not have gone out: no multiple-acks

    def __len__(self) -> int:
        return len(self._open)

    def arrive(self, tag: int) -> None:
        self._open[tag] = False
        if tag == self._last + 1 and self._upto == self._last:  # the usual case
            self._upto = self._last = tag
            return
        if tag < self._last:
            self._late.add(tag)
        self._last = max(self._last, tag)
        if tag != self._upto + 1:
            if tag > self._upto:
                self._ahead.add(tag)
            return
        self._upto = tag
        while self._upto + 1 in self._ahead:
            self._upto += 1
            self._ahead.remove(self._upto)

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
                self._late.discard(tag)
                frames.append(spec.Basic.Ack(delivery_tag=tag))
        return frames

    def _front(self) -> list[spec.Basic.Ack]:
        run: list[int] = []
        for tag, settled in self._open.items():
            if not settled:
                break
            run.append(tag)
        late = self._late
        for tag in run:
            del self._open[tag]
            if late:
                late.discard(tag)
        if len(run) < 2 or not self._trusted:
            return [spec.Basic.Ack(delivery_tag=tag) for tag in run]
        # a multiple-ack covers tags that all came, and not an open late one
        limit = min(self._upto, min(late) - 1) if late else self._upto
        under = [tag for tag in run if tag <= limit]
        if len(under) < 2:
            return [spec.Basic.Ack(delivery_tag=tag) for tag in run]
        return [spec.Basic.Ack(delivery_tag=max(under), multiple=True),
                *(spec.Basic.Ack(delivery_tag=tag) for tag in run if tag > limit)]

    def nack_frames(self, tags: Iterable[int]) -> list[spec.Basic.Nack]:
        """Take ``tags`` out to be requeued, as frames (none for one settled before)."""
        frames = [spec.Basic.Nack(delivery_tag=tag, requeue=True)
                  for tag in tags if self._open.pop(tag, None) is not None]
        if self._late:
            self._late.difference_update(frame.delivery_tag for frame in frames)
        return frames

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
                    self._trusted = False
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

    def enter(self, message: Any) -> Book | None:
        """Enter the tag of ``message`` (just delivered) in its channel's book: that
        book, or None when the channel has closed (the delivery is stale already)."""
        try:
            book = self.of(message.channel)
        except ChannelInvalidStateError:
            return None
        book.arrive(message.delivery_tag or 0)
        return book


#: a delivery to settle: the book its tag was entered in at arrival (None: its channel
#: was closed by then) and its delivery tag
Entry = tuple[Book | None, int]


def entries(books: Books, messages: Sequence[Any]) -> list[Entry]:
    """The entries of ``messages``, their books looked up by channel."""
    out: list[Entry] = []
    for message in messages:
        try:
            book: Book | None = books.of(message.channel)
        except ChannelInvalidStateError:
            book = None
        out.append((book, message.delivery_tag or 0))
    return out


async def settle(settling: Sequence[Entry], *, ack: bool, timeout: float = 5.0) -> int:
    """Ack (or requeue) the deliveries of ``settling`` without ever raising: each
    channel's in one write, its acks as multiple-acks where they may be. Returns how
    many could not be settled (their channel is gone: RabbitMQ redelivers them)."""
    by_book: dict[int, tuple[Book, list[int]]] = {}
    failed = 0
    for book, tag in settling:
        if book is None:
            failed += 1
            continue
        found = by_book.get(id(book))
        if found is None:
            found = by_book[id(book)] = (book, [])
        found[1].append(tag)
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
