"""The content header and body frames of a published message, without pamqp's encoder.

pamqp marshals a content header by walking every property through a generic encoder:
about 10 µs per message, the largest single cost of publishing after the event loop.
The properties asyncq publishes are few and plain (short strings, a delivery mode, a
priority, a timestamp, an empty or absent headers table), and :func:`content_frames`
encodes those with a few ``struct`` calls into the very bytes pamqp would write (a test
compares the two). Anything else (a non-empty headers table, another property set, a
string over 255 bytes) goes through pamqp, which also raises its usual errors.
"""

from __future__ import annotations

import datetime as dt
import struct
from typing import Any, Final

import pamqp.frame
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

__all__ = ["content_frames"]

_FRAME_HEADER: Final = struct.Struct(">BHI")
_HEADER_START: Final = struct.Struct(">HxxQH")  # class id, weight, body size, flags
_TIMESTAMP: Final = struct.Struct(">Q")
_FRAME_END: Final = b"\xce"
_BASIC_CLASS: Final = 60
_CONTENT_HEADER, _CONTENT_BODY = 2, 3



def _short(value: Any) -> bytes | None:
    """A short string as AMQP writes it, or None when pamqp must handle it."""
    if not isinstance(value, str):
        return None
    data = value.encode()
    if len(data) > 255:
        return None
    return bytes((len(data),)) + data


def _octet(value: Any) -> bytes | None:
    if type(value) is not int or not 0 <= value <= 255:
        return None
    return bytes((value,))


def _set(value: Any) -> bool:
    return value is not None and value != ""


def _fast_properties(props: Any) -> tuple[int, bytes] | None:
    """(flags, encoded properties) for the plain case, else None."""
    if props.headers or _set(props.content_type) or _set(props.content_encoding) or _set(
            props.expiration) or _set(props.message_type) or _set(props.user_id) or _set(
            props.app_id) or _set(props.cluster_id):
        return None  # a table of values (pamqp chooses each one's type), or other fields
    flags, parts = (0, []) if props.headers is None else (0x2000, [b"\x00\x00\x00\x00"])
    for flag, value, encode in ((0x1000, props.delivery_mode, _octet),
                                (0x0800, props.priority, _octet),
                                (0x0400, props.correlation_id, _short),
                                (0x0200, props.reply_to, _short),
                                (0x0080, props.message_id, _short)):
        if value is not None and value != "":
            encoded = encode(value)
            if encoded is None:
                return None
            flags |= flag
            parts.append(encoded)
    stamp = props.timestamp
    if stamp is not None:
        if type(stamp) is not dt.datetime or stamp.tzinfo is None:
            return None
        flags |= 0x0040
        parts.append(_TIMESTAMP.pack(int(stamp.timestamp())))
    return flags, b"".join(parts)


def content_frames(channel: int, body: bytes, props: Any, max_content: int) -> bytes:
    """The content header frame and body frame(s) of one message on ``channel``."""
    fast = _fast_properties(props) if len(body) <= max_content else None
    if fast is None:
        return _pamqp_frames(channel, body, props, max_content)
    flags, encoded = fast
    header = _HEADER_START.pack(_BASIC_CLASS, len(body), flags) + encoded
    frames = [_FRAME_HEADER.pack(_CONTENT_HEADER, channel, len(header)), header, _FRAME_END]
    if body:
        frames += (_FRAME_HEADER.pack(_CONTENT_BODY, channel, len(body)), body, _FRAME_END)
    return b"".join(frames)


def _pamqp_frames(channel: int, body: bytes, props: Any, max_content: int) -> bytes:
    parts = [pamqp.frame.marshal(ContentHeader(0, len(body), props), channel)]
    parts.extend(pamqp.frame.marshal(ContentBody(body[start : start + max_content]), channel)
                 for start in range(0, len(body), max_content))
    return b"".join(parts)
