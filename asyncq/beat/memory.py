"""In-process beat store for ``memory://`` apps (users' tests).

Schedulers of one app (same name, same broker URL) in one process share one lease and
one state, as memory brokers with the same URL share their queues; nothing survives
the process.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from asyncq.beat.store import BeatStore
from asyncq.brokers import Outgoing

if TYPE_CHECKING:
    from asyncq.app import App

__all__ = ["MemoryBeatStore"]


@dataclass
class _Shared:
    leader: str | None = None
    cursors: dict[str, dt.datetime] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)


_SHARED: dict[tuple[str, str], _Shared] = {}


class MemoryBeatStore(BeatStore):
    def __init__(self, app: App, *, lease: float) -> None:
        self._app = app
        self._token = uuid.uuid4().hex
        self._shared = _SHARED.setdefault((app.broker.url, app.name), _Shared())
        self.poll_interval = lease / 3

    async def lead(self) -> bool:
        if self._shared.leader is None:
            self._shared.leader = self._token
        return self._shared.leader == self._token

    async def load(self) -> dict[str, dt.datetime]:
        return dict(self._shared.cursors)

    async def send(self, entry: str, message: Outgoing, tick: dt.datetime,
                   remember: dt.timedelta) -> bool:
        fresh = message.id not in self._shared.sent
        if fresh:
            await self._app.broker.publish(message)
            self._shared.sent.add(message.id)
        await self.advance(entry, tick)
        return fresh

    async def advance(self, entry: str, cursor: dt.datetime) -> None:
        cursors = self._shared.cursors
        cursors[entry] = max(cursor, cursors.get(entry, cursor))

    async def close(self) -> None:
        if self._shared.leader == self._token:
            self._shared.leader = None
