"""Schedule maths for periodic tasks: intervals, cron entries, time zones, missed ticks.

Pure and synchronous: no I/O, no clock (``now`` is always an argument). Instants are
timezone-aware datetimes; what the scheduler stores is their unix time.

- :class:`Every` — a fixed interval, aligned to the unix epoch: ``Every(5 s)`` ticks at
  every whole multiple of 5 seconds since 1970-01-01 UTC, in every process alike (so
  two schedulers compute the same ticks, and the same tick ids).
- :class:`Cron` — a cron expression evaluated on the wall clock of a ``zoneinfo`` zone,
  by croniter. Daylight saving time, for a wall time the clock skips or repeats:

  * skipped (spring forward; 02:30 on 2026-03-29 in Europe/Berlin): the tick runs once,
    at the first instant after the gap (03:00 CEST). Several skipped wall times (a
    ``*/15`` entry in that hour) become that one tick.
  * repeated (fall back; 02:30 on 2026-10-25 in Europe/Berlin): the tick runs once, at
    the first occurrence (02:30 CEST); the repeated hour's wall times do not run again.

- :func:`due_ticks` — which ticks to send now, given the last tick handled: ticks at
  most ``grace`` late are all sent; older ones were *missed* (no scheduler ran) and the
  entry's policy decides: ``"latest"`` (default) runs the latest missed tick once
  (unless a later tick runs anyway), ``"all"`` runs every one (at most ``limit`` per
  call, oldest first), ``"skip"`` runs none.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from asyncq.errors import ConfigurationError

__all__ = [
    "DEFAULT_GRACE",
    "Cron",
    "Due",
    "Every",
    "Missed",
    "Schedule",
    "crontab",
    "due_ticks",
    "make_schedule",
    "tick_id",
    "zone",
]

Missed = Literal["latest", "all", "skip"]
MISSED_POLICIES: Final = ("latest", "all", "skip")
#: A tick sent this late is late, not missed (a scheduler handover stays well inside it).
DEFAULT_GRACE: Final = dt.timedelta(seconds=10)
UTC: Final = dt.UTC
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = dt.timedelta(microseconds=1)
#: cron wall times tried before giving up (only repeated-hour wall times are skipped)
_MAX_STEPS: Final = 10_000
#: longest repeated stretch of wall time (a fall-back clock change)
_MAX_FOLD: Final = dt.timedelta(hours=2)
_SAFE: Final = re.compile(r"[A-Za-z0-9_.:\-]+")
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.:\-]")


class Schedule(Protocol):
    """When an entry ticks."""

    def next_after(self, instant: dt.datetime) -> dt.datetime:
        """The first tick strictly after ``instant``."""
        ...

    def latest_until(self, instant: dt.datetime) -> dt.datetime:
        """The last tick at or before ``instant``."""
        ...

    def describe(self) -> str: ...


def zone(value: str | dt.tzinfo | None) -> dt.tzinfo:
    """A time zone from an IANA name (``"Europe/Berlin"``) or a tzinfo; None is UTC."""
    if value is None:
        return UTC
    if isinstance(value, dt.tzinfo):
        return value
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"unknown time zone {value!r} (an IANA name such as "
                                 "'Europe/Berlin')") from None


@dataclass(frozen=True, slots=True)
class Every:
    """Every ``period`` (at least one second), aligned to the unix epoch."""

    period: dt.timedelta

    def __post_init__(self) -> None:
        if self.period < dt.timedelta(seconds=1):
            raise ConfigurationError(f"a periodic interval must be at least 1 s, "
                                     f"not {self.period}")

    def _step(self) -> int:
        return self.period // _US

    def next_after(self, instant: dt.datetime) -> dt.datetime:
        return self.latest_until(instant) + self.period

    def latest_until(self, instant: dt.datetime) -> dt.datetime:
        elapsed = (instant - _EPOCH) // _US
        return _EPOCH + (elapsed // self._step()) * self._step() * _US

    def describe(self) -> str:
        return f"every {self.period}"


@dataclass(frozen=True, slots=True)
class Cron:
    """A cron expression (croniter's syntax) on the wall clock of ``tz``."""

    expression: str
    tz: dt.tzinfo = UTC

    def __post_init__(self) -> None:
        if not _croniter().is_valid(self.expression):
            raise ConfigurationError(f"invalid cron expression {self.expression!r}")

    def next_after(self, instant: dt.datetime) -> dt.datetime:
        walls = _croniter()(self.expression, _wall(instant, self.tz))
        for _ in range(_MAX_STEPS):
            tick = self.instant_of(walls.get_next(dt.datetime))
            if tick > instant:
                return tick
        raise ConfigurationError(f"cron {self.expression!r}: no tick after {instant}")

    def latest_until(self, instant: dt.datetime) -> dt.datetime:
        # from past any repeated hour: its wall times are earlier than the hour's end
        walls = _croniter()(self.expression, _wall(instant + _MAX_FOLD, self.tz))
        for _ in range(_MAX_STEPS):
            tick = self.instant_of(walls.get_prev(dt.datetime))
            if tick <= instant:
                return tick
        raise ConfigurationError(f"cron {self.expression!r}: no tick before {instant}")

    def instant_of(self, wall: dt.datetime) -> dt.datetime:
        """The instant a (naive) wall time of this zone runs at (see the module doc)."""
        first = wall.replace(tzinfo=self.tz, fold=0)
        if _wall(first, self.tz) == wall:
            return first.astimezone(UTC)  # exists (first occurrence when repeated)
        return _gap_end(wall, self.tz)

    def describe(self) -> str:
        return f"cron {self.expression} ({self.tz})"


def _croniter() -> Any:
    """croniter's class, imported on first use (it costs an app without cron entries
    some 12 ms at import)."""
    from croniter import croniter

    return croniter


def _wall(instant: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    # through UTC: astimezone() to an instant's own tzinfo changes nothing
    return instant.astimezone(UTC).astimezone(tz).replace(tzinfo=None)


def _gap_end(wall: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """The instant a clock change skipped over ``wall`` (found to the second)."""
    before = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)  # offset after the change
    after = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)  # offset before it
    low, high = min(before, after), max(before, after)
    target = high.astimezone(tz).utcoffset()
    while high - low > dt.timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).utcoffset() == target:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


@dataclass(frozen=True, slots=True)
class crontab:  # Celery's name and spelling
    """Celery's ``crontab(minute=..., hour=..., day_of_week=...)`` as a cron expression."""

    minute: str | int = "*"
    hour: str | int = "*"
    day_of_week: str | int = "*"
    day_of_month: str | int = "*"
    month_of_year: str | int = "*"

    @property
    def expression(self) -> str:
        return (f"{self.minute} {self.hour} {self.day_of_month} {self.month_of_year} "
                f"{self.day_of_week}")


def make_schedule(spec: dt.timedelta | float | str | crontab | Schedule,
                  tz: dt.tzinfo) -> Schedule:
    """A schedule from what ``app.periodic``/``app.schedule`` take: a timedelta or
    seconds (an interval), a cron string or :class:`crontab` (on ``tz``'s wall clock),
    or a ready :class:`Every`/:class:`Cron`."""
    if isinstance(spec, dt.timedelta):
        return Every(spec)
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        return Every(dt.timedelta(seconds=spec))
    if isinstance(spec, str):
        return Cron(spec, tz)
    if isinstance(spec, crontab):
        return Cron(spec.expression, tz)
    if isinstance(spec, Every | Cron):
        return spec
    raise ConfigurationError(f"not a schedule: {spec!r} (a timedelta, seconds, a cron "
                             "string or crontab(...))")


def tick_id(app: str, entry: str, tick: dt.datetime) -> str:
    """The task id of one tick of one entry, the same in every scheduler process:
    ``beat:APP:ENTRY:UNIX_MS``; when APP:ENTRY is long or has characters a task id may
    not have, its first 60 characters (others as ``_``), ``-`` and a hash of it."""
    if not entry or len(entry) > 200:
        raise ConfigurationError(f"invalid periodic entry name {entry!r}: 1-200 characters")
    key = f"{app}:{entry}"
    if not _SAFE.fullmatch(key) or len(key) > 100:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        key = f"{_UNSAFE.sub('_', key)[:60]}-{digest}"
    millis = (tick - _EPOCH) // dt.timedelta(milliseconds=1)
    return f"beat:{key}:{millis}"


@dataclass(frozen=True, slots=True)
class Due:
    """What to send now (oldest first) and the entry's new cursor (last tick handled)."""

    ticks: list[dt.datetime]
    cursor: dt.datetime


def due_ticks(schedule: Schedule, last: dt.datetime, now: dt.datetime, *,
              missed: Missed = "latest", grace: dt.timedelta = DEFAULT_GRACE,
              limit: int = 1000) -> Due:
    """The ticks after ``last`` (the last tick handled) that are due at ``now``."""
    if missed not in MISSED_POLICIES:
        raise ConfigurationError(f"missed= takes one of {MISSED_POLICIES}, not {missed!r}")
    start = last if missed == "all" else max(last, now - grace)
    ticks: list[dt.datetime] = []
    tick = schedule.next_after(start)
    while tick <= now and len(ticks) < limit:
        ticks.append(tick)
        tick = schedule.next_after(tick)
    if ticks:
        return Due(ticks, ticks[-1])
    if schedule.next_after(last) > now:
        return Due([], last)  # nothing was missed
    latest = schedule.latest_until(now)
    return Due([latest] if missed == "latest" else [], latest)
