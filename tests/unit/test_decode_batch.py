"""A fetched batch decoded in one pass gives what decoding each message alone gives."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import asyncq
from asyncq import codec
from asyncq.brokers import Delivery
from asyncq.compression import Compressor
from asyncq.message import Message, new_id
from asyncq.signing import Signer
from asyncq.task import WORKFLOW_HEADER
from asyncq.wire import WireCodec
from asyncq.worker.execute import Dead, Executor


def _good(i: int, **extra: Any) -> bytes:
    return Message(new_id(), "t", [i], **extra).encode()


WRONG = {
    "misaligned: an array header that swallows what follows": b"\x98",
    "trailing bytes": _good(0) + b"\x00",
    "truncated": _good(0)[:-3],
    "not msgpack": b"\xc1",
    "empty": b"",
    "future version": codec.dumps([2, "abc", "t", [], {}, {}, {}, 0]),
    "bool version": codec.dumps([True, "abc", "t", [], {}, {}, {}, 0]),
    "invalid id": codec.dumps([1, "../etc/passwd", "t", [], {}, {}, {}, 0]),
    "non-ascii id": codec.dumps([1, "ab\u00e9", "t", [], {}, {}, {}, 0]),
    "id too long": codec.dumps([1, "a" * 129, "t", [], {}, {}, {}, 0]),
    "empty task": codec.dumps([1, "abc", "", [], {}, {}, {}, 0]),
    "task not text": codec.dumps([1, "abc", b"t", [], {}, {}, {}, 0]),
    "args not array": codec.dumps([1, "abc", "t", {}, {}, {}, {}, 0]),
    "headers not map": codec.dumps([1, "abc", "t", [], {}, {}, [], 0]),
    "negative attempt": codec.dumps([1, "abc", "t", [], {}, {}, {}, -1]),
    "bool attempt": codec.dumps([1, "abc", "t", [], {}, {}, {}, True]),
    "int map key": codec.dumps([1, "abc", "t", [], {}, {}, {}, 0])[:-2] + b"\x81\x01\x02\x00",
    "unknown ext type": codec.dumps([1, "abc", "t", [], {}, {}, {}, 0])[:-5]
    + b"\x91\xd4\x63\x00\x80\x80\x80\x00",
}


def _outcome(wire: WireCodec, body: bytes) -> Message | str:
    try:
        return wire.decode(body, "q")
    except asyncq.DecodeError as exc:
        return f"{type(exc).__name__}: {exc}"


def _check(wire: WireCodec, bodies: list[bytes]) -> list[Message | None]:
    """Every message decode_batch gives is decode's, and decode accepts it."""
    found = wire.decode_batch(bodies)
    assert len(found) == len(bodies)
    for body, message in zip(bodies, found, strict=True):
        if message is not None:
            assert _outcome(wire, body) == message
    return found


def test_plain_messages_are_all_decoded_in_the_pass() -> None:
    wire = WireCodec()
    bodies = [_good(i) for i in range(50)] + [
        Message("order-7.retry:2", "shop.add", [1, "x"], {"k": {"n": [1.5]}}, {"eta": 2.5},
                {"h": "v"}, 3).encode()]
    found = _check(wire, bodies)
    assert None not in found
    assert found[-1] == Message("order-7.retry:2", "shop.add", [1, "x"], {"k": {"n": [1.5]}},
                                {"eta": 2.5}, {"h": "v"}, 3)


@pytest.mark.parametrize("bad", WRONG.values(), ids=WRONG.keys())
def test_a_wrong_body_is_left_to_decode_and_the_rest_still_decode(bad: bytes) -> None:
    wire = WireCodec()
    bodies = [_good(1), bad, _good(2), _good(3)]
    found = _check(wire, bodies)
    assert found[0] is not None
    assert found[1] is None
    assert isinstance(_outcome(wire, bad), str)  # decode refuses it, as before
    for body in bodies[2:]:  # left to decode or decoded here: a message either way
        assert isinstance(_outcome(wire, body), Message)


def test_signed_compressed_and_large_bodies_go_the_general_way() -> None:
    signed = WireCodec(signer=Signer({"k1": b"k" * 32}))
    bodies = [signed.encode(new_id(), "t", [1], {}, {}, {}, queue="q")]
    assert _check(signed, bodies) == [None]
    assert isinstance(_outcome(signed, bodies[0]), Message)

    zipped = WireCodec(compressor=Compressor("zlib"))
    big = zipped.encode(new_id(), "t", ["x" * 5000], {}, {}, {})
    assert big[:1] == b"\xc1"  # compressed
    small = WireCodec(max_size=1000)
    measured = Message(new_id(), "t", ["y" * 400]).encode()  # over the unmeasured size
    assert _check(zipped, [big, _good(1)])[0] is None
    plain = _good(1)
    assert _check(small, [measured, plain]) == [None, _outcome(small, plain)]
    wide = Message(new_id(), "t", ["z" * 20_000]).encode()  # over 16 KiB: not joined
    assert _check(WireCodec(), [plain, wide]) == [_outcome(WireCodec(), plain), None]
    assert isinstance(_outcome(WireCodec(), wide), Message)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 60), st.binary(min_size=1, max_size=4)),
                min_size=1, max_size=8))
def test_mutated_batches_decode_as_each_alone(parts: list[tuple[bool, int, bytes]]) -> None:
    bodies = []
    for mutate, position, patch in parts:
        data = bytearray(_good(position, kwargs={"k": 2}))
        if mutate:
            position %= len(data)
            data[position : position + len(patch)] = patch
        bodies.append(bytes(data))
    _check(WireCodec(), bodies)


def test_prepare_all_makes_what_prepare_makes() -> None:
    app = asyncq.App("batch", broker="memory://batch")

    @app.task(name="one")
    async def one(x: int) -> int:
        return x

    @app.task(name="kw")
    async def kw(x: int, *, y: int = 0) -> int:
        return x + y

    executor = Executor(app, max_deliveries=5)
    bodies = [
        Message(new_id(), "one", [1]).encode(),
        Message(new_id(), "one", [1]).encode(),  # the pipeline exists from here on
        Message(new_id(), "one", [1, 2]).encode(),  # does not bind
        Message(new_id(), "kw", [1], {"y": 2}).encode(),  # keyword arguments
        Message(new_id(), "nope", []).encode(),  # unknown task
        Message(new_id(), "one", [1], headers={WORKFLOW_HEADER: {}}).encode(),
        *WRONG.values(),
    ]
    deliveries = [Delivery(body, "q", 1, str(i)) for i, body in enumerate(bodies)]
    batch = executor.prepare_all(deliveries)
    alone = [executor.prepare(d) for d in deliveries]
    assert len(batch) == len(alone)
    for got, want in zip(batch, alone, strict=True):
        assert type(got) is type(want)
        if isinstance(got, Dead):
            assert isinstance(want, Dead)
            assert (got.delivery, got.reason, got.task_id, got.task) == (
                want.delivery, want.reason, want.task_id, want.task)
        else:
            assert not isinstance(want, Dead)
            assert (got.message, got.task, got.delivery, got.pipeline) == (
                want.message, want.task, want.delivery, want.pipeline)
    assert sum(not isinstance(p, Dead) for p in batch) == 4
