"""``success_value``: the value of the common SUCCESS record, read without a ResultRecord,
and NOT_PLAIN for every record it leaves to ``decode_record`` (which then has its say)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import asyncq
from asyncq import codec
from asyncq._record_signing import sign_record
from asyncq.records import (
    NOT_PLAIN,
    Progress,
    ResultRecord,
    decode_record,
    encode_record,
    encode_success,
    success_value,
)
from asyncq.signing import Signer
from asyncq.states import TaskState


@pytest.mark.parametrize("value", [None, 0, -3, 2.5, "text", b"\x00bytes", [1, "a"],
                                   {"a": [1, {"b": None}]}, True])
def test_a_plain_success_gives_its_value(value: object) -> None:
    for finished in (1700000000.5, 1700000000, None):
        raw = encode_record(ResultRecord(TaskState.SUCCESS, value, attempt=2, task="t.x",
                                         finished_at=finished))
        assert success_value(raw) == value == decode_record(raw).value
    assert success_value(encode_success(value, 0, None, 1.0)) == value


def test_a_stored_none_is_told_from_not_plain() -> None:
    assert success_value(encode_success(None, 1, "t", 1.0)) is None


@pytest.mark.parametrize("record", [
    ResultRecord(TaskState.FAILURE, None, "ValueError", "bad", "tb", 1, "t", 1.0),
    ResultRecord(TaskState.CANCELLED, None, "Cancelled", "", None, 1, "t", 1.0),
    ResultRecord(TaskState.REVOKED, None, None, "revoked", None, 0, "t", 1.0),
    ResultRecord(TaskState.STARTED, None, attempt=1, task="t", progress=Progress(1, 2)),
    ResultRecord(TaskState.SUCCESS, 5, attempt=1, task="t", progress=Progress(2, 2)),
    ResultRecord(TaskState.SUCCESS, 5, "odd", None, None, 1, "t", 1.0),
])
def test_other_records_are_left_to_decode_record(record: ResultRecord) -> None:
    assert success_value(encode_record(record)) is NOT_PLAIN


def test_a_signed_record_is_left_to_decode_record() -> None:
    raw = sign_record(encode_success(5, 1, "t", 1.0), "abc", Signer({"k1": b"k" * 32}))
    assert success_value(raw) is NOT_PLAIN
    assert decode_record(raw).value == 5


@pytest.mark.parametrize("wire", [
    [2, 5, None, None, None, 1, "t", 1.0],  # another version
    [1, 5, None, None, None, "1", "t", 1.0],  # a bad attempt
    [1, 5, None, None, None, 1, 7, 1.0],  # a bad task name
    [1, 5, None, None, None, 1, "t", "now"],  # a bad finish time
])
def test_odd_fields_are_left_to_decode_record(wire: list[object]) -> None:
    raw = b"S" + codec.dumps(wire)
    assert success_value(raw) is NOT_PLAIN
    with pytest.raises(asyncq.DecodeError):
        decode_record(raw)


def test_undecodable_bytes_are_a_decode_error() -> None:
    with pytest.raises(asyncq.DecodeError):
        success_value(b"S\x98\xc1")
    with pytest.raises(asyncq.DecodeError):
        success_value(encode_success("x" * 100, 1, "t", 1.0), max_size=50)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64))
def test_whatever_it_returns_decode_record_agrees(tail: bytes) -> None:
    raw = b"S\x98" + tail
    try:
        value = success_value(raw)
    except asyncq.DecodeError:
        return
    if value is not NOT_PLAIN:
        record = decode_record(raw)
        assert record.state is TaskState.SUCCESS
        assert record.value == value
    else:  # left to decode_record, which decodes it or says why not
        with contextlib.suppress(asyncq.DecodeError):
            decode_record(raw)


async def test_awaiting_a_subclass_runs_its_own_get() -> None:
    """``await handle`` skips ``get`` in the base class; a subclass's own ``get`` (one
    that adds to it, as asyncq.canvas's handles do) is what awaiting it runs."""
    app = asyncq.App("subclass-get", broker="memory://")

    class Doubled(asyncq.TaskResult[int]):
        async def get(self, timeout: float | None = None, *, propagate: bool = True
                      ) -> int:
            return 2 * await super().get(timeout)

    async with app:
        await app.backend.store(
            "t-doubled", ResultRecord(state=TaskState.SUCCESS, value=21))
        assert await Doubled(app.backend, "t-doubled", app=app) == 42
        assert await asyncq.TaskResult(app.backend, "t-doubled", app=app) == 21
