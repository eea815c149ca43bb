"""Ending a consumer's blocked XREADGROUP at once when its worker stops.

The read blocks on the server for up to ``PROMOTE_INTERVAL``; the worker's stop waited
for it to end by itself. Cancelling it instead could lose what it read: the server may
already have moved entries to this consumer's pending list, and the reply never seen
would leave them held until their lease expired. ``CLIENT UNBLOCK <id>`` (TIMEOUT mode)
ends it on the server as if its BLOCK had run out: it returns nothing and moves nothing.
Redis serves one command at a time, so the read has either already taken its entries
(the reply brings them; the unblock finds nothing blocked) or takes none.

The blocked read is told apart by the id of its connection: the reader keeps one
connection of its own (``single_connection_client``), whose id is asked once. After a
reconnect the id is stale: an unblock then finds no such client (ids are never reused)
and the read ends by itself, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as rexc

__all__ = ["Reader", "Waker"]

logger = logging.getLogger("asyncq.brokers.redis")

#: Seconds between unblocks while the read is still in flight (it may not have reached
#: the server when the first one did), and the most of them.
RETRY = 0.01
TRIES = 50


class Reader(aioredis.Redis):
    """The consumer's reading client: one connection of its own from the broker's pool.

    A consumer dropped without ``close()`` (a crash simulated in a test, a process that
    ends) closes that connection when it is collected, quietly, as a client without a
    connection of its own did; redis-py's warning is for clients a program forgot."""

    def __del__(self, *args: Any) -> None:
        connection = getattr(self, "connection", None)
        if connection is not None:
            self.connection = None
            connection._close()


class Waker:
    """The reader's blocking XREADGROUP, and ``wake`` to end it at once."""

    def __init__(self, reader: Any, client: Any) -> None:
        self._reader = reader
        self._client = client
        self._id: int | None = None
        self._blocked = False
        self._waking: asyncio.Task[None] | None = None

    async def xreadgroup(self, *args: Any, **kwargs: Any) -> Any:
        if self._id is None:
            self._id = int(await self._reader.client_id())
        self._blocked = True
        try:
            return await self._reader.xreadgroup(*args, **kwargs)
        except rexc.ConnectionError:
            self._id = None  # a new connection next time: ask its id again
            raise
        finally:
            self._blocked = False

    def wake(self) -> None:
        if self._blocked and self._id is not None and self._waking is None:
            self._waking = asyncio.get_running_loop().create_task(self._unblock(self._id))

    async def _unblock(self, client_id: int) -> None:
        try:
            for _ in range(TRIES):
                if not self._blocked:
                    return
                await self._client.client_unblock(client_id)
                await asyncio.sleep(RETRY)
        except Exception as exc:  # the read ends by itself within its BLOCK
            logger.debug("could not unblock the consumer's read: %s", exc)

    async def close(self) -> None:
        if self._waking is not None:
            self._waking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._waking
        await self._reader.aclose(close_connection_pool=False)  # its connection back
