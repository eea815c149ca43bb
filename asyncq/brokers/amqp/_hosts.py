"""Several RabbitMQ nodes in one URL: ``amqp://user:pw@host1:5672,host2:5672/vhost``.

The first connect tries each node in turn, starting at a random one (so that clients
spread over the nodes); once connected, every failed reconnect attempt, and every loss
of the connection, moves on to the next node, so a client follows the cluster around a
dead node. The user-info, virtual host and query are the same for every node.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika
from aio_pika.connection import make_url

from asyncq._urls import mask_url
from asyncq.brokers.amqp._reader import Underlay
from asyncq.errors import ConfigurationError

__all__ = ["NodeRing", "node_urls"]

#: aio-pika's step that makes one connection attempt (RobustConnection.__connect_transport),
#: and the two private attributes of its that :meth:`NodeRing._attempt` uses in its place
#: (the deadline ``connect`` was given, and the future ``connect`` waits for the first
#: attempt on); a test checks that they are still there.
ATTEMPT = "_RobustConnection__connect_transport"
TIMEOUT = "_RobustConnection__connect_timeout"
FIRST_ATTEMPT = "_RobustConnection__fail_fast_future"


def node_urls(url: str) -> list[str]:
    """One URL per node of ``url`` (a URL naming one node: itself)."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if "," not in hosts:
        return [url]
    nodes = hosts.split(",")
    if not all(node.strip() for node in nodes):
        raise ConfigurationError(f"an empty host in the AMQP URL {mask_url(url)}")
    return [urlunsplit(parts._replace(netloc=f"{userinfo}{at}{node.strip()}")) for node in nodes]


def first_node(count: int) -> int:
    return random.randrange(count)  # spreading load over the nodes, not a secret


class RingChannel(aio_pika.RobustChannel):
    """A robust channel whose reopening after a reconnect ends quietly if asyncq closed
    the channel meanwhile (a worker stopping while the connection comes back).

    aio-pika reopens every channel of a new connection in turn and fails the whole
    attempt when one reopening raises: a channel closed under it raised
    ``ChannelClosed``, the new connection was dropped, and every call then in flight
    (``delete_queue``, the last acks) failed with it."""

    async def restore(self, channel: Any = None) -> None:
        try:
            await super().restore(channel)
        except Exception:
            if not self._close_called:
                raise


class NodeRing(aio_pika.RobustConnection):
    """A robust connection that moves to the next node after a failed attempt or a loss."""

    CHANNEL_CLASS = RingChannel

    def __init__(self, urls: list[str], start: int, **kwargs: Any) -> None:
        self._nodes = [make_url(u) for u in urls]
        self._at = start % len(self._nodes)
        super().__init__(self._nodes[self._at], **kwargs)

    def _move_on(self) -> None:
        if len(self._nodes) > 1:
            self._at = (self._at + 1) % len(self._nodes)
            self.url = self._nodes[self._at]

    async def _attempt(self) -> None:
        """aio-pika's attempt (``__connect_transport`` then ``Connection.connect``), on
        asyncq's own aiormq connection class (:class:`~._reader.Underlay`)."""
        try:
            self.transport = None
            self.connected.clear()
            self.transport = await Underlay.connect(
                self.url, self._on_connection_close, timeout=getattr(self, TIMEOUT),
                **self.kwargs)
            await self._on_connected()
        except BaseException:
            self._move_on()
            raise
        first: asyncio.Future[None] = getattr(self, FIRST_ATTEMPT)
        if not first.done():
            first.set_result(None)

    async def _on_connection_close(self, closing: Any) -> None:
        if not (self._close_called or self.is_closed):
            self._move_on()  # the node may be gone: reconnect to the next one first
        await super()._on_connection_close(closing)


setattr(NodeRing, ATTEMPT, NodeRing._attempt)  # what the reconnect loop calls
