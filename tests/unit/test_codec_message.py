"""The wire: msgpack codec, the envelope, result records — and what they refuse."""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import sys
import uuid

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import asyncq
from asyncq import codec
from asyncq.message import Message, new_id, valid_id
from asyncq.records import ResultRecord, decode_record, encode_record
from asyncq.wire import peek_id


@pytest.mark.parametrize("value", [
    dt.datetime(2026, 11, 24, 12, 30, 1, 123456, tzinfo=dt.UTC),
    dt.datetime(2026, 11, 24, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    dt.datetime(2026, 1, 2, 3, 4, 5),
    dt.date(2026, 2, 28),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    decimal.Decimal("1234.5600"),
    {"nested": [1, 2.5, "x", b"\x00\xff", None, True, {"when": dt.date(2020, 1, 1)}]},
])
def test_round_trips_supported_types(value: object) -> None:
    back = codec.loads(codec.dumps(value))
    assert back == value
    assert type(back) is type(value)


def test_tuples_come_back_as_lists() -> None:
    assert codec.loads(codec.dumps((1, 2))) == [1, 2]


class Unsupported:
    pass


def test_unsupported_values_raise_serialization_error() -> None:
    with pytest.raises(asyncq.SerializationError, match="Unsupported"):
        codec.dumps({"x": Unsupported()})


def test_envelope_names_the_argument_it_cannot_carry() -> None:
    with pytest.raises(asyncq.SerializationError, match="positional argument 1"):
        Message(new_id(), "t", [1, Unsupported()], {}).encode()
    with pytest.raises(asyncq.SerializationError, match="'payload'"):
        Message(new_id(), "t", [], {"payload": {1, 2}}).encode()


BAD_BYTES = {
    "not msgpack": b"\xc1",
    "truncated": codec.dumps([1, "abc", [1, 2, 3]])[:-2],
    "trailing bytes": codec.dumps(1) + b"\x00",
    "huge declared array": b"\xdd\xff\xff\xff\xff",
    "huge declared string": b"\xdb\xff\xff\xff\xffab",
    "int map key": b"\x81\x01\x02",
    "invalid utf-8": b"\xa2\xff\xfe",
    "unknown ext type": b"\xd4\x63\x00",
    "bad ext payload": msgpack.packb(msgpack.ExtType(codec.EXT_UUID, b"short")),
    "deep nesting": b"\x91" * 100_000 + b"\x01",
}


@pytest.mark.parametrize("data", BAD_BYTES.values(), ids=BAD_BYTES.keys())
def test_bad_bytes_raise_decode_error(data: bytes) -> None:
    with pytest.raises(asyncq.DecodeError):
        codec.loads(data, max_size=1_000_000)


def test_size_is_checked_before_unpacking() -> None:
    with pytest.raises(asyncq.MessageTooLarge, match="exceeds"):
        codec.loads(codec.dumps("x" * 2000), max_size=1000)


def test_message_round_trip() -> None:
    message = Message(new_id(), "shop.add", [1, 2], {"k": "v"}, {"eta": 1.5}, {"h": 1}, 2)
    assert Message.decode(message.encode()) == Message(
        message.id, "shop.add", [1, 2], {"k": "v"}, {"eta": 1.5}, {"h": 1}, 2)


WRONG_SHAPES = {
    "not an array": codec.dumps({"id": "x"}),
    "short array": codec.dumps([1, "abc", "t"]),
    "future version": codec.dumps([2, "abc", "t", [], {}, {}, {}, 0]),
    "invalid id": codec.dumps([1, "../etc/passwd", "t", [], {}, {}, {}, 0]),
    "empty task": codec.dumps([1, "abc", "", [], {}, {}, {}, 0]),
    "args not array": codec.dumps([1, "abc", "t", {}, {}, {}, {}, 0]),
    "kwargs not map": codec.dumps([1, "abc", "t", [], [], {}, {}, 0]),
    "negative attempt": codec.dumps([1, "abc", "t", [], {}, {}, {}, -1]),
    "bool attempt": codec.dumps([1, "abc", "t", [], {}, {}, {}, True]),
}


@pytest.mark.parametrize("data", WRONG_SHAPES.values(), ids=WRONG_SHAPES.keys())
def test_wrong_envelopes_raise_decode_error(data: bytes) -> None:
    with pytest.raises(asyncq.DecodeError):
        Message.decode(data)


def test_peek_id_reads_ids_of_messages_that_fail_validation() -> None:
    assert peek_id(codec.dumps([1, "abc123", "", [], {}, {}, {}, 0])) == "abc123"
    assert peek_id(b"\xc1") is None
    assert peek_id(codec.dumps([1, "bad id!", "t"])) is None


@pytest.mark.parametrize(("value", "ok"), [
    ("abc", True), ("A1_b.c:d-e", True), ("x" * 128, True), ("x" * 129, False),
    ("", False), ("-leading", False), ("with space", False), ("slash/", False), (12, False),
])
def test_task_id_validation(value: object, ok: bool) -> None:
    assert valid_id(value) is ok


def test_result_records_round_trip() -> None:
    record = ResultRecord(asyncq.TaskState.FAILURE, None, "ValueError", "bad", "tb", 2,
                          "shop.add", 1.5)
    assert decode_record(encode_record(record)) == record
    assert encode_record(record)[:1] == b"F"


@pytest.mark.parametrize("data", [
    b"", b"Zgarbage", b"S\xc1", b"S" + codec.dumps([9, 1, None, None, None, 0, None, None]),
    b"F" + codec.dumps([1, None, ["os", "system"], "m", None, 0, None, None]),
])
def test_forged_records_raise_decode_error(data: bytes) -> None:
    with pytest.raises(asyncq.DecodeError):
        decode_record(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=512))
def test_decoder_only_raises_decode_error_and_imports_nothing(data: bytes) -> None:
    before = set(sys.modules)
    with contextlib.suppress(asyncq.DecodeError):
        Message.decode(data)
    assert set(sys.modules) == before


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=60), st.binary(min_size=1, max_size=4))
def test_mutated_envelopes_only_raise_decode_error(position: int, patch: bytes) -> None:
    data = bytearray(Message("abc123", "t", [1, "x"], {"k": 2}).encode())
    position %= len(data)
    data[position : position + len(patch)] = patch
    with contextlib.suppress(asyncq.DecodeError):
        Message.decode(bytes(data))


def test_the_fast_success_encoding_is_the_record_encoding() -> None:
    from asyncq.records import ResultRecord, decode_record, encode_record, encode_success
    from asyncq.states import TaskState

    for value in (None, 5, "text", {"a": [1, b"x"]}):
        record = ResultRecord(TaskState.SUCCESS, value, attempt=2, task="t.x",
                              finished_at=1700000000.5)
        fast = encode_success(value, 2, "t.x", 1700000000.5)
        assert fast == encode_record(record)
        assert decode_record(fast) == record
    with pytest.raises(asyncq.SerializationError, match="map key"):
        encode_success({1: "x"}, 0, "t.x", 0.0)


def test_batch_preparation_sends_the_bytes_of_the_general_path() -> None:
    """enqueue_many's inlined plain calls pack exactly what encode_fields packs, and
    every other call (keywords, options, non-scalars, bad values) takes the general
    path with its checks and errors."""
    from asyncq.wire import encode_fields

    app = asyncq.App("prep", broker="memory://")

    @app.task
    async def pair(a: object, b: object) -> None: ...

    @app.task
    async def opt(a: int, b: int = 2) -> None: ...

    sigs = [pair.s(1, "x"), pair.s(b"\0", None), pair.s(2.5, True), opt.s(1),
            pair.s([1, {"k": 2}], {"m": dt.date(2024, 1, 2)}), pair.s(a=1, b=2),
            pair.options(countdown=5).s(1, 2)]
    outgoing, handles, delayed = app._preparer.prepare_many(sigs)
    assert delayed == [6]  # the positions of the calls with an eta
    assert [h.id for h in handles] == [o.id for o in outgoing]
    assert len({o.id for o in outgoing}) == len(sigs)
    assert all(valid_id(o.id) for o in outgoing)
    for sig, out in zip(sigs[:6], outgoing[:6], strict=True):
        assert out.body == encode_fields(out.id, sig.task.name, sig.args, sig.kwargs, {}, {})
        assert Message.decode(out.body).args == list(sig.args)
    assert Message.decode(outgoing[6].body).options["eta"] == outgoing[6].eta
    with pytest.raises(asyncq.SerializationError, match="positional argument 1"):
        app._preparer.prepare_many([pair.s(1, 2), pair.s(1, 2**70)])
    with pytest.raises(TypeError, match="pair"):
        app._preparer.prepare_many([pair.s(1)])
    (after,), _, _ = app._preparer.prepare_many([pair.s(1, 2)])  # nothing half-written left
    assert after.body == encode_fields(after.id, pair.name, (1, 2), {}, {}, {})


def test_batch_preparation_signs_and_checks_the_size_as_the_general_path() -> None:
    from asyncq.wire import encode_fields

    signed = asyncq.App("prep", broker="memory://", signing_keys={"k1": b"0123456789abcdef"},
                        max_message_size=250)

    @signed.task
    async def echo(a: object) -> None: ...

    (out,), _, _ = signed._preparer.prepare_many([echo.s("x")])
    assert signed.codec.signer is not None
    expected = encode_fields(out.id, echo.name, ("x",), {}, {}, {})
    assert signed.codec.signer.verify(out.body) == expected
    assert signed.codec.decode(out.body).args == ["x"]
    with pytest.raises(asyncq.SerializationError, match="exceeds the 250 byte limit"):
        signed._preparer.prepare_many([echo.s("y" * 300)])
