"""Publishing to RabbitMQ for :class:`~asyncq.brokers.amqp.AmqpBroker`.

Concurrent ``publish`` calls are gathered (:class:`~asyncq._batch.Coalescer`) and
written in one go by :mod:`asyncq.brokers.amqp._frames`; each caller then waits for
its own message's publisher confirm, on the one future the coalescer gave it (settled
by the batch's settle task: no second future per message). A batch is written while
earlier ones still await their confirms (up to ``_WINDOW`` batches), in order on one
channel. Every message is mandatory and persistent, and a caller returns only once
RabbitMQ confirmed it.

A burst of callers in one turn of the event loop (``gather`` of thousands of
enqueues) all run before the batch runner does: each full batch of plain messages to
declared queues is written while they run (:meth:`Publisher._write_now`, up to
``_EARLY`` batches awaiting confirms), so RabbitMQ works while the rest are prepared.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

from aiormq import exceptions as amqp_errors
from aiormq import spec

from asyncq._batch import Coalescer, raise_first
from asyncq._cancel import cancelled_by_caller
from asyncq.brokers import Outgoing
from asyncq.brokers.amqp import _frames as _amqp_publish
from asyncq.brokers.amqp._connection import Connection, Returned
from asyncq.brokers.amqp._inflight import InFlight, batch_bytes
from asyncq.brokers.amqp._layout import ETA_HEADER, Layout, bucket_ms, new_properties
from asyncq.brokers.amqp._replies import ReplyRoutes
from asyncq.errors import AsyncqError, BrokerUnavailable, PublishError

__all__ = ["Publisher"]


#: written batches awaiting their confirms at once, per broker: with 8, a burst of
#: 30,000 concurrent enqueues waited for confirms with 0.8 of the machine's 2 cores
#: idle; 16 took one-at-a-time enqueues 1.01-1.13x (runs differ), and more gained no more
#: (benchmarks/README.md, "the confirm window", 2026-12-05)
_WINDOW = 16
#: written batches awaiting confirms, for a burst's batches written while its callers
#: run (:meth:`Publisher._write_now`): nothing reads a confirm until they have all run,
#: so the burst goes out whole, within the bytes below (a burst of 30,000: 16 batches
#: went early and the rest waited ~0.2 s for the runner; with 64, all of it went)
_EARLY = 64
#: and the bytes of their messages (the frames stay here until RabbitMQ reads them)
_WINDOW_BYTES = 16 << 20


def _resolve(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class Publisher:
    """The publishing side of one :class:`AmqpBroker` (its ``publish``, ``publish_many``
    and ``send``)."""

    def __init__(self, conn: Connection, layout: Layout, replies: ReplyRoutes) -> None:
        self._conn = conn
        self._layout = layout
        self._replies = replies
        self._batcher: Coalescer[Outgoing, None] = Coalescer(
            into=self._flush, closed=lambda: self._lost("the broker closed before it was sent"),
            early=self._write_now)
        self._gathered: Coalescer[_amqp_publish.Item, None] = Coalescer(
            into=self._flush_items,
            closed=lambda: self._lost("the broker closed before it was sent"))
        self._window = InFlight(_WINDOW, _WINDOW_BYTES)
        self._settling: set[asyncio.Task[None]] = set()
        #: the publishing channel's aiormq channel, as :meth:`channel` last found it
        self._raw: Any = None

    async def close(self) -> None:
        """Fail what is still gathering or awaiting confirms (the connection is closing)."""
        await self._batcher.aclose()
        await self._gathered.aclose()
        for task in list(self._settling):
            task.cancel()
        await asyncio.gather(*self._settling, return_exceptions=True)
        self._window = InFlight(_WINDOW, _WINDOW_BYTES)  # the next connect may be on another loop

    async def _destination(self, message: Outgoing) -> tuple[str, str]:
        exchange = message.exchange or self._layout.exchange
        routing_key = message.routing_key or message.queue
        if exchange == self._layout.exchange:
            await self._layout.queue(message.queue)
        elif not await self._layout.exchange_exists(exchange):
            raise PublishError(f"exchange {exchange!r} does not exist: declare it with "
                               "AmqpBroker(exchanges=...) or broker.declare_exchange()")
        return exchange, routing_key

    # -- publishing ----------------------------------------------------------------------
    async def publish(self, message: Outgoing) -> None:
        if not self._conn.opened:  # (not a coroutine per message to learn it is)
            await self._conn.connect()
        try:  # not `with conn.errors(...)`: a context manager costs more than the rest
            try:
                await self._batcher.future(message)
            except Returned:  # a queue deleted under us: declare again, once
                self._layout.forget(message.queue)
                await self._batcher.future(message)
        except Exception as exc:
            raise self._conn.mapped(exc, "publish") from None

    async def publish_many(self, messages: Sequence[Outgoing]) -> None:
        await self._conn.connect()
        with self._conn.errors("publish"):
            outcomes = await self._batcher.submit_many(messages)
            returned = [m for m, out in zip(messages, outcomes, strict=True)
                        if isinstance(out, Returned)]
            raise_first(out for out in outcomes if not isinstance(out, Returned))
            if returned:  # queues deleted under us: declare again, once
                for message in returned:
                    self._layout.forget(message.queue)
                raise_first(await self._batcher.submit_many(returned))

    async def _flush(self, batch: Sequence[Outgoing],
                     outcomes: Sequence[asyncio.Future[None]]) -> None:
        """Write what concurrent publishes gathered, in one write (``_amqp_publish``);
        their futures are settled with their confirms by a task while the next batch
        is written (up to ``_WINDOW`` batches await their confirms at once)."""
        items: list[tuple[int, _amqp_publish.Item]] = []
        for index, message in enumerate(batch):
            try:
                items.append((index, await self._item(message)))
            except Exception as exc:  # its queue could not be declared: that message fails
                _resolve(outcomes[index], exc)
        await self._write(items, outcomes)

    async def _flush_items(self, batch: Sequence[_amqp_publish.Item],
                           outcomes: Sequence[asyncio.Future[None]]) -> None:
        """:meth:`_flush` for messages already made (:meth:`send_gathered`)."""
        await self._write(list(enumerate(batch)), outcomes)

    async def _write(self, items: list[tuple[int, _amqp_publish.Item]],
                     outcomes: Sequence[asyncio.Future[None]]) -> None:
        loop = asyncio.get_running_loop()
        channel = await self.channel()
        if not _amqp_publish.supported(channel):
            await self._one_by_one(items, outcomes)
            return
        window, batch = self._window, [item for _, item in items]
        size = batch_bytes(batch)
        await window.acquire(size)
        try:
            written = await _amqp_publish.write(channel, batch, self._conn.timeout)
        except BaseException:
            window.release(size)
            raise
        self._watch(loop, written, [index for index, _ in items], batch, outcomes,
                    (window, size))

    def _watch(self, loop: asyncio.AbstractEventLoop, written: _amqp_publish.Written,
               indices: Sequence[int], batch: Sequence[_amqp_publish.Item],
               outcomes: Sequence[asyncio.Future[None]], counted: tuple[InFlight, int]
               ) -> None:
        """Settle a written batch's callers (``outcomes[indices[i]]`` for ``batch[i]``)
        with its confirms, in a task of its own."""
        task = loop.create_task(self._settle(written, indices, batch, outcomes))
        self._settling.add(task)
        task.add_done_callback(lambda done: self._settled(done, counted, outcomes, written))

    def _write_now(self, batch: Sequence[Outgoing],
                   outcomes: Sequence[asyncio.Future[None]]) -> bool:
        """Write a full batch at once, while the burst that gathered it still runs (the
        batcher's ``early``): only plain messages to queues already declared, on an
        open channel with room in the window; False (nothing done) otherwise."""
        raw, window = self._raw, self._window
        if raw is None or not _amqp_publish.supported(raw):
            return False
        stream = _amqp_publish.stream_now(raw)
        size = batch_bytes(batch)  # (the items' bodies are the batch's)
        if stream is None or not window.try_acquire(size, _EARLY):
            return False
        try:
            items = self._items_now(batch)
            written = None if items is None else _amqp_publish.write_now(raw, stream, items)
        except BaseException:  # nothing registered: the runner sends the batch
            window.release(size)
            raise
        if items is None or written is None:
            window.release(size)
            return False
        self._watch(raw.connection.loop, written, range(len(items)), items, outcomes,
                    (window, size))
        return True

    def _items_now(self, batch: Sequence[Outgoing]) -> list[_amqp_publish.Item] | None:
        """The batch's items when none needs a declaration or a delay queue first."""
        exchange, known = self._layout.exchange, self._layout.declared
        items = []
        for message in batch:
            if message.eta is not None or message.exchange not in (None, "", exchange):
                return None
            if not known(message.queue):
                return None
            items.append(_amqp_publish.Item(exchange, message.routing_key or message.queue,
                                            message.body, self._properties(message, {})))
        return items

    def _properties(self, message: Outgoing, headers: dict[str, Any]) -> spec.Basic.Properties:
        return new_properties(headers=headers, correlation_id=message.id,
                              reply_to=self._replies.reply_to_for(message.id),
                              priority=message.priority)

    async def _settle(self, written: _amqp_publish.Written, indices: Sequence[int],
                      batch: Sequence[_amqp_publish.Item],
                      outcomes: Sequence[asyncio.Future[None]]) -> None:
        results = await _amqp_publish.confirmed(written, self._conn.timeout)
        for index, item, result in zip(indices, batch, results, strict=True):
            if result is None:
                _resolve(outcomes[index], None)
            else:
                _resolve(outcomes[index], self.publish_error(result, item.exchange,
                                                             item.routing_key))

    def _settled(self, task: asyncio.Task[None], counted: tuple[InFlight, int],
                 outcomes: Sequence[asyncio.Future[None]], written: _amqp_publish.Written
                 ) -> None:
        """A settle task ended, however (cancelled by ``close``, even before it ran)."""
        self._settling.discard(task)
        window, size = counted
        window.release(size)
        _amqp_publish.release(written)
        for future in outcomes:  # what it did not settle was not confirmed
            _resolve(future, self._lost("the broker closed before RabbitMQ confirmed it"))

    def _lost(self, why: str) -> BrokerUnavailable:
        return BrokerUnavailable(f"RabbitMQ broker at {self._conn.safe_url}: {why}; the "
                                 "message may or may not be queued")

    async def _one_by_one(self, items: list[tuple[int, _amqp_publish.Item]],
                          outcomes: Sequence[asyncio.Future[None]]) -> None:
        for index, item in items:
            try:
                await self.send(item.exchange, item.routing_key, item.body, item.properties)
            except Exception as exc:
                _resolve(outcomes[index], exc)
            else:
                _resolve(outcomes[index], None)

    async def _item(self, message: Outgoing) -> _amqp_publish.Item:
        if message.eta is not None and not math.isfinite(message.eta):
            raise ValueError(f"message {message.id}: eta {message.eta!r} is not a finite "
                             "unix time")
        exchange, routing_key = await self._destination(message)
        headers: dict[str, Any] = {}
        delay_ms = math.ceil(message.delay() * 1000)
        if delay_ms > 0:
            assert message.eta is not None
            headers[ETA_HEADER] = math.ceil(message.eta * 1000)
            if exchange == self._layout.exchange and routing_key == message.queue:
                exchange = ""  # straight to the queue when due, via the default exchange
            routing_key = await self._layout.delay_queue(bucket_ms(delay_ms),
                                                                exchange, routing_key)
            exchange = ""
        return _amqp_publish.Item(exchange, routing_key, message.body,
                                  self._properties(message, headers))

    async def channel(self) -> Any:
        """The publishing channel's aiormq channel, once it is open."""
        channel = self._conn.publishing_channel
        if channel is None:
            raise BrokerUnavailable(f"RabbitMQ broker at {self._conn.safe_url} is not connected")
        try:
            async with asyncio.timeout(self._conn.timeout):
                await channel.ready()
                raw = self._raw = await channel.get_underlay_channel()
                return raw
        except TimeoutError:
            raise BrokerUnavailable(f"RabbitMQ at {self._conn.safe_url} is unreachable; "
                                    f"publish gave up after {self._conn.timeout}s") from None

    async def send(self, exchange: str, routing_key: str, body: bytes,
                   properties: spec.Basic.Properties) -> None:
        """Publish one message (mandatory) and wait for the confirm; failures raise
        PublishError or BrokerUnavailable."""
        raw = await self.channel()
        try:
            async with asyncio.timeout(self._conn.timeout):
                confirm = await raw.basic_publish(body, exchange=exchange,
                                                  routing_key=routing_key,
                                                  properties=properties, mandatory=True)
        except (amqp_errors.AMQPError, asyncio.CancelledError, TimeoutError) as exc:
            if isinstance(exc, asyncio.CancelledError) and cancelled_by_caller():
                raise
            raise self.publish_error(exc, exchange, routing_key) from None
        if not isinstance(confirm, spec.Basic.Ack):
            raise PublishError(f"RabbitMQ did not confirm a message for {routing_key!r}")

    async def send_gathered(self, exchange: str, routing_key: str, body: bytes,
                            properties: spec.Basic.Properties) -> None:
        """:meth:`send`, written together with concurrent calls (one write, confirms
        awaited together); ``properties.message_id`` must be fresh."""
        await self._conn.connect()
        item = _amqp_publish.Item(exchange, routing_key, body, properties)
        try:
            await self._gathered.future(item)
        except Exception as exc:
            raise self.publish_error(exc, exchange, routing_key) from None

    async def redelay(self, queue: str, body: bytes, properties: spec.Basic.Properties,
                      remaining_ms: int) -> None:
        """Send an early arrival back to wait in a delay bucket towards ``queue``."""
        name = await self._layout.delay_queue(bucket_ms(remaining_ms), "", queue)
        await self.send("", name, body, properties)

    def publish_error(self, exc: BaseException, exchange: str, routing_key: str
                      ) -> BaseException:
        """What a publish that failed with ``exc`` (aiormq's) raises."""
        if isinstance(exc, amqp_errors.PublishError):
            text = getattr(exc.frame, "reply_text", "NO_ROUTE")
            return Returned(f"RabbitMQ returned the message ({text}): nothing is bound to "
                            f"exchange {exchange or '(default)'!r} with routing key "
                            f"{routing_key!r}")
        if isinstance(exc, amqp_errors.DeliveryError):
            return PublishError(f"RabbitMQ refused (nacked) a message for {routing_key!r}")
        if isinstance(exc, amqp_errors.AMQPChannelError):
            return PublishError(f"the publishing channel closed before {routing_key!r} was "
                                f"confirmed: {self._conn.describe(exc)}")
        if isinstance(exc, asyncio.CancelledError | amqp_errors.AMQPConnectionError):
            # aiormq cancels or fails a pending confirm when it finds the connection dead
            return BrokerUnavailable(f"the connection to RabbitMQ at {self._conn.safe_url} "
                                     f"was lost before {routing_key!r} was confirmed; the "
                                     "message may or may not be queued")
        if isinstance(exc, TimeoutError):
            if not self._conn.connected:
                return BrokerUnavailable(f"RabbitMQ at {self._conn.safe_url} is unreachable; "
                                         f"publish gave up after {self._conn.timeout}s")
            return PublishError(f"no publisher confirm within {self._conn.timeout}s for "
                                f"{routing_key!r}; the message may or may not be queued")
        return self._other_error(exc, routing_key)

    def _other_error(self, exc: BaseException, routing_key: str) -> BaseException:
        if isinstance(exc, AsyncqError):
            return exc
        if isinstance(exc, _amqp_publish.Unsendable):
            return PublishError(f"cannot publish to {routing_key!r}: {exc}")
        # what aiormq failed a confirm with when its channel closed without a reason
        return self._lost(f"the channel closed before {routing_key!r} was confirmed "
                          f"({self._conn.describe(exc)})")

    # -- consuming and operating ---------------------------------------------------------
