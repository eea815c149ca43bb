"""Publishing a batch of messages on one channel: one write, confirms awaited together.

aiormq's ``basic_publish`` marshals, locks, writes and waits one message at a time:
about 150 µs of Python per message, the whole cost of an enqueue. Here a batch is
marshalled with pamqp (the ``basic.publish`` method frame once per destination; the
content frames by :mod:`._header`), written
as one buffer under the channel's lock, and registered for publisher confirms and
returns the way ``basic_publish`` registers a message (delivery tag, confirmation
future, message id), so aiormq's own confirm and return handling settles it. One future
per batch comes from the channel's future store (a store per message costs a fifth of
the throughput): aiormq fails it with the reason when the channel or connection
closes, and the batch's unconfirmed messages fail with that reason. Every message is
still mandatory, persistent and confirmed one by one.

That registration uses attributes of aiormq's ``Channel`` (6.8 to 7.x);
:func:`supported` checks for them, and the broker publishes one by one through
``basic_publish`` on a channel without them.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pamqp.frame
from aiormq.abc import ChannelFrame
from pamqp import commands as spec

from asyncq._batch import runs_by_size
from asyncq.brokers.amqp._header import content_frames

__all__ = ["Item", "Unsendable", "Written", "confirmed", "release", "stream_now", "supported",
           "write", "write_now"]

_ATTRIBUTES: Final = ("lock", "delivery_tag", "confirmations", "message_id_delivery_tag",
                      "write_queue", "create_future", "number", "max_content_size")
#: the ``asyncio.Lock`` behind aiormq 7's ``Channel.lock`` (in 6.x, ``lock`` is it)
_PRIVATE_LOCK: Final = "_Channel__lock"
#: set once aiormq's channel sent or received ``channel.close``
_CLOSE_EVENT: Final = "_Channel__close_event"
#: frame bytes per write (a batch of large messages goes in several writes)
_WRITE_BYTES: Final = 4 * 1024 * 1024


def supported(channel: Any) -> bool:
    """Whether ``channel`` (an aiormq Channel with confirms) has what :func:`publish` uses."""
    return (bool(getattr(channel, "publisher_confirms", False))
            and bool(getattr(channel, "on_return_raises", False))
            and all(hasattr(channel, name) for name in _ATTRIBUTES))


class Unsendable(Exception):
    """pamqp could not marshal a message (a name or header value): it was not sent."""


@dataclass(slots=True)
class Item:
    """One message to publish; ``properties.message_id`` must be set and unique."""

    exchange: str
    routing_key: str
    body: bytes
    properties: spec.Basic.Properties


@functools.lru_cache(maxsize=1024)
def _method_frame(channel_number: int, exchange: str, routing_key: str) -> bytes:
    """``basic.publish`` (mandatory) as frame bytes; pamqp validates the names."""
    if len(routing_key.encode()) > 255:
        raise ValueError("routing key longer than 255 bytes")
    method = spec.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=True)
    return pamqp.frame.marshal(method, channel_number)


def _frames(channel: Any, item: Item) -> bytes:
    number = channel.number
    return (_method_frame(number, item.exchange, item.routing_key)
            + content_frames(number, item.body, item.properties, channel.max_content_size))


@dataclass(slots=True)
class Written:
    """A batch on the wire: marshalling failures, and the messages awaiting confirms:
    their places in the batch, confirm futures, message ids (registered for returns)
    and delivery tags, side by side (not a tuple per message: in a burst thousands
    wait, each one more object for the garbage collector to visit)."""

    channel: Any
    outcomes: list[BaseException | None]
    indices: list[int] = field(default_factory=list)
    futures: list[asyncio.Future[Any]] = field(default_factory=list)
    message_ids: list[Any] = field(default_factory=list)
    tags: list[int] = field(default_factory=list)

    def drop_from(self, count: int) -> None:
        """Forget the messages registered after the first ``count``."""
        for column in (self.indices, self.futures, self.message_ids, self.tags):
            del column[count:]


async def write(channel: Any, items: Sequence[Item], timeout: float) -> Written:
    """Register ``items`` for confirms and write them, in order, under the channel's
    lock. A message pamqp cannot marshal (a bad name or header value) is not sent: its
    outcome is that error."""
    outcomes, framed = _marshal(channel, items)
    written = Written(channel, outcomes)
    try:
        async with asyncio.timeout(timeout):
            await _write(channel, framed, written)
    except BaseException:  # (a batch in several writes: what aiormq has is not awaited)
        release(written)
        raise
    return written


def stream_now(channel: Any) -> Any | None:
    """The stream :func:`write_now` writes to, when a write can go now: neither the
    channel nor the connection is closed or closing, the channel's lock is free and
    aiormq's write queue empty (every frame handed to aiormq before is then on the
    stream, so tags registered now follow the wire's order)."""
    connection = channel.connection
    stream = getattr(connection, "stream", None)
    if (stream is None or stream.transport.is_closing() or _closing(channel, connection)
            or _locked(channel) or not connection.write_queue.empty()):
        return None
    return stream


def write_now(channel: Any, stream: Any, items: Sequence[Item]) -> Written | None:
    """:func:`write`, straight to the connection's ``stream`` (:func:`stream_now`, in
    the same step), without waiting: for a burst whose callers keep the event loop
    (and aiormq's writer task) busy for a while, its first batches reach RabbitMQ
    meanwhile. ``None`` (nothing written or registered) for more than one write's bytes.
    The frames are written before their tags are registered (no confirm can come in
    between, in one step): a write that raises leaves the channel's count as it was."""
    outcomes, framed = _marshal(channel, items)
    payload = b"".join(data for _, data, _ in framed)
    if len(payload) > _WRITE_BYTES:
        return None
    stream.write(payload)
    written = Written(channel, outcomes)
    _register(channel, framed, written)
    return written


def _closing(channel: Any, connection: Any) -> bool:
    """Whether the channel or its connection is closed or closing (a ``channel.close``
    sent or received; aiormq's writer task cancelled: it sends ``connection.close``)."""
    if channel.is_closed or connection.is_closed:
        return True
    close_event = getattr(channel, _CLOSE_EVENT, None)
    if close_event is None or close_event.is_set():
        return True
    writer = getattr(connection, "_writer_task", None)
    return writer is None or writer.done() or writer.cancelling() > 0


def _locked(channel: Any) -> bool:
    """Whether the channel's lock is held (or cannot be told: then it counts as held).
    aiormq 7 keeps the ``asyncio.Lock`` behind a ``lock`` context manager."""
    lock = getattr(channel, _PRIVATE_LOCK, None) or getattr(channel, "lock", None)
    return not isinstance(lock, asyncio.Lock) or lock.locked()


def _marshal(channel: Any, items: Sequence[Item]
             ) -> tuple[list[BaseException | None], list[tuple[int, bytes, Any]]]:
    """Each item's frames; an item pamqp cannot marshal gets that error as outcome."""
    outcomes: list[BaseException | None] = [None] * len(items)
    framed: list[tuple[int, bytes, Any]] = []
    for index, item in enumerate(items):
        try:
            framed.append((index, _frames(channel, item), item.properties.message_id))
        except Exception as exc:
            outcomes[index] = Unsendable(f"{type(exc).__name__}: {exc}")
    return outcomes, framed


def _register(channel: Any, framed: list[tuple[int, bytes, Any]], written: Written) -> None:
    """The next delivery tags, a confirm future each, and the message ids for returns,
    as ``basic_publish`` registers them; added to ``written``."""
    create_future = channel.connection.loop.create_future
    confirmations, by_id = channel.confirmations, channel.message_id_delivery_tag
    indices, futures = written.indices, written.futures
    message_ids, tags = written.message_ids, written.tags
    tag = channel.delivery_tag
    for index, _, message_id in framed:
        tag += 1
        future = create_future()
        confirmations[tag] = future
        by_id[message_id] = tag
        indices.append(index)
        futures.append(future)
        message_ids.append(message_id)
        tags.append(tag)
    channel.delivery_tag = tag


async def confirmed(written: Written, timeout: float) -> list[BaseException | None]:
    """Wait for the confirms of a written batch; one outcome per item: ``None`` once
    confirmed, else aiormq's ``PublishError`` (returned), ``DeliveryError`` (nacked),
    the reason aiormq gave when the channel or connection closed (or ``CancelledError``),
    ``TimeoutError`` (no confirm within ``timeout`` s) or :class:`Unsendable`."""
    outcomes = written.outcomes
    if not written.futures:
        return outcomes
    closed = written.channel.create_future()  # aiormq fails it when the channel closes
    try:
        await _all_done(written.futures, closed, timeout)
    finally:
        reason = _close_reason(closed)
        closed.cancel()
    for index, future in zip(written.indices, written.futures, strict=True):
        if not future.done():
            future.cancel()  # aiormq drops a late confirm for a cancelled future
            outcomes[index] = reason or TimeoutError()
        elif future.cancelled():
            outcomes[index] = asyncio.CancelledError()
        else:
            outcomes[index] = _confirm_outcome(future)
    release(written)
    return outcomes


async def _write(channel: Any, framed: list[tuple[int, bytes, Any]], written: Written) -> None:
    """Register and write the frames in order, under the channel's lock, into
    ``written`` (:func:`release` forgets what it registered)."""
    async with channel.lock:
        for run in runs_by_size([len(data) for _, data, _ in framed], _WRITE_BYTES):
            chunk = framed[run]
            before = len(written.futures)
            _register(channel, chunk, written)
            payload = b"".join(data for _, data, _ in chunk)
            try:
                await channel.write_queue.put(ChannelFrame(payload=payload, should_close=False))
            except BaseException:  # not written: give the tags back, as basic_publish does
                _unregister(channel, written, before)
                raise


def release(written: Written) -> None:
    """Forget a batch's message ids and end its confirm futures (a late confirm for a
    cancelled one is dropped by aiormq), each exception marked as read. Idempotent; the
    publisher calls it however its wait for the confirms ended."""
    known = written.channel.message_id_delivery_tag
    for message_id, tag in zip(written.message_ids, written.tags, strict=True):
        if known.get(message_id) == tag:
            del known[message_id]
    for future in written.futures:
        if not future.done():
            future.cancel()
        elif not future.cancelled():
            future.exception()  # read: no "exception was never retrieved" for a return


def _close_reason(closed: asyncio.Future[Any]) -> BaseException | None:
    """Why the channel closed, if it did: aiormq's exception, else CancelledError."""
    if not closed.done():
        return None
    if closed.cancelled():
        return asyncio.CancelledError()
    return closed.exception()


def _unregister(channel: Any, written: Written, before: int) -> None:
    """Give back the tags of ``written``'s messages after the first ``before`` (the
    channel's last ones: the lock is held)."""
    channel.delivery_tag = written.tags[before] - 1
    known = channel.message_id_delivery_tag
    dropped = zip(written.tags[before:], written.futures[before:],
                  written.message_ids[before:], strict=True)
    for tag, future, message_id in dropped:
        channel.confirmations.pop(tag, None)
        if known.get(message_id) == tag:
            del known[message_id]
        future.cancel()
    written.drop_from(before)


async def _all_done(futures: list[asyncio.Future[Any]], closed: asyncio.Future[Any],
                    timeout: float) -> None:
    """Until every one of ``futures`` is done, ``closed`` is or ``timeout`` passed.

    Confirms come nearly always in order: waiting on the last one pending at a time
    costs one callback per batch rather than one per message.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = futures
    while pending:
        last = pending[-1]
        left = deadline - loop.time()
        if left <= 0:
            return
        await asyncio.wait([last, closed], timeout=left, return_when=asyncio.FIRST_COMPLETED)
        if not last.done():
            return
        pending = [future for future in pending if not future.done()]


def _confirm_outcome(future: asyncio.Future[Any]) -> BaseException | None:
    error = future.exception()
    if error is not None:
        return error
    if isinstance(future.result(), spec.Basic.Ack):
        return None
    return RuntimeError(f"unexpected confirmation {future.result()!r}")
