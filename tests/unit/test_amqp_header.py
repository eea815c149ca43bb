"""The hand-made content frames of a published message (asyncq/brokers/amqp/_header.py)
are byte for byte what pamqp writes, and anything unusual still goes through pamqp."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from pamqp import commands as spec

from asyncq.brokers.amqp._header import _pamqp_frames, content_frames
from asyncq.brokers.amqp._layout import new_properties
from asyncq.message import valid_id

NOW = dt.datetime(2026, 12, 3, 16, 50, 7, tzinfo=dt.UTC)

CASES = [
    new_properties(headers={}, correlation_id="a" * 32, reply_to=None),
    new_properties(headers={}, correlation_id="t1", reply_to="amq.rabbitmq.reply-to.g1h2",
                   priority=7),
    new_properties(headers={}, correlation_id=None, reply_to=None, persistent=False),
    new_properties(headers={"x-asyncq-eta": 1234567890123, "s": "é"}, correlation_id="c",
                   reply_to=None),  # a table: pamqp's
    spec.Basic.Properties(delivery_mode=2, message_id="m", timestamp=NOW),
    spec.Basic.Properties(headers=None, correlation_id="", message_id="m"),
    spec.Basic.Properties(delivery_mode=2, content_type="application/x-msgpack"),
    spec.Basic.Properties(message_id="é" * 200),  # over 255 bytes: pamqp raises
    spec.Basic.Properties(message_id="ü" * 100, timestamp=NOW.replace(tzinfo=None)),
    spec.Basic.Properties(),
]


@pytest.mark.parametrize("props", CASES)
@pytest.mark.parametrize("body", [b"", b"\x93\x01\x02", bytes(range(256)) * 700])
def test_same_bytes_as_pamqp(props: spec.Basic.Properties, body: bytes) -> None:
    try:
        expected = _pamqp_frames(5, body, props, 131_072 - 8)
    except Exception as exc:  # pamqp refuses it: so does content_frames, the same way
        with pytest.raises(type(exc)):
            content_frames(5, body, props, 131_072 - 8)
        return
    assert content_frames(5, body, props, 131_072 - 8) == expected


def test_a_priority_out_of_range_goes_to_pamqp() -> None:
    props = spec.Basic.Properties(priority=300, message_id="m")
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever pamqp raises
        _pamqp_frames(1, b"x", props, 1000)
    with pytest.raises(Exception):  # noqa: B017, PT011
        content_frames(1, b"x", props, 1000)


@pytest.mark.parametrize("persistent", [True, False])
def test_new_properties_are_what_pamqps_constructor_makes(persistent: bool) -> None:
    """new_properties skips pamqp's __init__ (its checks hold by construction): every
    slot still holds what the constructor would put there."""
    props = new_properties(headers={"a": 1}, correlation_id="c", reply_to="r", priority=3,
                           persistent=persistent)
    expected = spec.Basic.Properties(
        headers={"a": 1}, delivery_mode=2 if persistent else 1, priority=3,
        correlation_id="c", reply_to="r", message_id=props.message_id,
        timestamp=props.timestamp)
    assert list(props) == list(expected)
    assert len(props.message_id or "") == 32
    assert props.timestamp is not None
    assert props.timestamp.tzinfo is not None


def test_each_message_gets_its_own_id_and_the_current_second() -> None:
    """Returns and dead letters are matched by message_id: no two alike, though made
    without a system call each; the timestamp is now, to the second AMQP keeps."""
    before = int(time.time())
    made = [new_properties(headers={}, correlation_id=None, reply_to=None)
            for _ in range(5000)]
    after = int(time.time())
    assert len({props.message_id for props in made}) == 5000
    assert all(valid_id(props.message_id) for props in made)
    stamps = {props.timestamp for props in made}
    assert all(stamp is not None and before <= stamp.timestamp() <= after
               and stamp.timestamp() == int(stamp.timestamp()) for stamp in stamps)
