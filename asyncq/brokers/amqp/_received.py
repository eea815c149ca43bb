"""A delivery as the consumer reads it, straight from aiormq.

aio-pika hands a consumer each delivery as an ``IncomingMessage`` (about thirty
attribute writes through a checking ``__setattr__``) from a task of its own, on top of
the task aiormq already runs the callback in. The consumer registers with aio-pika
(which brings its consumers back after a reconnect) and then puts the aiormq callback
of :func:`callbacks`, a :class:`Direct`, in aio-pika's place on the aiormq channel
(:func:`take_over`): a delivery becomes a :class:`Received` (the few fields the
consumer reads, looked up when read), given to the consumer by asyncq's frame reader
(:mod:`._reader`) with no task at all, or else in aiormq's task. A delivery that still
comes the aio-pika way (before the swap, or the first one after a reconnect, which
swaps again) is an ``IncomingMessage``, which has the same fields: the consumer reads
either.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel
from aio_pika.exceptions import ChannelInvalidStateError
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

__all__ = ["Direct", "Message", "Received", "callbacks", "take_over"]


#: the properties :class:`Received` reads
_READ = ("headers", "message_id", "correlation_id", "reply_to", "priority")


class Received:
    """The fields of a delivery the consumer uses, as ``IncomingMessage`` names them;
    ``properties`` holds the message's properties by name (absent ones may be left out)."""

    __slots__ = ("_channel", "_properties", "body", "delivery_tag", "redelivered")

    def __init__(self, channel: Any, delivery_tag: int, redelivered: bool,
                 properties: dict[str, Any], body: bytes) -> None:
        self._channel = channel
        self.delivery_tag = delivery_tag  # (attributes: each is read twice or more)
        self.redelivered = redelivered
        self._properties = properties
        self.body = body

    @classmethod
    def of(cls, message: DeliveredMessage) -> Received:
        """A delivery as aiormq gives it to a consumer callback."""
        deliver: Any = message.delivery  # a Basic.Deliver
        return cls(message.channel, deliver.delivery_tag or 0, bool(deliver.redelivered),
                   cls.of_properties(message.header.properties), message.body)

    @staticmethod
    def of_properties(properties: spec.Basic.Properties) -> dict[str, Any]:
        """The properties :class:`Received` reads, by name, out of pamqp's object."""
        return {name: getattr(properties, name) for name in _READ}

    @property
    def channel(self) -> Any:
        """The aiormq channel it came on; raises once that channel is closed."""
        if self._channel.is_closed:
            raise ChannelInvalidStateError("the channel of this delivery is closed")
        return self._channel

    @property
    def headers(self) -> dict[str, Any]:
        return self._properties.get("headers") or {}

    @property
    def message_id(self) -> str | None:
        return self._properties.get("message_id")

    @property
    def correlation_id(self) -> str | None:
        return self._properties.get("correlation_id")

    @property
    def reply_to(self) -> str | None:
        return self._properties.get("reply_to")

    @property
    def priority(self) -> int | None:
        return self._properties.get("priority")


#: what the consumer handles: an ``IncomingMessage`` or a :class:`Received`
Message = AbstractIncomingMessage | Received


class Direct:
    """The aiormq consumer callback :func:`take_over` installs: ``on_message`` gets each
    delivery as a :class:`Received`, from asyncq's frame reader (a call, no task)
    or from aiormq's task (a call)."""

    __slots__ = ("on_message",)

    def __init__(self, on_message: Callable[[Message], None]) -> None:
        self.on_message = on_message

    async def __call__(self, message: DeliveredMessage) -> None:
        self.on_message(Received.of(message))


def callbacks(on_message: Callable[[Message], None]
              ) -> tuple[Callable[[AbstractIncomingMessage], Awaitable[None]], Direct]:
    """aio-pika's consumer callback and aiormq's (:func:`take_over`) for ``on_message``;
    the first one takes over again when a delivery comes its way (after a reconnect)."""
    deliver = Direct(on_message)

    async def slow(message: AbstractIncomingMessage) -> None:
        with contextlib.suppress(ChannelInvalidStateError):  # closed: nothing to swap
            _swap(message.channel, message.consumer_tag, deliver)
        on_message(message)

    return slow, deliver


async def take_over(channel: AbstractRobustChannel, tag: str, fast: Direct) -> None:
    """Put ``fast`` in place of aio-pika's callback for consumer ``tag`` on ``channel``."""
    _swap(await channel.get_underlay_channel(), tag, fast)


def _swap(channel: Any, tag: str | None, fast: Direct) -> None:
    consumers = getattr(channel, "consumers", None)  # aiormq's, by consumer tag
    if tag is not None and consumers is not None and consumers.get(tag, fast) is not fast:
        consumers[tag] = fast
