"""Reply-channel records that came before anyone waited for them.

A handle that ``enqueue`` made while this process's reply channel was already subscribed
(confirmed) need not read its result key when awaited: its task was published after the
subscription, so its record comes over the channel, either to the waiter or, when it
comes first, here (:class:`EarlyResults`). Kept in two generations: when the young one
is full (count or bytes) or old (``EARLY_AGE`` seconds) it becomes the old one and the
old one is dropped; a drop that loses records calls ``on_loss``, after which handles
made before must read their key again (see :mod:`asyncq.results._listener`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

__all__ = ["EARLY_AGE", "EARLY_BYTES", "EARLY_COUNT", "EarlyResults"]

#: Records (and their bytes) kept in the young generation before it turns old.
EARLY_COUNT: Final = 10_000
EARLY_BYTES: Final = 16 * 1024 * 1024
#: Seconds a generation stays young at most.
EARLY_AGE: Final = 10.0


class EarlyResults:
    """key -> record of the reply-channel messages nobody waited for (yet)."""

    def __init__(self, on_loss: Callable[[], None]) -> None:
        self._on_loss = on_loss
        self._young: dict[bytes, bytes] = {}
        self._old: dict[bytes, bytes] = {}
        self._bytes = 0
        self._since = time.monotonic()

    def __len__(self) -> int:
        return len(self._young) + len(self._old)

    def keep(self, key: bytes, raw: bytes) -> None:
        self._young[key] = raw
        self._bytes += len(key) + len(raw)  # (a key is whatever was published)
        if len(self._young) >= EARLY_COUNT or self._bytes >= EARLY_BYTES:
            self.rotate()

    def take(self, key: bytes) -> bytes | None:
        """The record kept for ``key`` (removed), or None."""
        raw = self._young.pop(key, None)
        return self._old.pop(key, None) if raw is None else raw

    def peek(self, key: bytes) -> bytes | None:
        """The record kept for ``key`` (left in place), or None."""
        raw = self._young.get(key)
        return self._old.get(key) if raw is None else raw

    def age(self) -> None:
        """Rotate if the young generation is ``EARLY_AGE`` old (called now and then)."""
        if (self._young or self._old) and time.monotonic() - self._since > EARLY_AGE:
            self.rotate()

    def rotate(self) -> None:
        lost = bool(self._old)
        self._old, self._young, self._bytes = self._young, {}, 0
        self._since = time.monotonic()
        if lost:
            self._on_loss()

    def clear(self) -> None:
        """Forget everything (the channel is given up: nobody relies on it any more)."""
        self._young, self._old, self._bytes = {}, {}, 0
