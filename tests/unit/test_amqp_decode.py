"""asyncq's frame reader (asyncq/brokers/amqp/_decode.py, _reader.py) gives aiormq's loop
the very frames pamqp decodes, whatever the socket's reads cut them into, and hands a
delivery to asyncq's consumer with the properties, tag and body pamqp would give."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import decimal
import random
from typing import Any

import pamqp.frame
import pytest
from aiormq.channel import Returning
from aiormq.exceptions import AMQPConnectionError, DeliveryError, InvalidFrameError
from pamqp import commands as spec
from pamqp.body import ContentBody
from pamqp.exceptions import PAMQPException
from pamqp.header import ContentHeader
from pamqp.heartbeat import Heartbeat

from asyncq.brokers.amqp._decode import (
    content_span,
    decode_frame,
    deliver_fields,
    header_fields,
)
from asyncq.brokers.amqp._layout import new_properties
from asyncq.brokers.amqp._reader import FrameReader
from asyncq.brokers.amqp._received import Direct, Message, Received

NOW = dt.datetime(2026, 12, 4, 16, 50, 7, tzinfo=dt.UTC)
MAX_BODY = 4096  # a small frame_max, so that bodies span several frames

PROPERTIES = [
    new_properties(headers={}, correlation_id="a" * 32, reply_to=None),
    new_properties(headers={}, correlation_id="t1", reply_to="amq.rabbitmq.reply-to.g1h2",
                   priority=7),
    new_properties(headers={"x-asyncq-eta": 1234567890123, "s": "é", "f": 1.5, "b": True,
                            "n": None, "l": [1, "two", {"three": 3}], "t": NOW,
                            "d": decimal.Decimal("1.25"), "neg": -5, "big": 2**40},
                   correlation_id="c", reply_to=None),
    spec.Basic.Properties(),
    spec.Basic.Properties(headers=None, correlation_id="", message_id="m"),
    spec.Basic.Properties(content_type="application/x-msgpack", content_encoding="gzip",
                          delivery_mode=1, expiration="60000", message_id="é" * 100,
                          timestamp=NOW, message_type="t", user_id="guest", app_id="app"),
    spec.Basic.Properties(timestamp=dt.datetime(2200, 1, 1, tzinfo=dt.UTC)),  # ms in pamqp
]

DELIVERIES = [
    spec.Basic.Deliver(consumer_tag="ctag1.abc", delivery_tag=1, exchange="asyncq",
                       routing_key="q"),
    spec.Basic.Deliver(consumer_tag="ctag1.abc", delivery_tag=2**62 + 5, redelivered=True,
                       exchange="", routing_key="é" * 100),
]


def _message(channel: int, deliver: Any, properties: Any, body: bytes) -> list[bytes]:
    frames = [pamqp.frame.marshal(deliver, channel),
              pamqp.frame.marshal(ContentHeader(0, len(body), properties), channel)]
    frames += [pamqp.frame.marshal(ContentBody(body[i : i + MAX_BODY]), channel)
               for i in range(0, len(body), MAX_BODY)]
    return frames


def _same(ours: Any, theirs: Any) -> None:
    """Equal as pamqp's objects: the same class and the same attribute values."""
    assert type(ours) is type(theirs)
    if isinstance(theirs, ContentHeader):
        assert vars(ours).keys() == vars(theirs).keys()
        assert (ours.class_id, ours.weight, ours.body_size) == (
            theirs.class_id, theirs.weight, theirs.body_size)
        assert ours.properties == theirs.properties
        assert list(ours.properties) == list(theirs.properties)  # every slot set
    elif isinstance(theirs, ContentBody):
        assert ours.value == theirs.value
    elif isinstance(theirs, Heartbeat):
        pass
    else:
        assert list(ours) == list(theirs)


OTHER_FRAMES = [
    spec.Basic.Ack(delivery_tag=7), spec.Basic.Ack(delivery_tag=2**40, multiple=True),
    spec.Basic.Nack(delivery_tag=3, multiple=True, requeue=False),
    spec.Basic.Nack(delivery_tag=4, requeue=True),
    spec.Basic.ConsumeOk(consumer_tag="ctag"), spec.Basic.QosOk(),
    spec.Channel.Close(reply_code=406, reply_text="PRECONDITION_FAILED", class_id=50,
                       method_id=10),
    spec.Basic.Return(reply_code=312, reply_text="NO_ROUTE", exchange="x", routing_key="k"),
    Heartbeat(),
]


@pytest.mark.parametrize("frame", OTHER_FRAMES, ids=lambda f: type(f).__name__)
def test_other_frames_are_pamqps(frame: Any) -> None:
    data = pamqp.frame.marshal(frame, 0 if isinstance(frame, Heartbeat) else 3)
    expected = pamqp.frame.unmarshal(data)
    used, channel, ours = decode_frame(b"xx" + data + b"yy", 2)
    assert (used, channel) == expected[:2]
    _same(ours, expected[2])


@pytest.mark.parametrize("properties", PROPERTIES)
@pytest.mark.parametrize("body", [b"", b"\x93\x01\x02", bytes(range(256)) * 70])
@pytest.mark.parametrize("deliver", DELIVERIES)
def test_delivery_frames_decode_as_pamqp_does(deliver: Any, properties: Any,
                                              body: bytes) -> None:
    for data in _message(9, deliver, properties, body):
        expected = pamqp.frame.unmarshal(data)
        ours = decode_frame(data, 0)
        assert ours[:2] == expected[:2]
        _same(ours[2], expected[2])


def _same_outcome(data: bytes) -> None:
    """decode_frame gives pamqp's frame, or raises aiormq's error where pamqp raises."""
    try:
        expected = pamqp.frame.unmarshal(data)
    except PAMQPException:
        with pytest.raises(InvalidFrameError):
            decode_frame(data, 0)
        return
    ours = decode_frame(data, 0)
    assert ours[:2] == expected[:2]
    _same(ours[2], expected[2])


def test_unusual_or_broken_frames_are_pamqps() -> None:
    header = bytearray(pamqp.frame.marshal(ContentHeader(0, 1, PROPERTIES[0]), 1))
    header[19 + 1] |= 1  # says another flag word follows
    _same_outcome(bytes(header))
    deliver = pamqp.frame.marshal(DELIVERIES[0], 1)
    _same_outcome(deliver[:-1] + b"\x00")  # not the frame end octet
    _same_outcome(deliver[:11] + b"\xff" + deliver[12:])  # a tag length past the frame
    ack = pamqp.frame.marshal(spec.Basic.Ack(delivery_tag=1), 1)
    _same_outcome(ack[:6] + bytes([ack[6] + 1]) + ack[7:-1] + b"\x00\xce")  # longer
    bad_utf8 = bytearray(deliver)
    bad_utf8[12] = 0xFF
    _same_outcome(bytes(bad_utf8))


class Channel:
    """What FrameReader reads of an aiormq channel."""

    def __init__(self, consumers: dict[str, Any]) -> None:
        self.consumers = consumers
        self.frames: asyncio.Queue[Any] = asyncio.Queue()
        self.is_closed = False


async def _read_all(stream: bytes, channels: dict[int, Any], seed: int) -> list[Any]:
    """Every frame a FrameReader yields for ``stream``, fed in random pieces."""
    reader = asyncio.StreamReader()
    rng = random.Random(seed)
    at = 0
    while at < len(stream):
        step = rng.choice([1, 3, 7, 50, 700, 5000, 100_000])
        reader.feed_data(stream[at : at + step])
        at += step
    reader.feed_eof()
    frames = [frame async for frame in FrameReader(reader, channels)]
    await asyncio.sleep(0)  # the hand-over of taken deliveries
    return frames


@pytest.mark.parametrize("seed", range(6))
async def test_a_stream_in_any_pieces_gives_pamqps_frames(seed: int) -> None:
    parts: list[bytes] = []
    for i, properties in enumerate(PROPERTIES):
        parts += _message(i % 3 + 1, DELIVERIES[i % 2], properties, bytes([i]) * (i * 3000))
        parts.append(pamqp.frame.marshal(OTHER_FRAMES[i], 1))
    expected = [pamqp.frame.unmarshal(part) for part in parts]
    frames = await _read_all(b"".join(parts), {}, seed)  # no channel: nothing taken
    assert [f[:2] for f in frames] == [e[:2] for e in expected]
    for ours, theirs in zip(frames, expected, strict=True):
        _same(ours[2], theirs[2])


async def test_a_stream_cut_short_is_a_connection_error() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(pamqp.frame.marshal(spec.Basic.QosOk(), 1)[:-3])
    reader.feed_eof()
    with pytest.raises(AMQPConnectionError, match="unexpectedly closed"):
        await FrameReader(reader, {}).get_frame()


@pytest.mark.parametrize("seed", range(4))
async def test_deliveries_to_a_direct_consumer_are_taken_in_order(seed: int) -> None:
    got: list[Message] = []
    direct = Direct(got.append)
    ours, theirs = Channel({"ctag1.abc": direct}), Channel({"ctag1.abc": object()})
    parts: list[bytes] = []
    expected: list[tuple[Any, Any, bytes]] = []
    for i in range(40):
        deliver = spec.Basic.Deliver(consumer_tag="ctag1.abc", delivery_tag=i + 1,
                                     redelivered=i % 3 == 0, exchange="asyncq",
                                     routing_key="q")
        properties = PROPERTIES[i % len(PROPERTIES)]
        body = bytes([i]) * (i * 250)  # up to 3 body frames
        message = _message(1, deliver, properties, body)
        parts += message
        expected.append((deliver, pamqp.frame.unmarshal(message[1])[2].properties, body))
        parts += _message(2, deliver, properties, b"x")  # another consumer's: aiormq's
    frames = await _read_all(b"".join(parts), {1: ours, 2: theirs}, seed)
    assert {channel for _, channel, _ in frames} <= {0, 2}  # channel 0: heartbeats
    assert sum(isinstance(f[2], spec.Basic.Deliver) for f in frames) == 40
    assert len(got) == 40
    for message, (deliver, properties, body) in zip(got, expected, strict=True):
        assert isinstance(message, Received)
        assert message.channel is ours
        assert (message.delivery_tag, message.redelivered) == (deliver.delivery_tag,
                                                               deliver.redelivered)
        assert message.body == body
        assert (message.headers, message.message_id, message.correlation_id,
                message.reply_to, message.priority) == (
            properties.headers or {}, properties.message_id, properties.correlation_id,
            properties.reply_to, properties.priority)


async def test_a_delivery_waits_for_the_frames_its_channel_has_queued() -> None:
    got: list[Message] = []
    channel = Channel({"ctag1.abc": Direct(got.append)})
    channel.frames.put_nowait("earlier")
    stream = b"".join(_message(1, DELIVERIES[0], PROPERTIES[0], b"b"))
    reader = asyncio.StreamReader()
    reader.feed_data(stream)
    reader.feed_eof()
    frames = FrameReader(reader, {1: channel})
    first = asyncio.ensure_future(frames.get_frame())
    await asyncio.sleep(0.01)
    assert not first.done()  # waits for the channel's reader
    channel.frames.get_nowait()
    channel.frames.task_done()
    assert isinstance((await first)[2], Heartbeat)  # all taken: "the connection is alive"
    await asyncio.sleep(0)
    assert [m.body for m in got] == [b"b"]
    # never taken in: a channel reader that does not take its frames soon
    channel.frames.put_nowait("stuck")
    again = FrameReader(asyncio.StreamReader(), {1: channel})
    again.reader.feed_data(stream)
    frame = await again.get_frame()
    assert isinstance(frame[2], spec.Basic.Deliver)  # aiormq's way, behind "stuck"


def test_content_span_and_header_fields_refuse_what_is_not_a_plain_delivery() -> None:
    header, body = _message(1, DELIVERIES[0], PROPERTIES[0], b"abc")[1:]
    assert content_span(header + body, 0, 1) == len(header + body)
    assert content_span(header + body, 0, 2) == -1  # another channel's
    assert content_span(header + body[:-1], 0, 1) == 0  # not all read yet
    assert content_span(body + header, 0, 1) == -1
    decoded = pamqp.frame.unmarshal(header)[2].properties
    assert header_fields(header, 0) == {name: value for name, value in decoded
                                        if value is not None and value != ""}


class ConfirmingChannel(Channel):
    """What FrameReader reads of an aiormq channel with publisher confirms."""

    publisher_confirms = True

    def __init__(self) -> None:
        super().__init__({})
        self.confirmations: dict[int, Any] = collections.OrderedDict()


async def test_publisher_confirms_settle_as_aiormq_settles_them() -> None:
    loop = asyncio.get_running_loop()
    channel = ConfirmingChannel()
    futures = {tag: loop.create_future() for tag in range(1, 9)}
    channel.confirmations.update(futures)
    returned = futures[3]
    channel.confirmations[3] = Returning()  # aiormq's mark of a returned message
    returned.set_exception(RuntimeError("returned"))
    futures[5].cancel()  # a publish that stopped waiting
    stream = b"".join(pamqp.frame.marshal(frame, 1) for frame in (
        spec.Basic.Ack(delivery_tag=6, multiple=True),
        spec.Basic.Nack(delivery_tag=7),
        spec.Basic.Ack(delivery_tag=99),  # unknown: aiormq's way (it logs it)
    ))
    frames = await _read_all(stream, {1: channel}, seed=0)
    assert [type(f[2]) for f in frames] == [spec.Basic.Ack]  # the tag 99 one, aiormq's
    assert list(channel.confirmations) == [8]
    for tag in (1, 2, 4, 6):
        assert isinstance(futures[tag].result(), spec.Basic.Ack)
    assert futures[5].cancelled()
    with pytest.raises(DeliveryError):
        futures[7].result()
    assert not futures[8].done()


async def test_a_confirm_waits_for_a_return_its_channel_has_queued() -> None:
    channel = ConfirmingChannel()
    future = asyncio.get_running_loop().create_future()
    channel.confirmations[1] = future
    channel.frames.put_nowait("the return")
    reader = asyncio.StreamReader()
    reader.feed_data(pamqp.frame.marshal(spec.Basic.Ack(delivery_tag=1), 1))
    reader.feed_eof()
    frames = FrameReader(reader, {1: channel})
    first = asyncio.ensure_future(frames.get_frame())
    await asyncio.sleep(0.01)
    assert not first.done()
    channel.frames.get_nowait()  # aiormq's reader takes the return: it marks the tag
    channel.confirmations[1] = Returning()
    channel.frames.task_done()
    assert isinstance((await first)[2], Heartbeat)
    assert not future.done()  # settled by the return, not by the confirm
    assert not channel.confirmations


async def test_aiormqs_loop_hears_of_handled_frames_before_the_reader_waits_for_more() -> None:
    """A stream of deliveries whose reads end mid-frame must still show aiormq's loop a
    frame now and then: it closes a connection it hears nothing from (heartbeats)."""
    got: list[Message] = []
    channel = Channel({"ctag1.abc": Direct(got.append)})
    one = b"".join(_message(1, DELIVERIES[0], PROPERTIES[0], b"b"))
    reader = asyncio.StreamReader()
    reader.feed_data(one + one[:10])  # a delivery and the start of the next one
    frames = FrameReader(reader, {1: channel})
    first = await asyncio.wait_for(frames.get_frame(), 1)
    assert isinstance(first[2], Heartbeat)
    waiting = asyncio.ensure_future(frames.get_frame())
    await asyncio.sleep(0.01)
    assert not waiting.done()  # now it waits for the rest
    reader.feed_data(one[10:])
    assert isinstance((await waiting)[2], Heartbeat)
    await asyncio.sleep(0)
    assert len(got) == 2


async def test_a_large_delivery_is_read_whole_and_taken() -> None:
    got: list[Message] = []
    channel = Channel({"ctag1.abc": Direct(got.append)})
    body = bytes(range(256)) * 12_000  # 3 MB in 4 KiB frames
    frames = await _read_all(b"".join(_message(1, DELIVERIES[0], PROPERTIES[0], body)),
                             {1: channel}, seed=1)
    assert all(isinstance(frame[2], Heartbeat) for frame in frames)
    assert [message.body for message in got] == [body]


def test_deliver_fields_are_pamqps_and_refuse_what_it_would_not_decode() -> None:
    for deliver in DELIVERIES:
        frame = pamqp.frame.marshal(deliver, 1)
        assert deliver_fields(frame, 7, len(frame) - 1) == (
            deliver.consumer_tag, deliver.delivery_tag, deliver.redelivered)
    frame = pamqp.frame.marshal(DELIVERIES[0], 1)
    assert deliver_fields(frame, 7, len(frame) - 2) is None  # a byte short
    assert deliver_fields(frame[:-6], 7, len(frame) - 1) is None  # cut off
    bad = frame.replace(b"\x06asyncq", b"\x06async\xff")  # an exchange not UTF-8
    with pytest.raises(PAMQPException):
        pamqp.frame.unmarshal(bad)
    assert deliver_fields(bad, 7, len(bad) - 1) is None
    ack = pamqp.frame.marshal(spec.Basic.Ack(delivery_tag=1), 1)
    assert deliver_fields(ack, 7, len(ack) - 1) is None
