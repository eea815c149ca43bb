"""Decode amplification (issue 13): a message whose decoded objects would take more
than DECODED_RATIO x the size limit is refused; ordinary large messages pass, and small
ones are never measured."""

from __future__ import annotations

import functools
import tracemalloc
from typing import Any

import msgpack
import pytest

import asyncq
from asyncq import codec
from asyncq._decoded import DECODED_RATIO, WORST_RATIO, decoded_over, needs_measure, rough_bound
from asyncq.message import Message
from asyncq.wire import WireCodec

SIZE = 256 * 1024


def envelope(args: list[Any]) -> bytes:
    return msgpack.packb([1, "bomb-1", "t", args, {}, {}, {}, 0])


def filled(unit: object, unit_len: int) -> bytes:
    return envelope([unit] * ((SIZE - 64) // unit_len))


BOMBS = {"empty arrays": filled([], 1), "empty maps": filled({}, 1),
         "one-key maps": filled({"": {}}, 3), "nested maps": filled({"": {"": {}}}, 5)}
FINE = {"2-char strings": filled("ab", 3), "small ints": filled(1, 1),
        "floats": filled(1.5, 9), "records": filled({"id": 12345, "name": "alice"}, 19),
        "a blob": envelope([b"x" * (SIZE - 64)])}


@functools.cache
def decoded_bytes(data: bytes) -> int:
    tracemalloc.start()
    try:
        value = codec.loads(data, max_size=SIZE)
        return tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        del value


@pytest.mark.parametrize("name", BOMBS)
def test_bombs_are_refused(name: str) -> None:
    data = BOMBS[name]
    assert len(data) <= SIZE
    ratio = decoded_bytes(data) / len(data)
    assert DECODED_RATIO < ratio < WORST_RATIO  # they are bombs, and within the worst case
    signer = asyncq.signing.Signer({"k": "k" * 16})
    signed = WireCodec(max_size=SIZE + 1024, signer=signer)
    for wire, body in ((WireCodec(max_size=SIZE), data), (signed, signer.sign(data, "q"))):
        with pytest.raises(asyncq.DecodeError, match="decode bomb"):
            wire.decode(body, "q")


@pytest.mark.parametrize("name", FINE)
def test_large_ordinary_messages_pass_and_stay_under_the_bound(name: str) -> None:
    data = FINE[name]
    assert decoded_bytes(data) < DECODED_RATIO * SIZE
    assert WireCodec(max_size=SIZE).decode(data).id == "bomb-1"


def test_small_messages_are_never_measured_and_the_rough_bound_is_an_upper_bound() -> None:
    assert not needs_measure(SIZE * DECODED_RATIO // WORST_RATIO, SIZE)
    assert needs_measure(SIZE // 2, SIZE)
    for data in [*BOMBS.values(), *FINE.values()]:
        assert rough_bound(data) >= decoded_bytes(data)
    message = Message("m", "t", [[]] * 1000)
    assert decoded_over(message, 10_000) is not None
    assert decoded_over(message, 1_000_000) is None
