"""Beat store on RabbitMQ alone (no Redis): a single-active-consumer queue.

Every scheduler of app ``APP`` consumes the durable queue ``asyncq.beat.APP``, declared
with ``x-single-active-consumer``: RabbitMQ delivers its messages to one consumer only,
and to the next one (in order of subscription) when that consumer's channel closes.
The queue holds the schedule state, as messages: each carries every entry's cursor
(the unix time of the last tick it handled), and the active consumer holds them unacked.

- **Leadership.** The active consumer leads once it has every state message: on its
  first delivery it publishes a marker to the queue and leads when the marker comes
  back, since everything queued before the marker (a dead leader's state, requeued)
  was delivered first. A scheduler also publishes a marker when it subscribes, so an
  empty queue wakes its first consumer.
- **Exactly once.** A tick is sent in one AMQP transaction on the consumer's channel:
  publish the tick's message, publish the new state, ack the state messages held,
  commit. A leader killed before the commit sent nothing and moved no cursor (RabbitMQ
  requeues what it held, and the next leader sends the tick); one killed after it
  sent the tick and the state saying so. RabbitMQ applies a committed transaction to
  all its queues unless the server itself fails during the commit (then a tick may be
  lost or doubled; see RabbitMQ's notes on transactions).
- **Handover.** Immediate when the leader's process dies or closes its connection
  (the server sees the TCP connection close); a leader cut off by the network is
  replaced after the connection's heartbeat timeout (aio-pika's ``heartbeat`` URL
  parameter; 60 s by default).
- The leader commits at least every minute (state only when nothing is due), so no
  message stays unacked for long (RabbitMQ's ``consumer_timeout``).
- With a quorum broker (``?queue_type=quorum``) the queue is a quorum queue. RabbitMQ
  answers the declaration of a new one before its replicas run, and a consume in that
  moment makes the server close the whole connection (``INTERNAL_ERROR``, seen on 3.10);
  so a scheduler waits ``QUORUM_SETTLE`` seconds after declaring it. Should it happen
  anyway, the connection comes back and the scheduler subscribes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import msgpack
from aiormq import spec
from aiormq.abc import AbstractChannel, DeliveredMessage

from asyncq.beat.store import BeatStore
from asyncq.brokers import Outgoing
from asyncq.brokers.amqp import AmqpBroker
from asyncq.brokers.amqp._layout import new_properties
from asyncq.errors import BrokerUnavailable

if TYPE_CHECKING:
    from asyncq.app import App

__all__ = ["AmqpBeatStore"]

logger = logging.getLogger("asyncq.beat.amqp")
logger.addHandler(logging.NullHandler())

#: seconds between commits of a leader with nothing due (acks what it holds)
REFRESH = 60.0
#: seconds between declaring a quorum beat queue and consuming it
QUORUM_SETTLE = 0.5


class AmqpBeatStore(BeatStore):
    def __init__(self, app: App, *, lease: float) -> None:
        broker = app.broker
        assert isinstance(broker, AmqpBroker)
        self._broker = broker
        self.queue = f"asyncq.beat.{app.name}"
        self.poll_interval = min(1.0, lease / 3)
        self._channel: AbstractChannel | None = None
        self._lock = asyncio.Lock()
        self._reset()

    def _reset(self) -> None:
        self._held = 0  # highest delivery tag held (all up to it are ours, unacked)
        self._state: dict[str, float] = {}
        self._seen = False
        self._marker: str | None = None
        self._need_marker = False
        self._leading = False
        self._committed = time.monotonic()

    # -- consuming -----------------------------------------------------------------------
    async def _on_message(self, message: DeliveredMessage) -> None:
        tag = getattr(message.delivery, "delivery_tag", None)
        if message.channel is not self._channel or not isinstance(tag, int):
            return
        self._held = max(self._held, tag)
        data = _decode(message.body)
        cursors = data.get("c")
        if isinstance(cursors, dict):
            for name, value in cursors.items():
                if isinstance(name, str) and isinstance(value, int | float):
                    self._state[name] = max(value, self._state.get(name, value))
        if self._marker is not None and data.get("m") == self._marker:
            self._leading = True
        if not self._seen:  # we are the active consumer now: fence what is queued
            self._seen = True
            self._need_marker = True

    async def _subscribe(self) -> None:
        self._reset()
        broker = self._broker
        await broker.connect()
        connection = broker.conn.connection()
        async with asyncio.timeout(broker.timeout):
            await connection.ready()
            transport = connection.transport
            if transport is None:
                raise BrokerUnavailable(f"RabbitMQ at {broker.safe_url} is reconnecting")
            channel = await transport.connection.channel(publisher_confirms=False)
            self._channel = channel
            arguments: dict[str, Any] = {"x-single-active-consumer": True}
            if broker.quorum:
                arguments["x-queue-type"] = "quorum"
            await channel.queue_declare(self.queue, durable=True, arguments=arguments)
            if broker.quorum:  # a quorum queue's replicas may not run yet (see above)
                await asyncio.sleep(QUORUM_SETTLE)
            await channel.tx_select()
            await channel.basic_consume(self.queue, self._on_message)
            await self._publish_marker(uuid.uuid4().hex)  # wakes an idle queue's consumer

    async def _publish_marker(self, token: str) -> None:
        channel = self._live()
        await channel.basic_publish(msgpack.packb({"m": token}), routing_key=self.queue,
                                    properties=spec.Basic.Properties(delivery_mode=2))
        await channel.tx_commit()

    def _live(self) -> AbstractChannel:
        channel = self._channel
        if channel is None or channel.is_closed:
            raise BrokerUnavailable(f"the beat channel to RabbitMQ at "
                                    f"{self._broker.safe_url} is closed")
        return channel

    # -- the store -----------------------------------------------------------------------
    async def lead(self) -> bool:
        async with self._lock, self._errors("lead"):
            if self._channel is None or self._channel.is_closed:
                await self._subscribe()
            if self._need_marker:
                self._need_marker = False
                self._marker = uuid.uuid4().hex
                async with asyncio.timeout(self._broker.timeout):
                    await self._publish_marker(self._marker)
            if self._leading and time.monotonic() - self._committed > REFRESH:
                await self._commit(None)
            return self._leading

    async def load(self) -> dict[str, dt.datetime]:
        return {name: dt.datetime.fromtimestamp(value, dt.UTC)
                for name, value in self._state.items()}

    async def send(self, entry: str, message: Outgoing, tick: dt.datetime,
                   remember: dt.timedelta) -> bool:
        exchange = message.exchange or self._broker.exchange
        if exchange == self._broker.exchange:
            with self._broker.conn.errors("declare a queue"):
                await self._broker.layout.queue(message.queue)
        async with self._lock, self._errors("send a tick"):
            self._advance(entry, tick)
            await self._commit((exchange, message))
        return True

    async def advance(self, entry: str, cursor: dt.datetime) -> None:
        async with self._lock, self._errors("save the schedule"):
            self._advance(entry, cursor)
            await self._commit(None)

    def _advance(self, entry: str, cursor: dt.datetime) -> None:
        if not self._leading:
            raise BrokerUnavailable("this scheduler no longer leads")
        value = cursor.timestamp()
        self._state[entry] = max(value, self._state.get(entry, value))

    async def _commit(self, tick: tuple[str, Outgoing] | None) -> None:
        """One transaction: the tick (if any), the state, the acks of what we hold."""
        channel = self._live()
        async with asyncio.timeout(self._broker.timeout):
            if tick is not None:
                exchange, message = tick
                await channel.basic_publish(
                    message.body, exchange=exchange,
                    routing_key=message.routing_key or message.queue,
                    properties=new_properties(headers={}, correlation_id=message.id,
                                              reply_to=None, priority=message.priority))
            await channel.basic_publish(msgpack.packb({"c": self._state}),
                                        routing_key=self.queue,
                                        properties=spec.Basic.Properties(delivery_mode=2))
            held, self._held = self._held, 0
            if held:
                await channel.basic_ack(held, multiple=True)
            await channel.tx_commit()
        self._committed = time.monotonic()

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        self._leading = False
        if channel is not None and not channel.is_closed:
            try:
                await asyncio.wait_for(channel.close(), self._broker.timeout)
            except Exception as exc:  # the server requeues what it held all the same
                logger.debug("closing the beat channel: %s", self._broker.conn.describe(exc))

    @contextlib.asynccontextmanager
    async def _errors(self, what: str) -> AsyncIterator[None]:
        """On any error: drop the channel (the leadership goes with it), raise it mapped."""
        try:
            yield
        except Exception as exc:
            await self.close()
            raise self._broker.conn.mapped(exc, f"beat: {what}") from None


def _decode(body: bytes) -> dict[str, Any]:
    try:
        data = msgpack.unpackb(body)
    except Exception:
        return {}
    return data if isinstance(data, dict) else {}
