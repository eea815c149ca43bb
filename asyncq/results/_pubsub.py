"""Reading the replies a pub/sub connection already holds, without redis-py's per-message cost.

``PubSub.get_message`` handles one message per call: a health check, a retry wrapper,
a read deadline (``asyncio.timeout``), the RESP3 push handler (which formats every
message into a debug log line) and a dict per message. A process awaiting thousands of
its own tasks gets its results in bursts (a worker stores a batch at a time), and that
per-message cost was a third of its CPU. So after each ``get_message`` the listener takes
every further reply that hiredis has already received, parsed once, from the parser's
buffer (:func:`buffered`): no socket read, hence nothing to retry or time out.

This leans on redis-py's hiredis parser (``connection._parser._reader``); with any
other parser (no hiredis, another redis-py layout) :func:`buffered` returns None and
the listener reads one message per ``get_message`` as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

import msgpack

__all__ = ["EMPTY", "MESSAGE_KINDS", "batch_records", "buffered", "read_buffered"]

#: The reply kinds that carry a published message (SUBSCRIBE / SSUBSCRIBE).
MESSAGE_KINDS: Final = (b"message", b"smessage")

try:
    from redis._parsers.hiredis import NOT_ENOUGH_DATA, _AsyncHiredisParser
except ImportError:  # pragma: no cover - another redis-py layout: one message at a time
    _AsyncHiredisParser = None  # type: ignore[assignment,misc]
    NOT_ENOUGH_DATA = object()

#: What :func:`buffered` returns when the buffer holds no complete reply.
EMPTY: Final = NOT_ENOUGH_DATA

Gets = Callable[[], Any]


def buffered(pubsub: Any) -> tuple[Gets, Any] | None:
    """``(gets, parser)``: ``gets()`` returns the next complete reply already received on
    ``pubsub``'s connection (:data:`EMPTY` when there is none, an exception object for
    an error reply); None when the connection's parser is not hiredis's."""
    connection = getattr(pubsub, "connection", None)
    parser = getattr(connection, "_parser", None)
    if _AsyncHiredisParser is None or not isinstance(parser, _AsyncHiredisParser):
        return None
    reader = getattr(parser, "_reader", None)
    if reader is None or not getattr(parser, "_connected", False):
        return None
    gets: Gets = reader.gets
    return gets, parser


async def read_buffered(pubsub: Any, on_message: Callable[[str, bytes], None],
                        on_other: Callable[[dict[str, Any]], None]) -> None:
    """Hand every complete reply already received on ``pubsub``'s connection to
    ``on_message(channel, data)`` (a published message) or, as ``get_message`` would
    return it, to ``on_other`` (anything else); nothing without hiredis."""
    source = buffered(pubsub)
    if source is None:
        return
    gets, parser = source
    while (reply := gets()) is not EMPTY:
        if isinstance(reply, BaseException):
            raise reply
        if len(reply) == 3 and reply[0] in MESSAGE_KINDS:
            channel, data = reply[1], reply[2]
            if isinstance(data, bytes):
                on_message(channel.decode() if isinstance(channel, bytes) else channel, data)
            continue
        # anything else as get_message has it: a RESP3 push through the parser's
        # handler, the health check's answer dropped
        if isinstance(reply, list) and type(reply) is not list:
            reply = await parser.handle_push_response(reply)
        if reply in pubsub.health_check_response:
            continue
        message = await pubsub.handle_message(reply)
        if message is not None:
            on_other(message)


def batch_records(data: bytes) -> Iterator[tuple[bytes, bytes]] | None:
    """The ``(key, record)`` pairs of a reply batch (a msgpack array ``[key, record,
    ...]`` of strings: :func:`asyncq.records.lua_prelude`), None when ``data`` is not one."""
    try:
        flat = msgpack.unpackb(data, raw=True)
    except (ValueError, msgpack.UnpackException):
        return None
    if type(flat) is not list or len(flat) % 2 or (flat and set(map(type, flat)) != {bytes}):
        return None
    items = iter(flat)
    return zip(items, items, strict=True)
