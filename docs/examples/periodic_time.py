"""Periodic tasks' time rules: zones, daylight saving time and missed ticks, computed
with asyncq.schedule (pure functions; no broker).

    python docs/examples/periodic_time.py
"""

from datetime import UTC, datetime, timedelta

from asyncq.schedule import Cron, Every, due_ticks, zone

berlin = zone("Europe/Berlin")
daily = Cron("30 2 * * *", berlin)                   # 02:30 every day, Berlin wall clock


def next_three(schedule: Cron, after: datetime) -> list[str]:
    ticks = []
    for _ in range(3):
        after = schedule.next_after(after)
        ticks.append(after.astimezone(berlin).isoformat())
    return ticks


# 2026-03-29: clocks jump from 02:00 to 03:00, 02:30 does not exist -> runs at 03:00
print("spring forward:", next_three(daily, datetime(2026, 3, 27, 12, tzinfo=UTC)))
# 2026-10-25: clocks go back from 03:00 to 02:00, 02:30 happens twice -> runs once
print("fall back:", next_three(daily, datetime(2026, 10, 23, 12, tzinfo=UTC)))

# Missed ticks: an hourly entry last handled at 00:00, and no scheduler ran until 05:20
hourly = Every(timedelta(hours=1))
last, now = datetime(2026, 1, 1, 0, tzinfo=UTC), datetime(2026, 1, 1, 5, 20, tzinfo=UTC)
for policy in ("latest", "all", "skip"):
    due = due_ticks(hourly, last, now, missed=policy)
    print(f"missed={policy}:", [t.strftime("%H:%M") for t in due.ticks])

# Ticks at most `grace` late (10 s by default) are late, not missed: all of them run
secondly = Every(timedelta(seconds=1))
late = due_ticks(secondly, now - timedelta(seconds=4), now)
print("late ticks after a 4 s handover:", len(late.ticks))
