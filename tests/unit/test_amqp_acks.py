"""Which acks a consumer channel's book sends: a multiple-ack only over settled tags."""

from __future__ import annotations

import asyncio
import random

import pamqp.frame
import pytest
from aiormq.abc import ChannelFrame
from pamqp import commands as spec

from asyncq.brokers.amqp._acks import Book, Books, Entry, entries, settle


def _book(tags: range) -> Book:
    book = Book(channel=None)
    for tag in tags:
        book.arrive(tag)
    return book


def _acks(frames: list[spec.Basic.Ack]) -> list[tuple[int, bool]]:
    return [(frame.delivery_tag, frame.multiple) for frame in frames]


def test_a_settled_front_run_is_one_multiple_ack() -> None:
    book = _book(range(1, 6))
    assert _acks(book.ack_frames([3, 1, 2])) == [(3, True)]
    assert len(book) == 2


def test_tags_behind_an_unsettled_one_are_acked_alone_and_never_covered() -> None:
    book = _book(range(1, 6))
    assert _acks(book.ack_frames([2, 4])) == [(2, False), (4, False)]
    # 1 settles: 1 alone (2 is gone), 3 still holds 5 back
    assert _acks(book.ack_frames([1])) == [(1, False)]
    assert _acks(book.ack_frames([5])) == [(5, False)]
    assert _acks(book.ack_frames([3])) == [(3, False)]
    assert len(book) == 0


def test_a_nacked_tag_leaves_the_book_and_settled_tags_are_not_sent_again() -> None:
    book = _book(range(1, 5))
    nacks = book.nack_frames([2, 2])
    assert [(f.delivery_tag, f.requeue) for f in nacks] == [(2, True)]
    assert _acks(book.ack_frames([1, 3, 4])) == [(4, True)]
    assert book.ack_frames([1, 3]) == []  # settled before: nothing on the wire
    assert book.nack_frames([4]) == []


def test_a_multiple_ack_never_reaches_past_a_tag_not_seen() -> None:
    book = _book(range(1, 3))
    book.arrive(5)  # 3 and 4 were never seen: a multiple-ack of 5 could cover them
    assert _acks(book.ack_frames([1, 2, 5])) == [(2, True), (5, False)]


def test_tags_that_came_out_of_order_are_acked_together_once_all_have_come() -> None:
    """The first deliveries of a consumer can come after later ones (aio-pika hands
    them over in tasks): a multiple-ack waits until every tag up to it has come, and
    no late one is open below it; then multiple-acks resume."""
    book = _book(range(1, 3))
    for tag in (5, 6, 3):  # 4 is on its way; 3 came after 5 and 6
        book.arrive(tag)
    assert _acks(book.ack_frames([1, 2, 5, 6])) == [(2, True), (5, False), (6, False)]
    book.arrive(4)
    assert _acks(book.ack_frames([4])) == [(4, False)]  # 3 is still open
    for tag in range(7, 10):
        book.arrive(tag)
    assert _acks(book.ack_frames([3, 7, 8])) == [(8, True)]  # 3 is no longer late
    assert len(book) == 1


@pytest.mark.parametrize("seed", range(300))
def test_no_ack_ever_covers_a_tag_not_settled(seed: int) -> None:
    """RabbitMQ's view: tags 1..n delivered, each acked once, by itself or under a
    multiple-ack; a tag covered must be settled, whatever order the tags come and settle
    in, nacks included (a nack takes its tag out: no later ack may cover it)."""
    rng = random.Random(seed)
    n = 60
    coming = list(range(1, n + 1))
    for _ in range(rng.randrange(0, 8)):  # a few swaps: out-of-order arrivals
        i, j = rng.randrange(n), rng.randrange(n)
        coming[i], coming[j] = coming[j], coming[i]
    book, arrived, settled, outstanding = Book(channel=None), [], set(), set(range(1, n + 1))
    while outstanding:
        if coming and (not arrived or rng.random() < 0.5):
            tag = coming.pop(0)
            book.arrive(tag)
            arrived.append(tag)
            continue
        picked = rng.sample(arrived, min(len(arrived), rng.randrange(1, 6)))
        if rng.random() < 0.1:
            for frame in book.nack_frames(picked):
                outstanding.remove(frame.delivery_tag)
            settled.update(picked)
            continue
        settled.update(picked)
        for frame in book.ack_frames(picked):
            covered = ({t for t in outstanding if t <= frame.delivery_tag}
                       if frame.multiple else {frame.delivery_tag})
            assert covered <= settled, (frame, covered - settled)
            assert frame.delivery_tag in outstanding
            outstanding -= covered
    assert len(book) == 0


class _Channel:
    """What a book uses of an aiormq channel: its number, state and write queue."""

    def __init__(self, number: int, *, closed: bool = False) -> None:
        self.number = number
        self.is_closed = closed
        self.write_queue: asyncio.Queue[ChannelFrame] = asyncio.Queue()


def _sent(channel: _Channel) -> list[tuple[int, bool]]:
    out: list[tuple[int, bool]] = []
    while not channel.write_queue.empty():
        payload = channel.write_queue.get_nowait().payload
        at = 0
        while at < len(payload):
            used, number, frame = pamqp.frame.unmarshal(payload[at:])
            assert number == channel.number
            out.append((frame.delivery_tag, frame.multiple))
            at += used
    return out


async def test_settle_acks_each_book_in_one_write_and_counts_what_it_cannot() -> None:
    """Entries of two channels, one closed since, and one whose channel had closed on
    arrival (no book): the open channel gets one write, a multiple-ack only up to its
    first unsettled tag; the others count as not settled (RabbitMQ redelivers them)."""
    live, gone = _Channel(1), _Channel(2)
    books = Books()
    for channel in (live, gone):
        for tag in range(1, 6):
            books.of(channel).arrive(tag)
    gone.is_closed = True
    settling: list[Entry] = [(books.of(live), tag) for tag in (2, 1, 5, 4)]
    settling += [(books.of(gone), 1), (None, 9)]
    assert await settle(settling, ack=True) == 2
    assert _sent(live) == [(2, True), (5, False), (4, False)]  # 3 is never covered
    assert _sent(gone) == []


async def test_entries_find_each_message_its_channels_book() -> None:
    channel = _Channel(3)
    books = Books()
    books.of(channel).arrive(1)

    class Message:  # the two fields settling reads
        def __init__(self, tag: int) -> None:
            self.channel, self.delivery_tag = channel, tag

    [(book, tag)] = entries(books, [Message(1)])
    assert (book, tag) == (books.of(channel), 1)
    assert await settle([(book, tag)], ack=False) == 0
    frame = pamqp.frame.unmarshal(channel.write_queue.get_nowait().payload)[2]
    assert (type(frame), frame.delivery_tag, frame.requeue) == (spec.Basic.Nack, 1, True)
