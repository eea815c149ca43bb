"""Which acks a consumer channel's book sends: a multiple-ack only over settled tags."""

from __future__ import annotations

from pamqp import commands as spec

from asyncq.brokers.amqp._acks import Book


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


def test_tags_out_of_order_turn_multiple_acks_off() -> None:
    book = _book(range(1, 3))
    book.arrive(5)  # 3 and 4 were never seen: a multiple-ack of 5 could cover them
    assert _acks(book.ack_frames([1, 2, 5])) == [(1, False), (2, False), (5, False)]
