"""The scheduler ("beat"): sends each tick of each periodic entry exactly once.

Any number of schedulers may run (``asyncq beat``, ``asyncq worker --beat``, or
``Beat(app).run()`` in your own process); one of them leads, by a lease kept on the
broker's server (:mod:`asyncq.beat.store`), and the others wait to take over. The
leader sends every due tick with a deterministic task id
(:func:`asyncq.schedule.tick_id`), and the store makes sending a tick and recording it
one step, so a tick re-sent after a failover is dropped as a duplicate.

The loop: lead (acquire or renew), on becoming leader load the cursors (the last tick
each entry handled), send what :func:`asyncq.schedule.due_ticks` says is due, then
sleep until the next tick or the next lease check, whichever is first. A new entry
starts from the moment a leader first sees it (no past ticks).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from asyncq.beat.entries import Entry
from asyncq.beat.store import BeatStore, store_for
from asyncq.errors import AsyncqError
from asyncq.schedule import due_ticks

if TYPE_CHECKING:
    from asyncq.app import App

__all__ = ["DEFAULT_LEASE", "Beat", "BeatStats", "BeatStore", "Entry"]

logger = logging.getLogger("asyncq.beat")
logger.addHandler(logging.NullHandler())

#: seconds a leader's lease lasts without renewal (Redis); the handover bound
DEFAULT_LEASE = 5.0


@dataclass(frozen=True, slots=True)
class BeatStats:
    """``Beat.statistics()``: whether it leads, and its counts since it started."""

    leading: bool
    entries: int
    sent: int  # ticks this scheduler enqueued
    duplicates: int  # ticks it found sent already (by an earlier leader)
    failed_rounds: int  # rounds that ended in an error (the server was away...)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Beat:
    """A scheduler for ``app.entries``: ``await Beat(app).run()`` until ``stop()``.

    ``lease``: seconds a silent leader keeps the leadership on Redis (RabbitMQ moves
    the leadership when the leader's connection closes). ``store`` replaces the
    broker's own store; ``clock`` the wall clock (for tests).
    """

    def __init__(self, app: App, *, lease: float = DEFAULT_LEASE,
                 store: BeatStore | None = None,
                 clock: Callable[[], dt.datetime] = _utcnow) -> None:
        if lease <= 0:
            raise ValueError("lease must be positive")
        self.app = app
        self.lease = lease
        self._store = store
        self._clock = clock
        self._cursors: dict[str, dt.datetime] = {}
        self._leading = False
        self._stopping = asyncio.Event()
        self._sent = self._duplicates = self._failed = 0

    @property
    def leading(self) -> bool:
        return self._leading

    def statistics(self) -> BeatStats:
        return BeatStats(self._leading, len(self.app.entries), self._sent,
                         self._duplicates, self._failed)

    @property
    def store(self) -> BeatStore:
        if self._store is None:
            self._store = store_for(self.app, lease=self.lease)
        return self._store

    def stop(self) -> None:
        """Finish the current round, hand over the leadership and return from run()."""
        self._stopping.set()

    async def run(self) -> None:
        async with self.app:
            await self.store.open()
            logger.info("beat started: %d entries, %s", len(self.app.entries),
                        type(self.store).__name__)
            try:
                while not self._stopping.is_set():
                    await self._round()
                    await self._sleep(self._delay())
            finally:
                await self.store.close()
                self._leading = False
                logger.info("beat stopped")

    async def _round(self) -> None:
        try:
            await self.tick()
        except AsyncqError as exc:  # the server is away: try again at the next check
            logger.warning("beat%s: %s", " lost the leadership" if self._leading else "", exc)
            self._leading = False
            self._failed += 1
        except Exception:  # a bug or a surprise: say so, and keep the schedule going
            logger.exception("beat: a round failed")
            self._leading = False
            self._failed += 1

    async def tick(self) -> list[str]:
        """One round: lead if possible and send what is due; the tick ids sent."""
        if not await self.store.lead():
            if self._leading:
                logger.warning("beat: another scheduler leads now")
            self._leading = False
            return []
        if not self._leading:
            self._cursors = await self.store.load()
            self._leading = True
            logger.info("beat leads (%d entries)", len(self.app.entries))
        now = self._clock()
        sent: list[str] = []
        for entry in list(self.app.entries.values()):
            sent += await self._entry(entry, now)
        return sent

    async def _entry(self, entry: Entry, now: dt.datetime) -> list[str]:
        last = self._cursors.get(entry.name)
        if last is None:  # new: start from now
            await self.store.advance(entry.name, now)
            self._cursors[entry.name] = now
            return []
        due = due_ticks(entry.schedule, last, now, missed=entry.missed, grace=entry.grace)
        sent: list[str] = []
        for tick in due.ticks:
            message = entry.outgoing(tick)
            if await self.store.send(entry.name, message, tick, entry.mark_ttl(tick)):
                sent.append(message.id)
                self._sent += 1
                logger.info("beat sent %s (%s)", message.id, tick.isoformat())
            else:
                self._duplicates += 1
                logger.info("beat: %s was sent already", message.id)
            self._cursors[entry.name] = tick
        if due.cursor > self._cursors[entry.name]:  # skipped missed ticks
            await self.store.advance(entry.name, due.cursor)
            self._cursors[entry.name] = due.cursor
        return sent

    def _delay(self) -> float:
        """Seconds until the next tick of any entry or the next lease check."""
        delay = self.store.poll_interval
        if self._leading:
            now = self._clock()
            for entry in self.app.entries.values():
                after = max(self._cursors.get(entry.name, now), now)
                wait = (entry.schedule.next_after(after) - now).total_seconds()
                delay = min(delay, wait)
        return max(delay, 0.0)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
