"""The reply channel's table of early records stays bounded whatever is published."""

from __future__ import annotations

from asyncq.results._early import EARLY_BYTES, EarlyResults


def test_long_keys_count_towards_the_bytes_bound() -> None:
    losses: list[int] = []
    early = EarlyResults(lambda: losses.append(1))
    key_size = 1024 * 1024
    for i in range(3 * EARLY_BYTES // key_size):  # a publisher sending huge "keys"
        early.keep(str(i).encode().ljust(key_size, b"k"), b"")
    assert len(early) <= 2 * EARLY_BYTES // key_size + 2  # was: every one of them
    assert losses


def test_peek_leaves_the_record_for_take() -> None:
    early = EarlyResults(lambda: None)
    early.keep(b"k", b"v")
    assert early.peek(b"k") == b"v"
    assert early.take(b"k") == b"v"
    assert early.take(b"k") is None
