"""Reading frames on asyncq's own AMQP connections; deliveries and publisher confirms
handled without aiormq's per-frame queue, tasks and ``call_soon`` calls.

aiormq reads every frame with three ``readexactly`` calls under a lock, decodes it with
pamqp's generic decoder and puts it on its channel's queue for the channel's reader
task, which gathers a delivery's three frames and runs the consumer callback in a task
of its own, and settles a multiple confirm with a ``call_soon`` per message.
:class:`FrameReader` reads what the socket has in one call and cuts the frames out of
it (:mod:`._decode`). Two kinds of frames are handled right there, in order with the
frames before them (when the channel's reader still has frames queued, the reader
waits a moment for it to take them, else the frame queues behind them, aiormq's way):

* a delivery to asyncq's consumer (a :class:`~._received.Direct` callback) whose three
  frames are all read: the deliveries of one read go to the consumer together in one
  ``call_soon``;
* a ``basic.ack`` / ``basic.nack`` on a channel with publisher confirms: its messages'
  futures are settled as aiormq's ``Channel._confirm_delivery`` settles them.

Every other frame goes to aiormq's loop as aiormq's own receiver would give it;
aiormq's loop then sees a heartbeat after each read whose frames were all handled here,
so that it knows the connection is alive.

Only connections asyncq opens read this way (:class:`AsyncqConnection`, which
:class:`Underlay` builds for :class:`~._hosts.NodeRing`), and all their channels are
asyncq's: aiormq's own classes are untouched, so an application's own aio-pika
connections are too. The reader is handed over at :data:`READER`, aiormq's private
connection loop; what it relies on there and in aiormq's channel is pinned by a test.
The connection also keeps the stream aiormq's writer loop (:data:`WRITER`) writes to,
for the publisher's early writes (:func:`._frames.write_now`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Final

import aiormq.abc
import aiormq.connection
from aio_pika.abc import UnderlayConnection
from aiormq.channel import Returning
from aiormq.exceptions import AMQPConnectionError, DeliveryError
from pamqp.commands import Basic
from pamqp.heartbeat import Heartbeat

from asyncq.brokers.amqp._decode import (
    BODY_SIZE,
    DELIVER,
    FRAME,
    FRAME_END,
    METHOD,
    Frame,
    content_span,
    decode_frame,
    deliver_fields,
    fast_frame,
    header_fields,
)
from asyncq.brokers.amqp._received import Direct, Received

__all__ = ["READER", "WRITER", "AsyncqConnection", "FrameReader", "Underlay"]

logger = logging.getLogger("asyncq.brokers.amqp")

#: aiormq's connection loop (``Connection.__reader(frame_receiver)``), which a test pins
READER: Final = "_Connection__reader"
#: aiormq's writer loop (``Connection.__writer(writer)``), handed its stream by us
WRITER: Final = "_Connection__writer"
#: when aiormq's loop last got a frame, which its stuck-connection check looks at
LAST_FRAME: Final = "_Connection__last_frame_time"
#: bytes asked of the socket at a time (a larger frame is read on until it is whole)
_CHUNK: Final = 1 << 16
_HEARTBEAT: Final = (8, 0, Heartbeat())
#: :meth:`FrameReader._handle`: the channel's reader has frames queued
_WAIT: Final = -2
#: how long a frame waits for its channel's reader to take the frames queued before it
_QUEUED_WAIT: Final = 0.05

_Ack = Basic.Ack
#: the first payload bytes of the confirms :meth:`FrameReader._confirm` settles
_CONFIRMS: Final = frozenset(cls.index.to_bytes(4, "big") for cls in (Basic.Ack, Basic.Nack))

#: a delivery taken here: its consumer's callback (:attr:`Direct.on_message`), and itself
Taken = tuple[Callable[[Received], None], Received]


def _connection_error(exc: OSError) -> AMQPConnectionError:
    """aiormq's error for a failed read (``FrameReceiver.get_frame``)."""
    if isinstance(exc, ConnectionRefusedError):
        return AMQPConnectionError(f"Server connection refused: {exc!r}")
    if isinstance(exc, ConnectionResetError):
        return AMQPConnectionError(f"Server connection reset: {exc!r}")
    if isinstance(exc, ConnectionError):
        return AMQPConnectionError(f"Server connection error: {exc!r}")
    return AMQPConnectionError(f"Server communication error: {exc!r}")


def _delivery_size(buf: bytes, at: int, need: int) -> int:
    """At least how many bytes from ``at`` the delivery there takes: its method frame
    (``need`` bytes), its content header frame and its body with one frame's overhead."""
    header = at + need
    if len(buf) - header < 19:  # the header's frame size and body size are not read yet
        return need + 19
    header_size: int = FRAME.unpack_from(buf, header)[2]
    body_size: int = BODY_SIZE.unpack_from(buf, header + 11)[0]
    return need + 8 + header_size + 8 + body_size


def _body(buf: bytes, at: int, end: int) -> bytes:
    """The body of the body frames between ``at`` and ``end`` (checked by content_span)."""
    parts = []
    while at < end:
        size = FRAME.unpack_from(buf, at)[2]
        parts.append(buf[at + 7 : at + 7 + size])
        at += 8 + size
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _settle(confirmation: asyncio.Future[Any], frame: Any, tag: int) -> None:
    """aiormq's ``Channel._confirm_delivery`` for one confirmed message."""
    if isinstance(confirmation, Returning):
        return  # returned: aiormq failed its future with the return already
    if confirmation.done():
        logger.log(logging.DEBUG if confirmation.cancelled() else logging.WARNING,
                   "Delivery tag %r confirmed %r was ignored", tag, frame)
        return
    if isinstance(frame, _Ack):
        confirmation.set_result(frame)
    else:
        confirmation.set_exception(DeliveryError(None, frame))


class FrameReader:
    """What aiormq's connection loop iterates over (``FrameReceiver``'s interface once
    the handshake is done): ``(bytes used, channel, frame)`` per frame, as
    ``pamqp.frame.unmarshal`` gives them; deliveries to a :class:`Direct` callback go to
    it instead (see the module docstring).

    Only the connection's reader task reads (the handshake, which aiormq's receiver
    serialises with a lock, is over), so there is no lock."""

    def __init__(self, reader: asyncio.StreamReader, channels: dict[int, Any],
                 alive: Callable[[], None] = lambda: None) -> None:
        self.reader = reader
        self.started = True
        self._channels = channels
        self._alive = alive  # bytes came while a read goes on (a large delivery)
        self._buffer = b""
        self._at = 0
        self._taken: list[Taken] = []

    def __aiter__(self) -> FrameReader:
        return self

    async def __anext__(self) -> tuple[int, int, Frame]:
        return await self.get_frame()

    async def get_frame(self) -> tuple[int, int, Frame]:
        buf, at, took = self._buffer, self._at, False
        while True:
            left, want = len(buf) - at, 7
            if left >= 7:
                want = need = 8 + FRAME.unpack_from(buf, at)[2]
                if left >= need:
                    end = self._handle(buf, at, need)
                    if end == _WAIT:
                        end = await self._after_queued(buf, at, need)
                    if end > 0:
                        at = self._at = end
                        took = True
                        continue
                    if end < 0:
                        self._at = at + need
                        return decode_frame(buf, at)
                    want = _delivery_size(buf, at, need)
            if took:  # before reading on: aiormq's loop learns the connection is alive
                return _HEARTBEAT
            if left == 0 and self.reader.at_eof():
                raise StopAsyncIteration
            buf, at = await self._fill(max(want, left + 1)), 0

    async def _fill(self, need: int) -> bytes:
        """Read on until ``need`` bytes from the current offset are buffered (joined
        once: a large message is not copied over and over)."""
        parts = [self._buffer[self._at :]]
        have = len(parts[0])
        while have < need:
            try:
                chunk = await self.reader.read(max(_CHUNK, need - have))
            except OSError as exc:
                raise _connection_error(exc) from exc
            if not chunk:
                raise AMQPConnectionError(
                    f"Server connection unexpectedly closed. Read {have} bytes but "
                    f"{need} bytes expected")
            parts.append(chunk)
            have += len(chunk)
            if have < need:  # aiormq hears of no frame until the delivery is whole
                self._alive()
        self._buffer, self._at = b"".join(parts), 0
        return self._buffer

    # -- deliveries and confirms ----------------------------------------------------------
    def _take(self, buf: bytes, at: int, need: int, *, waited: bool = False) -> int:
        """Take the delivery whose ``basic.deliver`` frame (``need`` bytes) is at ``at``
        for its :class:`Direct` callback: the offset after its content frames; 0 when
        they are not all read yet; -1 when it goes aiormq's way; :data:`_WAIT` when the
        channel's reader has frames to do first."""
        number = FRAME.unpack_from(buf, at)[1]
        channel = self._channels.get(number)
        if channel is None or channel.is_closed or buf[at + need - 1] != FRAME_END:
            return -1
        end = content_span(buf, at + need, number)
        if end <= 0:
            return end
        deliver = deliver_fields(buf, at + 7, at + need - 1)
        if deliver is None:
            return -1
        callback = channel.consumers.get(deliver[0])
        if type(callback) is not Direct:
            return -1
        if not channel.frames.empty():  # earlier frames first, deliveries in order
            return -1 if waited else _WAIT
        header = at + need
        fields = header_fields(buf, header)
        if fields is None:  # pamqp's, then
            fields = Received.of_properties(decode_frame(buf, header)[2].properties)
        if not self._taken:
            asyncio.get_running_loop().call_soon(self._hand_over)
        body = _body(buf, header + 8 + FRAME.unpack_from(buf, header)[2], end)
        self._taken.append((callback.on_message,
                            Received(channel, deliver[1], deliver[2], fields, body)))
        return end

    def _handle(self, buf: bytes, at: int, need: int, *, waited: bool = False) -> int:
        """A delivery (:meth:`_take`) or a publisher confirm (:meth:`_confirm`) handled
        here: the offset after it; 0: more bytes needed; -1: aiormq's way; :data:`_WAIT`:
        after what the channel's reader has queued."""
        if buf[at] != METHOD:
            return -1
        index = buf[at + 7 : at + 11]
        if index == DELIVER:
            return self._take(buf, at, need, waited=waited)
        if index in _CONFIRMS:
            return self._confirm(buf, at, need, waited=waited)
        return -1

    async def _after_queued(self, buf: bytes, at: int, need: int) -> int:
        """:meth:`_handle`, once the channel's reader took what it has queued (the first
        deliveries after a consumer became a :class:`Direct` one, a confirm after a
        returned message), or -1 if it does not within a moment (the frame then queues
        behind, as aiormq does)."""
        channel = self._channels[FRAME.unpack_from(buf, at)[1]]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_QUEUED_WAIT):
                await channel.frames.join()
        return self._handle(buf, at, need, waited=True)

    def _confirm(self, buf: bytes, at: int, need: int, *, waited: bool = False) -> int:
        """Settle the publisher confirms of the ``basic.ack`` / ``basic.nack`` at ``at``
        as aiormq's channel does (``_on_confirm_frame``), without its task hop and its
        ``call_soon`` per confirmed message: the offset after it, -1 or :data:`_WAIT`."""
        channel = self._channels.get(FRAME.unpack_from(buf, at)[1])
        if channel is None or channel.is_closed or not channel.publisher_confirms:
            return -1
        frame = fast_frame(METHOD, buf, at + 7, at + need - 1)
        confirmations = channel.confirmations
        if frame is None or buf[at + need - 1] != FRAME_END or (
                frame.delivery_tag not in confirmations):
            return -1  # aiormq's: it logs an unexpected confirm
        if not channel.frames.empty():  # a returned message first
            return -1 if waited else _WAIT
        top = frame.delivery_tag
        for tag in [t for t in confirmations if t <= top] if frame.multiple else [top]:
            _settle(confirmations.pop(tag), frame, tag)
        return at + need

    def _hand_over(self) -> None:
        taken, self._taken = self._taken, []
        for on_message, message in taken:
            try:
                on_message(message)
            except Exception:
                logger.exception("the consumer callback failed")


# -- the connection ----------------------------------------------------------------------
class AsyncqConnection(aiormq.connection.Connection):
    """aiormq's connection, reading frames with a :class:`FrameReader` once connected
    and keeping its writer loop's stream (:attr:`stream`)."""

    async def _read_frames(self, receiver: Any) -> None:
        await getattr(super(), READER)(FrameReader(receiver.reader, self.channels,
                                                   self._alive))

    #: the stream aiormq's writer loop writes to (the publisher writes a burst's first
    #: batches straight to it, while the loop runs: :func:`._frames.write_now`)
    stream: asyncio.StreamWriter | None = None

    def _write_frames(self, writer: asyncio.StreamWriter) -> Coroutine[Any, Any, None]:
        """aiormq's writer loop itself (no coroutine around it: every frame it writes
        would resume one more), the stream kept; once the loop ended, the stream is
        closing or the writer task done, which :func:`._frames.stream_now` checks."""
        self.stream = writer
        loop: Coroutine[Any, Any, None] = getattr(super(), WRITER)(writer)
        return loop

    def _alive(self) -> None:
        """Part of a delivery came: the connection is not stuck. aiormq's own reader
        saw a frame every ``frame_max`` bytes; this one reads a delivery whole, which can
        take longer than the grace of 3 x (heartbeat + 1) s."""
        setattr(self, LAST_FRAME, self.loop.time())


setattr(AsyncqConnection, READER, AsyncqConnection._read_frames)  # what connect() starts
setattr(AsyncqConnection, WRITER, AsyncqConnection._write_frames)


class Underlay(UnderlayConnection):
    """aio-pika's transport, on an :class:`AsyncqConnection`."""

    @classmethod
    async def make_connection(cls, url: Any, timeout: Any = None,
                              **kwargs: Any) -> aiormq.abc.AbstractConnection:
        connection = AsyncqConnection(url, **kwargs)
        await asyncio.wait_for(connection.connect(), timeout=timeout)
        await connection.ready()
        return connection
