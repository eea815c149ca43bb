"""The Redis revoke bus: a sorted set keeps the window, pub/sub tells workers at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

from asyncq import _redis
from asyncq.control import OnRevoke, Revocation, RevokeBus, deliver_revocation

__all__ = ["RedisRevokeBus", "revoked_key"]

logger = logging.getLogger("asyncq.control")


def revoked_key(app_name: str) -> str:
    return f"asyncq:control:{{{app_name}}}:revoked"


def revoke_channel(app_name: str) -> str:
    return f"asyncq:control:{app_name}:revoke"


class RedisRevokeBus(RevokeBus):
    """Sorted set ``asyncq:control:{app}:revoked`` (member: the revocation, score: its
    time in ms; trimmed on every write to the window and to ``max_entries``, and
    expiring with the window) and channel ``asyncq:control:<app>:revoke``."""

    def __init__(self, broker: Any, app_name: str, window: float, max_entries: int) -> None:
        super().__init__(broker, app_name, window, max_entries)
        self._broker = broker
        self._key = revoked_key(app_name)
        self._channel = revoke_channel(app_name)

    async def publish(self, revocation: Revocation) -> None:
        now_ms = int(revocation.at * 1000)
        window_ms = int(self.window * 1000)
        data = revocation.encode()
        with _redis.mapped_errors("Redis revoke bus", self._broker.url):
            async with self._broker.client.pipeline(transaction=True) as pipe:
                pipe.zadd(self._key, {data: now_ms})
                pipe.zremrangebyscore(self._key, "-inf", now_ms - window_ms)
                pipe.zremrangebyrank(self._key, 0, -(self.max_entries + 1))
                pipe.pexpire(self._key, window_ms)
                await pipe.execute()
            # after the transaction, not in it: a Redis Cluster runs MULTI in one slot,
            # and a channel has none (the set is what a late listener reads anyway)
            await self._broker.client.publish(self._channel, data)

    async def clear(self) -> None:
        with _redis.mapped_errors("Redis revoke bus", self._broker.url):
            await self._broker.client.delete(self._key)

    async def _history(self, on_revoke: OnRevoke) -> None:
        since = int((time.time() - self.window) * 1000)
        entries = await self._broker.client.zrangebyscore(self._key, since, "+inf")
        for data in entries:
            deliver_revocation(on_revoke, data)

    async def listen(self, on_revoke: OnRevoke, ready: asyncio.Event,
                     stop: asyncio.Event) -> None:
        # a channel of this listener's own: on stop, a message to it ends the read
        # in progress at once (a worker's exit waits for the listener)
        wake = f"{self._channel}:wake:{os.urandom(8).hex()}"
        waking = asyncio.create_task(self._wake_on(stop, wake))
        try:
            await self._listen(on_revoke, ready, stop, wake)
        finally:
            waking.cancel()

    async def _wake_on(self, stop: asyncio.Event, wake: str) -> None:
        await stop.wait()
        with contextlib.suppress(Exception):  # the read ends by itself within _READ
            await self._broker.client.publish(wake, b"")

    async def _listen(self, on_revoke: OnRevoke, ready: asyncio.Event,
                      stop: asyncio.Event, wake: str) -> None:
        while not stop.is_set():
            pubsub = self.broker.client.pubsub()
            try:
                await pubsub.subscribe(self._channel, wake)
                if not await _confirmed(pubsub, stop):
                    return
                await self._history(on_revoke)  # after subscribing: nothing falls between
                ready.set()
                await _follow(pubsub, self._channel.encode(), on_revoke, stop)
            except _redis.connection_errors as exc:
                logger.warning("revoke listener lost its connection (%s); reconnecting",
                               type(exc).__name__)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), 5)


#: Seconds each read of the subscription waits at most (so ``stop`` is seen that soon,
#: if the message to the wake channel did not end the read). A read that times out only
#: waits on the socket: no round trip to the server.
_READ = 0.5


async def _confirmed(pubsub: Any, stop: asyncio.Event) -> bool:
    """Wait until the server confirms the subscription (so a revocation published
    after it reaches us, and one published before it is in the sorted set); False if
    ``stop`` came first."""
    deadline = time.monotonic() + 10
    while not stop.is_set():
        message = await pubsub.get_message(timeout=_READ)
        if message is not None and message.get("type") == "subscribe":
            return True
        if time.monotonic() > deadline:
            raise TimeoutError("the subscription was not confirmed")
    return False


async def _follow(pubsub: Any, channel: bytes, on_revoke: OnRevoke,
                  stop: asyncio.Event) -> None:
    # reads end by themselves: cancelling one of redis-py's reads can be lost when it
    # lands as the read's own timeout fires (the listener would then never stop)
    while not stop.is_set():
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=_READ)
        if (message is not None and message.get("type") == "message"
                and message.get("channel") == channel):  # (not the wake channel)
            deliver_revocation(on_revoke, message.get("data"))

