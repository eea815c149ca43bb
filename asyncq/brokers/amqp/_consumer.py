"""The consuming side of the RabbitMQ broker: a push consumer behind ``fetch``.

``basic.consume`` (manual ack, ``basic.qos`` prefetch) feeds an asyncio queue that
``fetch`` drains. Before a message reaches that queue, the consumer handles two cases
itself (:mod:`._divert`): a delayed message that arrived early goes back to a delay
bucket, and (on a classic queue) a redelivered message is republished with a delivery
counter.
Deliveries come through aiormq's consumer callback, not aio-pika's (:mod:`._received`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from aio_pika.abc import AbstractRobustChannel, AbstractRobustQueue

from asyncq._batch import raise_first
from asyncq._cancel import cancelled_by_caller
from asyncq.brokers import Consumer, DeadItem, Delivery, Settlement
from asyncq.brokers.amqp._acks import Book, Books, Entry, entries, settle
from asyncq.brokers.amqp._connection import Connection, Returned
from asyncq.brokers.amqp._dead import dead_properties
from asyncq.brokers.amqp._divert import Diverter
from asyncq.brokers.amqp._layout import (
    DEAD_EXCHANGE,
    REDELIVERIES_HEADER,
    Layout,
    copy_properties,
    header_count,
)
from asyncq.brokers.amqp._publisher import Publisher
from asyncq.brokers.amqp._received import Message, callbacks, take_over
from asyncq.brokers.amqp._replies import ReplyRoutes

__all__ = ["AmqpConsumer"]

logger = logging.getLogger("asyncq.brokers.amqp")

_MAX_PREFETCH = 65535


@dataclass(slots=True)
class _Tag:
    """``Delivery.tag``: the message, the task id its reply route is held under, and the
    book of its channel its delivery tag was entered in (None: the channel had closed)."""

    message: Message
    route: str | None
    book: Book | None


def _stale(delivery: Delivery) -> bool:
    """True when the delivery's channel died: it can no longer be acked."""
    book = delivery.tag.book
    return book is None or bool(book.channel.is_closed)


def _entry(delivery: Delivery) -> Entry:
    tag = delivery.tag
    return tag.book, tag.message.delivery_tag or 0


class AmqpConsumer(Consumer):
    """One worker's consumer on its own channel; see the broker's docstring."""

    server_id = None

    def __init__(self, conn: Connection, layout: Layout, publisher: Publisher,
                 replies: ReplyRoutes, queues: list[str], *, prefetch: int) -> None:
        self._conn = conn
        self._layout = layout
        self._publisher = publisher
        self._replies = replies
        self._queues = queues
        self._prefetch = max(1, min(prefetch, _MAX_PREFETCH))
        self._inbox: deque[Delivery] = deque()  # delivered, not handed out by fetch yet
        self._arrivals: list[asyncio.Future[None]] = []  # fetches wait on them
        self._held: dict[int, Delivery] = {}
        self._books = Books()  # outstanding delivery tags per channel (multiple-acks)
        self._channel: AbstractRobustChannel | None = None
        self._declared: dict[str, AbstractRobustQueue] = {}
        self._consuming: dict[str, str] = {}  # queue name -> consumer tag
        self._paused = False
        self._diverter = Diverter(conn, layout, publisher, self._settle)
        self._busy = 0
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting: set[asyncio.Timeout] = set()  # fetches' waits for a first delivery
        self._woken = False

    # -- starting ------------------------------------------------------------------
    async def start(self) -> None:
        await self._start()

    async def _start(self) -> None:
        if self._channel is not None:
            return
        conn = self._conn
        await conn.connect()
        with conn.errors("start consuming"):
            for queue in self._queues:
                await self._layout.queue(queue)
            async with asyncio.timeout(conn.timeout):
                channel = await conn.connection().channel(publisher_confirms=False)
            try:
                async with asyncio.timeout(conn.timeout):
                    await self._subscribe(channel)
            except BaseException:
                self._consuming.clear()
                await self._close_channel(channel)
                raise
        self._channel = channel

    async def _subscribe(self, channel: AbstractRobustChannel) -> None:
        # per consumer (global QoS is deprecated and quorum queues refuse it)
        await channel.set_qos(prefetch_count=self._prefetch)
        await self._consume(channel)

    async def _consume(self, channel: AbstractRobustChannel) -> None:
        """Consume every queue not consumed yet (idempotent; each queue declared once)."""
        for name in list(self._queues):
            if name in self._consuming:
                continue
            queue = self._declared.get(name)
            if queue is None:
                queue = self._declared[name] = await channel.declare_queue(
                    name, durable=True, arguments=self._layout.kind.main_args(name))
            slow, fast = callbacks(functools.partial(self._arrived, name))
            self._consuming[name] = tag = await queue.consume(slow, no_ack=False)
            await take_over(channel, tag, fast)  # without aio-pika's message and task

    # -- receiving -----------------------------------------------------------------
    def _arrived(self, queue: str, message: Message) -> None:
        """Book the delivery tag; hand a plain message over at once, without a task."""
        book = self._books.enter(message)
        if self._closed or self._diverter.special(message):
            self._busy += 1
            self._idle.clear()
            task = asyncio.get_running_loop().create_task(
                self._on_message(queue, message, book))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        self._accept(queue, message, book)

    async def _on_message(self, queue: str, message: Message, book: Book | None) -> None:
        """Counted busy until done, hand-back included: close() closes the channel only
        once these are (an ack after the channel's close makes RabbitMQ drop the whole
        connection)."""
        try:
            if await self._diverter.diverted(queue, message):
                return
            delivery = self._accept(queue, message, book)
            if self._closed:  # arrived while close() hands everything back: this one too
                await self.requeue([delivery])
        finally:
            self._busy -= 1
            if self._busy == 0:
                self._idle.set()

    def _accept(self, queue: str, message: Message, book: Book | None) -> Delivery:
        reply_to = message.reply_to
        route = message.correlation_id if reply_to else None
        if route is not None and reply_to is not None:
            self._replies.hold(route, reply_to)
        delivery = Delivery(message.body, queue, self._count(message), _Tag(message, route, book))
        self._held[id(delivery)] = delivery
        self._inbox.append(delivery)
        arrivals = self._arrivals
        if arrivals:  # each waiting fetch (nearly always one) looks at the inbox
            for arrival in arrivals:
                if not arrival.done():
                    arrival.set_result(None)
            arrivals.clear()
        return delivery

    def _count(self, message: Message) -> int:
        headers = message.headers
        earlier = header_count(headers, REDELIVERIES_HEADER) if headers else 0
        if self._layout.kind.quorum:
            earlier += header_count(headers, "x-delivery-count")
        elif message.redelivered:
            earlier += 1  # the counting republish failed; at least this one
        return earlier + 1

    # -- the Consumer protocol -------------------------------------------------------
    async def fetch(self, limit: int, timeout: float) -> Sequence[Delivery]:
        await self._start()
        if not self._paused and len(self._consuming) < len(self._queues):
            await self.resume()  # an earlier resume failed: every fetch tries again
        out: list[Delivery] = []
        if limit <= 0:
            return out
        inbox = self._inbox
        if not inbox and not await self._wait_for_inbox(timeout):
            return out
        while len(out) < limit and inbox:
            delivery = inbox.popleft()
            if _stale(delivery):  # its channel died: RabbitMQ redelivers it
                self._forget(delivery)
            else:
                out.append(delivery)
        return out

    async def _wait_for_inbox(self, timeout: float) -> bool:
        """:meth:`_wait_arrival` until one is in the inbox (one that another fetch took
        first does not end the wait): True when one is there."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._inbox:
            if not await self._wait_arrival(max(deadline - loop.time(), 0.0), loop):
                return bool(self._inbox)  # timed out, or woken
        return True

    async def _wait_arrival(self, timeout: float, loop: asyncio.AbstractEventLoop) -> bool:
        """Wait up to ``timeout`` for a delivery (not at all after :meth:`wake`): True
        when one arrived (another fetch may have taken it since)."""
        woken, self._woken = self._woken, False
        arrival = loop.create_future()
        arrivals, waits = self._arrivals, self._waiting
        arrivals.append(arrival)
        try:
            async with asyncio.timeout(0 if woken else timeout) as waiting:
                waits.add(waiting)
                await arrival
        except TimeoutError:
            pass
        finally:
            waits.discard(waiting)
            if arrival in arrivals:  # timed out or cancelled: no longer one to wake
                arrivals.remove(arrival)
        return arrival.done() and not arrival.cancelled()

    def wake(self) -> None:
        """End fetch's wait now: what arrives stays in the inbox (a wait takes nothing
        out of it), and close() hands it back."""
        self._woken = True
        now = asyncio.get_running_loop().time()
        for waiting in self._waiting:
            waiting.reschedule(now)

    def _forget(self, delivery: Delivery) -> bool:
        if self._held.pop(id(delivery), None) is None:
            return False
        if delivery.tag.route is not None:
            self._replies.release(delivery.tag.route)
        return True

    async def ack(self, items: Sequence[Settlement]) -> None:
        await self._finish([item.delivery for item in items], ack=True)

    async def requeue(self, deliveries: Sequence[Delivery], *, counted: bool = False) -> None:
        """Hand back; without ``counted``, keep the count: republish a copy, then ack.

        A plain ``nack(requeue=True)`` marks the message redelivered, right for a counted
        hand-back but not for one that is not a failed delivery (shutdown, a suspect
        running alone). Where the copy cannot be published, the message is nacked.
        """
        if counted:
            await self._finish(deliveries, ack=False)
            return
        # claim each first: close() and a late callback may both try to hand it back
        claimed = [delivery for delivery in deliveries if self._forget(delivery)]
        done = await asyncio.gather(*(self._hand_back(d) for d in claimed))
        if not all(done):
            logger.warning("could not hand back %d message(s): their channel closed; "
                           "RabbitMQ redelivers them", done.count(False))

    async def _hand_back(self, delivery: Delivery) -> bool:
        message = delivery.tag.message
        if not _stale(delivery):
            properties = copy_properties(message, {
                REDELIVERIES_HEADER: delivery.delivery_count - 1, "x-delivery-count": None})
            try:
                await self._publisher.send("", delivery.queue, message.body, properties)
            except Exception as exc:
                logger.debug("handing back a message of %r by copy failed: %s",
                             delivery.queue, self._conn.describe(exc))
            else:
                return await settle([_entry(delivery)], ack=True) == 0
        return await settle([_entry(delivery)], ack=False) == 0

    async def pause(self) -> None:
        """Stop deliveries (``basic.cancel``) and hand back the ones not handed out."""
        self._paused = True
        if self._channel is None or not self._consuming:
            return
        await self._cancel_consuming()
        await self._wait_callbacks()
        waiting = list(self._inbox)
        self._inbox.clear()
        await self.requeue(waiting)

    async def resume(self) -> None:
        """Consume again; if it fails, the next :meth:`fetch` tries again."""
        self._paused = False
        if self._channel is None or self._closed:
            return
        with self._conn.errors("resume consuming"):
            try:
                async with asyncio.timeout(self._conn.timeout):
                    await self._consume(self._channel)
            except asyncio.CancelledError:
                if cancelled_by_caller():
                    raise
                raise ConnectionError("the channel closed while consuming resumed") from None

    async def cancel_queue(self, queue: str) -> None:
        """``basic.cancel`` of ``queue``'s consumer; what it delivered but ``fetch`` did not
        hand out yet goes back (uncounted). Unacked deliveries handed out stay held until
        the worker settles them."""
        if queue in self._queues:
            self._queues.remove(queue)
        tag = self._consuming.pop(queue, None)
        if tag is not None and self._channel is not None:
            await self._cancel_tag(queue, tag)
            await self._wait_callbacks()
        waiting = list(self._inbox)
        self._inbox.clear()
        self._inbox.extend(delivery for delivery in waiting if delivery.queue != queue)
        await self.requeue([d for d in waiting if d.queue == queue])

    async def add_queue(self, queue: str) -> None:
        if queue in self._queues:
            return
        with self._conn.errors("add a queue"):
            await self._layout.queue(queue)
        self._queues.append(queue)
        if self._channel is not None and not self._paused:
            await self.resume()  # consumes what is not consumed yet (a failure: next fetch)

    async def _finish(self, deliveries: Sequence[Delivery], *, ack: bool) -> None:
        failed = await settle([_entry(delivery) for delivery in deliveries
                               if self._forget(delivery)], ack=ack)
        if failed:
            logger.warning("could not %s %d message(s): their channel closed; RabbitMQ "
                           "redelivers them", "ack" if ack else "requeue", failed)

    async def dead_letter(self, items: Sequence[DeadItem]) -> None:
        live = [item for item in items if id(item.delivery) in self._held]
        for item in [item for item in live if _stale(item.delivery)]:
            self._forget(item.delivery)  # RabbitMQ redelivers it; dead-lettered next time
            live.remove(item)
        results = await asyncio.gather(*(self._publish_dead(item) for item in live),
                                       return_exceptions=True)
        await self._finish([item.delivery for item, result in zip(live, results, strict=True)
                            if result is None], ack=True)
        raise_first(results)

    async def _publish_dead(self, item: DeadItem) -> None:
        queue = item.delivery.queue
        properties = dead_properties(item, item.delivery.tag.message)
        send = self._publisher.send
        with self._conn.errors("dead-letter"):
            try:
                await send(DEAD_EXCHANGE, queue, item.delivery.body, properties)
            except Returned:  # the dead-letter queue was deleted: declare it again
                self._layout.forget(queue)
                await self._layout.queue(queue)
                await send(DEAD_EXCHANGE, queue, item.delivery.body, properties)

    async def close(self) -> None:
        """Cancel consumption, hand back whatever is held, close the channel."""
        channel, self._channel = self._channel, None
        self._closed = True
        if channel is None:
            return
        await self._cancel_consuming()
        await self._wait_callbacks()
        await self.requeue(list(self._held.values()))
        self._inbox.clear()
        await self._close_channel(channel)

    async def _cancel_consuming(self) -> None:
        for name, tag in list(self._consuming.items()):
            await self._cancel_tag(name, tag)
        self._consuming.clear()

    async def _cancel_tag(self, queue: str, tag: str) -> None:
        """``basic.cancel`` of one consumer; a failure (the channel closed) is logged."""
        try:
            async with asyncio.timeout(self._conn.timeout):
                await self._declared[queue].cancel(tag)
        except asyncio.CancelledError:
            if cancelled_by_caller():
                raise
            logger.debug("cancelling consumer %s: the channel closed", tag)
        except Exception as exc:
            logger.debug("cancelling consumer %s: %s", tag, exc)

    async def _wait_callbacks(self) -> None:
        try:
            async with asyncio.timeout(self._conn.timeout):
                await self._idle.wait()
        except TimeoutError:
            logger.warning("gave up waiting for %d message callback(s)", self._busy)

    async def _close_channel(self, channel: AbstractRobustChannel) -> None:
        try:
            async with asyncio.timeout(self._conn.timeout):
                await channel.close()
        except Exception as exc:
            logger.debug("closing the consumer channel: %s", self._conn.describe(exc))

    async def _settle(self, messages: Sequence[Message], *, ack: bool
                      ) -> int:
        """Ack (or requeue) without raising; how many could not be (:func:`settle`)."""
        return await settle(entries(self._books, messages), ack=ack)
