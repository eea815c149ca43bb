"""Beat store on the Redis broker's server.

Keys (``APP`` = the app's name, ``QUEUE`` = a tick's queue)::

    asyncq:beat:{APP}:leader       the lease: the leader's token, expires after `lease`
    asyncq:beat:{APP}:cursors      hash: entry -> unix time of the last tick it handled
    asyncq:{QUEUE}:beat:<tick id>  a sent tick's mark (expires after two periods, >= 10 min)

A tick is sent by one script (``lua/tick.lua``) that sets its mark with ``SET NX`` and
appends the message to the queue's stream only when the mark is new: a tick sent twice
(by a leader that lost its lease while paused, or again after a failover) is queued
once. The mark shares the stream's ``{QUEUE}`` hash tag (one Redis Cluster slot). The
cursor moves after the send (forward only); a crash in between makes the next leader
send the tick again, which the mark drops.

The leader renews its lease every ``lease / 3`` seconds; a killed leader's lease
expires after at most ``lease`` seconds and a follower takes over at its next check,
so a handover takes at most ``lease * 4 / 3`` (about 6.7 s by default).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from importlib import resources
from typing import TYPE_CHECKING, Any

from asyncq import _redis
from asyncq.beat.store import BeatStore
from asyncq.brokers import Outgoing
from asyncq.brokers.redis import RedisBroker, stream_key

if TYPE_CHECKING:
    from asyncq.app import App

__all__ = ["RedisBeatStore"]


def _script(client: Any, name: str) -> Any:
    return client.register_script(
        (resources.files("asyncq.beat") / "lua" / f"{name}.lua").read_text())


class RedisBeatStore(BeatStore):
    def __init__(self, app: App, *, lease: float) -> None:
        broker = app.broker
        assert isinstance(broker, RedisBroker)
        self._url = broker.url
        self._client = broker.client
        self._lease_ms = int(lease * 1000)
        self.poll_interval = lease / 3
        self._token = uuid.uuid4().hex
        self._lease_key = f"asyncq:beat:{{{app.name}}}:leader"
        self._cursor_key = f"asyncq:beat:{{{app.name}}}:cursors"
        self._scripts = {name: _script(self._client, name)
                         for name in ("lease", "release", "tick", "cursor")}

    async def lead(self) -> bool:
        with _redis.mapped_errors("Redis beat store", self._url):
            return bool(await self._scripts["lease"](
                keys=[self._lease_key], args=[self._token, self._lease_ms]))

    async def load(self) -> dict[str, dt.datetime]:
        with _redis.mapped_errors("Redis beat store", self._url):
            raw: dict[Any, Any] = await self._client.hgetall(self._cursor_key)
        return {bytes(name).decode(): dt.datetime.fromtimestamp(float(value), dt.UTC)
                for name, value in raw.items()}

    async def send(self, entry: str, message: Outgoing, tick: dt.datetime,
                   remember: dt.timedelta) -> bool:
        mark = f"asyncq:{{{message.queue}}}:beat:{message.id}"
        with _redis.mapped_errors("Redis beat store", self._url):
            sent = await self._scripts["tick"](
                keys=[mark, stream_key(message.queue)],
                args=[message.body, int(remember.total_seconds() * 1000)])
        await self.advance(entry, tick)
        return bool(sent)

    async def advance(self, entry: str, cursor: dt.datetime) -> None:
        with _redis.mapped_errors("Redis beat store", self._url):
            await self._scripts["cursor"](keys=[self._cursor_key],
                                          args=[entry, f"{cursor.timestamp():.6f}"])

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # else the lease expires on its own
            await self._scripts["release"](keys=[self._lease_key], args=[self._token])
