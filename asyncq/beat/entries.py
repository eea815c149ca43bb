"""Periodic entries and how ``app.periodic`` / ``app.schedule`` register them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from asyncq.brokers import Outgoing
from asyncq.errors import ConfigurationError
from asyncq.schedule import (
    DEFAULT_GRACE,
    MISSED_POLICIES,
    Missed,
    Schedule,
    crontab,
    make_schedule,
    tick_id,
    zone,
)
from asyncq.task import Signature, Task

if TYPE_CHECKING:
    from asyncq.app import App

__all__ = ["Entry", "ScheduleSpec", "add_entry", "periodic"]

P = ParamSpec("P")
R = TypeVar("R")

#: What a schedule may be given as: an interval (timedelta or seconds), a cron string,
#: a crontab(...), or a ready asyncq.schedule.Every / Cron.
ScheduleSpec = dt.timedelta | float | str | crontab | Schedule


@dataclass(frozen=True, slots=True)
class Entry:
    """One periodic entry: send ``signature`` on every tick of ``schedule``.

    ``missed`` and ``grace`` are the missed-tick policy (see :mod:`asyncq.schedule`).
    """

    name: str
    signature: Signature[Any]
    schedule: Schedule
    missed: Missed = "latest"
    grace: dt.timedelta = DEFAULT_GRACE

    def outgoing(self, tick: dt.datetime) -> Outgoing:
        """The message of ``tick``, built by the app's producer path (signing, size
        limit), with the tick's deterministic task id."""
        sig = self.signature
        app = sig.task.app
        options = replace(sig.options, task_id=tick_id(app.name, self.name, tick))
        outgoing, _ = app._preparer.prepare(Signature(sig.task, sig.args, sig.kwargs, options))
        return outgoing

    def mark_ttl(self, tick: dt.datetime) -> dt.timedelta:
        """How long a sent tick's id is remembered: two periods, at least 10 minutes."""
        return max(dt.timedelta(minutes=10), 2 * (self.schedule.next_after(tick) - tick))


def add_entry(app: App, sig: Signature[Any], every: ScheduleSpec, *, name: str | None,
              tz: str | dt.tzinfo | None, missed: Missed,
              grace: dt.timedelta | float) -> Entry:
    """``app.schedule``: check and register one entry."""
    if sig.task.app is not app:
        raise ConfigurationError(f"task {sig.task.name!r} belongs to another app")
    if sig.options.countdown is not None or sig.options.eta is not None:
        raise ConfigurationError("a periodic entry runs at its ticks: drop countdown/eta")
    if missed not in MISSED_POLICIES:
        raise ConfigurationError(f"missed= takes one of {MISSED_POLICIES}, not {missed!r}")
    if not isinstance(grace, dt.timedelta):
        grace = dt.timedelta(seconds=grace)
    schedule = make_schedule(every, zone(tz) if tz is not None else app.timezone)
    entry = Entry(sig.task.name if name is None else name, sig, schedule, missed, grace)
    entry.outgoing(dt.datetime.now(dt.UTC))  # the name, the arguments: fail here, not later
    if entry.name in app.entries:
        raise ConfigurationError(f"a periodic entry named {entry.name!r} already exists")
    app.entries[entry.name] = entry
    return entry


def periodic(app: App, every: ScheduleSpec, *, name: str | None,
             tz: str | dt.tzinfo | None, missed: Missed, grace: dt.timedelta | float,
             options: dict[str, Any]) -> Callable[[Callable[P, Awaitable[R]]], Task[P, R]]:
    """``@app.periodic``: register the function as a task, then schedule it (no
    arguments)."""

    def register(fn: Callable[P, Awaitable[R]]) -> Task[P, R]:
        task: Task[P, R] = app.task(name=name, **options)(fn)
        add_entry(app, Signature(task, (), {}), every, name=name, tz=tz, missed=missed,
                  grace=grace)
        return task

    return register
