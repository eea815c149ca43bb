"""Periodic tasks: an interval, a crontab, a cron string and an existing task with
arguments, then a scheduler beside a worker. Runs on the in-memory broker.

    python docs/examples/periodic_tasks.py [BROKER_URL]
"""

import asyncio
import sys
from datetime import UTC, datetime, timedelta

import asyncq
from asyncq import App, Beat, Worker, crontab

broker = sys.argv[1] if len(sys.argv) > 1 else "memory://periodic"
app = App("shop", broker=broker, timezone="Europe/Berlin")  # default zone of cron entries
ran: list[str] = []


@app.periodic(timedelta(seconds=1))                        # registers the task and schedules it
async def heartbeat() -> None:
    ran.append(asyncq.current_request().id)                # beat:shop:__main__.heartbeat:<ms>


@app.periodic(crontab(minute="30", hour="19", day_of_week="thu"), tz="Asia/Shanghai")
async def weekly_report() -> None: ...


@app.periodic("*/15 * * * *", name="sweep")               # a cron string works too
async def sweep() -> None: ...


@app.periodic(timedelta(minutes=5), missed="skip", grace=30)
async def refresh_prices() -> None: ...


@app.task
async def add(x: int, y: int) -> int:
    return x + y


app.schedule(add.s(2, 3), timedelta(minutes=1), name="add-every-minute")  # with arguments


async def main() -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)         # a Thursday, 13:00 in Berlin
    for entry in app.entries.values():
        zone = getattr(entry.schedule, "tz", app.timezone)
        upcoming = entry.schedule.next_after(now).astimezone(zone)
        print(f"{entry.name:26} {entry.schedule.describe():44} next {upcoming.isoformat()}")

    beat = Beat(app)                                       # what `asyncq beat` runs
    async with app, Worker(app):
        running = asyncio.create_task(beat.run())
        await asyncio.sleep(2.5)
        beat.stop()                                        # hands the leadership over
        await running
    print("heartbeats:", len(ran) >= 2, ran[0].rsplit(":", 1)[0])


if __name__ == "__main__":
    asyncio.run(main())
