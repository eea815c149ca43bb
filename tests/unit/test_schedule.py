"""Schedule maths: intervals, cron entries checked against croniter, zones, DST, missed ticks."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

import asyncq
from asyncq.schedule import Cron, Every, crontab, due_ticks, make_schedule, tick_id, zone

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def ticks(schedule: Cron | Every, after: dt.datetime, count: int) -> list[dt.datetime]:
    out = []
    for _ in range(count):
        after = schedule.next_after(after)
        out.append(after)
    return out


def local(instants: list[dt.datetime], tz: dt.tzinfo = BERLIN) -> list[str]:
    return [t.astimezone(tz).isoformat() for t in instants]


def test_intervals_are_aligned_to_the_epoch() -> None:
    every = Every(dt.timedelta(seconds=5))
    assert every.next_after(utc(2026, 1, 1, 0, 0, 3)) == utc(2026, 1, 1, 0, 0, 5)
    assert every.next_after(utc(2026, 1, 1, 0, 0, 5)) == utc(2026, 1, 1, 0, 0, 10)
    assert every.latest_until(utc(2026, 1, 1, 0, 0, 5)) == utc(2026, 1, 1, 0, 0, 5)
    assert every.latest_until(utc(2026, 1, 1, 0, 0, 9, 999999)) == utc(2026, 1, 1, 0, 0, 5)


def test_an_interval_ignores_dst() -> None:
    hourly = Every(dt.timedelta(hours=1))
    got = ticks(hourly, utc(2026, 10, 24, 23, 30), 4)
    assert [t - s for s, t in itertools.pairwise(got)] == [dt.timedelta(hours=1)] * 3
    assert local(got) == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00",
                          "2026-10-25T03:00:00+01:00", "2026-10-25T04:00:00+01:00"]


@pytest.mark.parametrize("expression", ["*/15 * * * *", "30 19 * * thu", "0 9 1-7 * mon",
                                        "5 4 * * *", "0 0 29 2 *"])
def test_a_cron_entry_agrees_with_croniter(expression: str) -> None:
    start = utc(2026, 5, 6, 7, 8, 9)
    expected = croniter(expression, start.replace(tzinfo=None))
    got = ticks(Cron(expression), start, 5)
    assert got == [expected.get_next(dt.datetime).replace(tzinfo=UTC) for _ in range(5)]


def test_crontab_is_celerys_keywords() -> None:
    weekly = crontab(minute="30", hour="19", day_of_week="thu")
    assert weekly.expression == "30 19 * * thu"
    shanghai = make_schedule(weekly, zone("Asia/Shanghai"))
    # Thursday 2026-12-03 19:30 in Shanghai is 11:30 UTC
    assert shanghai.next_after(utc(2026, 12, 3)) == utc(2026, 12, 3, 11, 30)
    assert shanghai.next_after(utc(2026, 12, 3, 11, 30)) == utc(2026, 12, 10, 11, 30)


def test_cron_entries_follow_their_zone() -> None:
    seven = Cron("0 7 * * *", zone("America/New_York"))
    assert seven.next_after(utc(2026, 7, 1)) == utc(2026, 7, 1, 11)  # EDT, UTC-4
    assert seven.next_after(utc(2026, 12, 1)) == utc(2026, 12, 1, 12)  # EST, UTC-5


def test_spring_forward_runs_a_skipped_time_once_at_the_end_of_the_gap() -> None:
    # Europe/Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist
    daily = Cron("30 2 * * *", BERLIN)
    assert local(ticks(daily, utc(2026, 3, 27, 12), 3)) == [
        "2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]


def test_spring_forward_folds_several_skipped_times_into_one_tick() -> None:
    quarterly = Cron("*/15 * * * *", BERLIN)
    assert local(ticks(quarterly, utc(2026, 3, 29, 0, 40), 4)) == [
        "2026-03-29T01:45:00+01:00", "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:15:00+02:00", "2026-03-29T03:30:00+02:00"]


def test_fall_back_runs_a_repeated_time_once_at_its_first_occurrence() -> None:
    # Europe/Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice
    daily = Cron("30 2 * * *", BERLIN)
    assert local(ticks(daily, utc(2026, 10, 23, 12), 3)) == [
        "2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    hourly = Cron("30 * * * *", BERLIN)
    assert local(ticks(hourly, utc(2026, 10, 24, 23), 4)) == [
        "2026-10-25T01:30:00+02:00", "2026-10-25T02:30:00+02:00",
        "2026-10-25T03:30:00+01:00", "2026-10-25T04:30:00+01:00"]


def test_next_and_latest_from_inside_the_repeated_hour() -> None:
    hourly = Cron("30 * * * *", BERLIN)
    second_0210 = utc(2026, 10, 25, 1, 10)  # 02:10 CET, the second time 02:10 is shown
    assert hourly.next_after(second_0210) == utc(2026, 10, 25, 2, 30)  # 03:30 CET
    assert hourly.latest_until(second_0210) == utc(2026, 10, 25, 0, 30)  # 02:30 CEST


def test_a_dst_day_never_ticks_twice_for_a_scheduler_polling_every_minute() -> None:
    for day in (utc(2026, 3, 28, 22), utc(2026, 10, 24, 22)):
        daily = Cron("30 2 * * *", BERLIN)
        last, sent = day, []
        for minute in range(1, 8 * 60):
            due = due_ticks(daily, last, day + dt.timedelta(minutes=minute))
            sent += due.ticks
            last = due.cursor
        assert len(sent) == 1, sent


def test_late_ticks_within_the_grace_all_run() -> None:
    every = Every(dt.timedelta(seconds=1))
    due = due_ticks(every, utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 1, 0, 0, 6, 500000))
    assert due.ticks == [utc(2026, 1, 1, 0, 0, s) for s in range(1, 7)]
    assert due.cursor == utc(2026, 1, 1, 0, 0, 6)


def test_missed_ticks_latest_runs_the_latest_once() -> None:
    hourly = Every(dt.timedelta(hours=1))
    last, now = utc(2026, 1, 1, 0), utc(2026, 1, 1, 5, 20)
    due = due_ticks(hourly, last, now)
    assert due.ticks == [utc(2026, 1, 1, 5)]
    assert due_ticks(hourly, due.cursor, now).ticks == []  # and only once


def test_missed_ticks_skip_and_all() -> None:
    hourly = Every(dt.timedelta(hours=1))
    last, now = utc(2026, 1, 1, 0), utc(2026, 1, 1, 5, 20)
    skipped = due_ticks(hourly, last, now, missed="skip")
    assert skipped.ticks == []
    assert skipped.cursor == utc(2026, 1, 1, 5)
    assert due_ticks(hourly, last, now, missed="all").ticks == [
        utc(2026, 1, 1, h) for h in range(1, 6)]
    capped = due_ticks(hourly, last, now, missed="all", limit=2)
    assert capped.ticks == [utc(2026, 1, 1, 1), utc(2026, 1, 1, 2)]


def test_nothing_is_due_before_the_next_tick() -> None:
    due = due_ticks(Cron("0 * * * *"), utc(2026, 1, 1, 3), utc(2026, 1, 1, 3, 59))
    assert due.ticks == []
    assert due.cursor == utc(2026, 1, 1, 3)


def test_tick_ids_are_deterministic_valid_task_ids() -> None:
    one = tick_id("shop", "shop.tasks.heartbeat", utc(2026, 1, 1, 0, 0, 5))
    assert one == tick_id("shop", "shop.tasks.heartbeat", utc(2026, 1, 1, 0, 0, 5))
    assert one == "beat:shop:shop.tasks.heartbeat:1767225605000"
    assert asyncq.message.valid_id(one)
    odd = tick_id("shop", "tests.test_x.<locals>.job " + "x" * 100, utc(2026, 1, 1))
    assert asyncq.message.valid_id(odd)
    assert odd.startswith("beat:shop:tests.test_x._locals_.job_xxx")
    assert odd != tick_id("shop", "tests.test_x.<locals>.job " + "x" * 99, utc(2026, 1, 1))
    with pytest.raises(asyncq.ConfigurationError, match="entry name"):
        tick_id("shop", "", utc(2026, 1, 1))


@pytest.mark.parametrize("bad", ["not cron", "61 * * * *", dt.timedelta(0), object()])
def test_bad_schedules_are_refused(bad: object) -> None:
    with pytest.raises(asyncq.ConfigurationError):
        make_schedule(bad, UTC)  # type: ignore[arg-type]


def test_unknown_zone_is_a_configuration_error() -> None:
    with pytest.raises(asyncq.ConfigurationError, match="time zone"):
        zone("Mars/Olympus")
