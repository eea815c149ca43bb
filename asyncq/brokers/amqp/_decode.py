"""Decoding AMQP frames with ``struct``, into the objects pamqp's decoder makes.

pamqp decodes a frame by walking each field through a generic decoder. The frames a
worker and a producer get by the thousand (``basic.deliver``, the content header and
body, ``basic.ack`` / ``basic.nack`` confirms) are decoded here with ``struct`` into the
very objects ``pamqp.frame.unmarshal`` returns (a test compares the two); every other
frame, and any of those these functions cannot decode, goes to pamqp, which also raises
its usual errors. Used by :mod:`._reader` on asyncq's own connections only.
"""

from __future__ import annotations

import datetime as dt
import functools
import struct
from collections.abc import Callable
from typing import Any, Final

import pamqp.frame
from aiormq.exceptions import InvalidFrameError
from pamqp import commands as spec
from pamqp import decode
from pamqp.body import ContentBody
from pamqp.exceptions import PAMQPException
from pamqp.header import ContentHeader

__all__ = [
    "BODY_SIZE", "DELIVER", "FRAME", "FRAME_END", "METHOD", "UNDECODABLE", "Frame",
    "content_span", "decode_frame", "deliver_fields", "fast_frame", "header_fields",
]

FRAME: Final = struct.Struct(">BHI")  # type, channel, size
_INDEX: Final = struct.Struct(">I")
_TAG_BITS: Final = struct.Struct(">qB")  # pamqp reads a longlong signed
_HEADER: Final = struct.Struct(">HHQH")  # class id, weight, body size, flags
_TABLE_SIZE: Final = struct.Struct(">I")
_STAMP: Final = struct.Struct(">Q")
FRAME_END: Final = 0xCE
METHOD, _CONTENT_HEADER, _CONTENT_BODY = 1, 2, 3  # frame types
_DELIVER: Final = spec.Basic.Deliver.index
_ACK: Final = spec.Basic.Ack.index
_NACK: Final = spec.Basic.Nack.index
#: the first bytes of a ``basic.deliver`` method frame's payload
DELIVER: Final = _INDEX.pack(_DELIVER)
BODY_SIZE: Final = struct.Struct(">Q")  # a content header's body size
_U32: Final = struct.Struct(">I")
_FLAGS: Final = struct.Struct(">H")

_Properties = spec.Basic.Properties
_Deliver = spec.Basic.Deliver
_Ack = spec.Basic.Ack
_Nack = spec.Basic.Nack

Frame = Any  # one of pamqp's frame objects


# -- decoding ----------------------------------------------------------------------------
def _short(buf: bytes, at: int) -> tuple[str, int]:
    end = at + 1 + buf[at]
    return buf[at + 1 : end].decode(), end


def _text(buf: bytes, at: int) -> tuple[str, int]:
    """A short string property; bytes that are not UTF-8 become U+FFFD. pamqp raises
    there, and aiormq then drops the connection: one message with such a property
    (from any publisher) stopped every consumer of its queue, again at each redelivery."""
    end = at + 1 + buf[at]
    return buf[at + 1 : end].decode("utf-8", "replace"), end


def _octet(buf: bytes, at: int) -> tuple[int, int]:
    return buf[at], at + 1


def _table(buf: bytes, at: int) -> tuple[dict[str, Any], int]:
    size = _TABLE_SIZE.unpack_from(buf, at)[0]
    if size == 0:
        return {}, at + 4
    try:
        consumed, table = decode.field_table(buf[at : at + 4 + size])  # pamqp's, for values
    except ValueError as exc:  # a key that is not UTF-8 (pamqp gives such values as bytes)
        return {UNDECODABLE: f"headers table: {exc}"}, at + 4 + size
    return table, at + consumed


@functools.lru_cache(maxsize=1)
def _stamp(seconds: int) -> dt.datetime:
    """pamqp's timestamp (the last one again: a batch of messages shares its second)."""
    value: float = seconds / 1000.0 if seconds > 0xFFFFFFFF else seconds
    return dt.datetime.fromtimestamp(value, tz=dt.UTC)


def _timestamp(buf: bytes, at: int) -> tuple[dt.datetime, int]:
    return _stamp(_STAMP.unpack_from(buf, at)[0]), at + 8


Decoder = Callable[[bytes, int], tuple[Any, int]]

#: The only header of a message whose headers table could not be decoded (its reason).
UNDECODABLE: Final = "x-asyncq-undecodable-headers"

#: Basic.Properties in wire order: (name, flag bit, decoder)
_FIELDS: Final[tuple[tuple[str, int, Decoder], ...]] = (
    ("content_type", 0x8000, _text), ("content_encoding", 0x4000, _text),
    ("headers", 0x2000, _table), ("delivery_mode", 0x1000, _octet),
    ("priority", 0x0800, _octet), ("correlation_id", 0x0400, _text),
    ("reply_to", 0x0200, _text), ("expiration", 0x0100, _text),
    ("message_id", 0x0080, _text), ("timestamp", 0x0040, _timestamp),
    ("message_type", 0x0020, _text), ("user_id", 0x0010, _text),
    ("app_id", 0x0008, _text), ("cluster_id", 0x0004, _text),
)
_UNSET: Final = tuple((name, "" if name == "cluster_id" else None) for name, _, _ in _FIELDS)


@functools.lru_cache(maxsize=256)
def _plan(flags: int) -> tuple[tuple[str, Decoder], ...]:
    """The properties present under ``flags``, in wire order."""
    return tuple((name, decoder) for name, flag, decoder in _FIELDS if flags & flag)


def _fields(buf: bytes, at: int, flags: int) -> tuple[dict[str, Any], int]:
    """The properties present under ``flags``, by name, and the offset after them."""
    fields = {}
    for name, decoder in _plan(flags):
        fields[name], at = decoder(buf, at)
    return fields, at


def header_fields(buf: bytes, at: int) -> dict[str, Any] | None:
    """The properties in the content header frame at ``buf[at:]`` (a whole frame), by
    name, as pamqp decodes them; None when that takes pamqp (:func:`decode_frame`)."""
    size, flags = _U32.unpack_from(buf, at + 3)[0], _FLAGS.unpack_from(buf, at + 19)[0]
    if flags & 1:
        return None
    try:
        fields, end = _fields(buf, at + 21, flags)
    except (IndexError, ValueError, struct.error):
        return None
    return fields if end == at + 7 + size else None


def _content_header(buf: bytes, at: int, end: int) -> ContentHeader | None:
    class_id, weight, body_size, flags = _HEADER.unpack_from(buf, at)
    if flags & 1:  # a second flag word: pamqp's
        return None
    fields, at = _fields(buf, at + 14, flags)
    if at != end:
        return None
    props = _Properties.__new__(_Properties)  # no __init__: it validates for nothing
    for name, unset in _UNSET:
        setattr(props, name, fields.get(name, unset))
    header = ContentHeader.__new__(ContentHeader)
    header.class_id, header.weight, header.body_size = class_id, weight, body_size
    header.properties = props
    return header


def _deliver(buf: bytes, at: int, end: int) -> spec.Basic.Deliver | None:
    frame = _Deliver.__new__(_Deliver)
    frame.consumer_tag, at = _short(buf, at)
    frame.delivery_tag, bits = _TAG_BITS.unpack_from(buf, at)
    frame.redelivered = bool(bits & 1)
    frame.exchange, at = _short(buf, at + 9)
    frame.routing_key, at = _short(buf, at)
    return frame if at == end else None


def deliver_fields(buf: bytes, at: int, end: int) -> tuple[str, int, bool] | None:
    """The consumer tag, delivery tag and redelivered flag of the ``basic.deliver``
    method frame whose payload is ``buf[at:end]``, without pamqp's object; None for any
    other frame, or one :func:`_deliver` would not decode."""
    if buf[at : at + 4] != DELIVER:
        return None
    try:  # (_short inline: this is read for every delivery)
        tag_at = at + 5 + buf[at + 4]
        consumer_tag = buf[at + 5 : tag_at].decode()
        delivery_tag, bits = _TAG_BITS.unpack_from(buf, tag_at)
        key_at = tag_at + 10 + buf[tag_at + 9]
        buf[tag_at + 10 : key_at].decode()  # the exchange and routing key: checked
        at = key_at + 1 + buf[key_at]
        buf[key_at + 1 : at].decode()
    except (IndexError, ValueError, struct.error):
        return None
    return (consumer_tag, delivery_tag, bool(bits & 1)) if at == end else None


def _confirm(buf: bytes, at: int, end: int, cls: type[Any]) -> Frame | None:
    if at + 9 != end:
        return None
    frame = object.__new__(cls)
    frame.delivery_tag, bits = _TAG_BITS.unpack_from(buf, at)
    frame.multiple = bool(bits & 1)
    if cls is _Nack:
        frame.requeue = bool(bits & 2)
    return frame


def _method(buf: bytes, at: int, end: int) -> Frame | None:
    index = _INDEX.unpack_from(buf, at)[0]
    if index == _DELIVER:
        return _deliver(buf, at + 4, end)
    if index == _ACK:
        return _confirm(buf, at + 4, end, _Ack)
    if index == _NACK:
        return _confirm(buf, at + 4, end, _Nack)
    return None


def fast_frame(kind: int, buf: bytes, at: int, end: int) -> Frame | None:
    if kind == _CONTENT_BODY:
        return ContentBody(buf[at:end])
    try:
        if kind == METHOD:
            return _method(buf, at, end)
        if kind == _CONTENT_HEADER:
            return _content_header(buf, at, end)
    except (IndexError, ValueError, struct.error):  # malformed: pamqp says how
        return None
    return None


def decode_frame(buf: bytes, at: int) -> tuple[int, int, Frame]:
    """The whole frame at ``buf[at:]`` as ``pamqp.frame.unmarshal`` returns it: (bytes
    used, channel, frame object); raises aiormq's ``InvalidFrameError`` when pamqp would
    raise."""
    kind, channel, size = FRAME.unpack_from(buf, at)
    end = at + 7 + size
    if size and buf[end] == FRAME_END:
        frame = fast_frame(kind, buf, at + 7, end)
        if frame is not None:
            return size + 8, channel, frame
    try:
        return pamqp.frame.unmarshal(buf[at : end + 1])
    except PAMQPException as exc:
        raise InvalidFrameError(str(exc)) from exc


def content_span(buf: bytes, at: int, channel: int) -> int:
    """Where the content frames of a delivery on ``channel`` (its header, then body frames
    up to the size the header gives) that start at ``buf[at:]`` end: the offset after
    them; 0 when they are not all in ``buf`` yet; -1 when other frames come there."""
    if len(buf) - at < 7:
        return 0
    kind, number, size = FRAME.unpack_from(buf, at)
    if kind != _CONTENT_HEADER or number != channel or size < 14:
        return -1
    if len(buf) < at + 8 + size:
        return 0
    if buf[at + 7 + size] != FRAME_END:
        return -1
    left = BODY_SIZE.unpack_from(buf, at + 11)[0]  # after class id and weight
    at += 8 + size
    while left > 0:
        if len(buf) - at < 7:
            return 0
        kind, number, size = FRAME.unpack_from(buf, at)
        if kind != _CONTENT_BODY or number != channel or size > left:
            return -1
        at += 8 + size
        if len(buf) < at:
            return 0
        if buf[at - 1] != FRAME_END:
            return -1
        left -= size
    return at
