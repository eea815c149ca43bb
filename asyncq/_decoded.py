"""How much memory a decoded message takes, bounded (decode amplification).

msgpack is compact: one byte is an empty array, which Python holds as a 56-byte list
plus an 8-byte slot in its parent, so a message of empty containers or one-key maps
decodes to up to about :data:`WORST_RATIO` times its size. A worker holds decoded
messages (prefetched and running), so the codec refuses a message whose decoded
objects would take more than :data:`DECODED_RATIO` x the message size limit.

Only messages that could cross that line are measured: below ``max_size x
DECODED_RATIO / WORST_RATIO`` bytes even the worst case stays under it, so small
messages (the hot path) cost nothing. A larger one gets a rough upper bound from byte
counts first (:func:`rough_bound`, milliseconds for a MiB); only when that is over the
limit are the decoded values walked, adding ``sys.getsizeof`` of every object, until
the limit is passed.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterable, Iterator
from typing import Final

from asyncq.message import Message

__all__ = ["DECODED_RATIO", "WORST_RATIO", "decoded_over", "gc_paused", "needs_measure",
           "rough_bound"]

#: A decoded message may take at most this many times the message size limit.
DECODED_RATIO: Final = 32
#: Measured worst case of decoded bytes per message byte (nested one-key maps: ~90).
WORST_RATIO: Final = 100
_SLOT: Final = 8
_FLOAT: Final = 24 + _SLOT
_BYTE: Final = 10


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a large message decodes (decoding builds no
    cycles; collections triggered by its many new containers made it five times slower)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def needs_measure(size: int, max_size: int) -> bool:
    """Whether a message of ``size`` bytes could decode past the bound."""
    return size * WORST_RATIO > max_size * DECODED_RATIO


#: msgpack's container headers (fixmap, fixarray, array16/32, map16/32)
_CONTAINERS: Final = bytes([*range(0x80, 0xA0), *range(0xDC, 0xE0)])
#: every other byte that may start an object Python keeps apart (str, bin, ext, ints...)
_OBJECTS: Final = bytes(b for b in range(0xA0, 0x100) if b not in _CONTAINERS)


def rough_bound(data: bytes) -> int:
    """An upper bound of what ``data`` decodes to, from two C-speed byte counts.

    Every byte costs at least a slot (8; lists over-allocate, so 10), a byte that may
    head a container up to a one-key map (192 in all), one that may head a string, int,
    float, bin or ext 128.
    Payload bytes that look like heads only make it larger, never smaller.
    """
    containers = len(data) - len(data.translate(None, _CONTAINERS))
    objects = len(data) - len(data.translate(None, _OBJECTS))
    return _BYTE * len(data) + 184 * containers + 120 * objects


def decoded_over(message: Message, limit: int) -> int | None:
    """The decoded size counted so far once it passes ``limit`` bytes, or None."""
    total = 0
    stack: list[object] = [message.args, message.kwargs, message.options, message.headers]
    while stack:
        value = stack.pop()
        total += sys.getsizeof(value) + _SLOT
        if total > limit:
            return total
        if type(value) is list:
            total += _items(value, stack)
        elif type(value) is dict:
            stack.extend(value.keys())
            total += _items(value.values(), stack)
    return None


def _items(values: Iterable[object], stack: list[object]) -> int:
    """The cost of the scalars among ``values``; the rest go on ``stack``."""
    cost = 0
    for item in values:
        kind = type(item)
        if kind is int:  # small ints are shared: only the slot
            small = -5 <= item <= 256  # type: ignore[operator]
            cost += _SLOT if small else sys.getsizeof(item) + _SLOT
        elif kind is float:
            cost += _FLOAT
        elif item is None or kind is bool:
            cost += _SLOT
        else:
            stack.append(item)
    return cost
