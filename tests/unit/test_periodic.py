"""app.periodic / app.schedule / App(timezone=) and the scheduler on the memory broker."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import asyncq
from asyncq import App, Beat, crontab
from asyncq.schedule import Cron, Every, tick_id

UTC = dt.UTC


def new_app(**options: object) -> App:
    return App(f"p{uuid.uuid4().hex[:8]}", broker=f"memory://{uuid.uuid4().hex}",
               **options)  # type: ignore[arg-type]


def test_periodic_registers_the_task_and_its_entry() -> None:
    app = new_app(timezone="Europe/Berlin")

    @app.periodic(dt.timedelta(seconds=5), queue="beats")
    async def heartbeat() -> None: ...

    @app.periodic(crontab(minute="30", hour="19", day_of_week="thu"), tz="Asia/Shanghai")
    async def weekly_report() -> None: ...

    @app.periodic("*/15 * * * *", name="sweep")
    async def sweep() -> None: ...

    assert heartbeat.name in app.tasks
    assert heartbeat.config.queue == "beats"
    assert app.entries[heartbeat.name].schedule == Every(dt.timedelta(seconds=5))
    assert app.entries[weekly_report.name].schedule == Cron("30 19 * * thu",
                                                            ZoneInfo("Asia/Shanghai"))
    assert app.tasks["sweep"] is sweep
    assert app.entries["sweep"].schedule == Cron("*/15 * * * *", ZoneInfo("Europe/Berlin"))


def test_schedule_sends_an_existing_task_with_arguments() -> None:
    app = new_app()

    @app.task
    async def add(x: int, y: int) -> int:
        return x + y

    entry = app.schedule(add.s(2, 3), dt.timedelta(minutes=1), name="add-every-minute")
    assert app.timezone == UTC
    tick = dt.datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    message = app.codec.decode(entry.outgoing(tick).body)
    assert (message.task, list(message.args)) == (add.name, [2, 3])
    assert message.id == tick_id(app.name, "add-every-minute", tick)


@pytest.mark.parametrize(("call", "match"), [
    (lambda app, t: app.schedule(t.s(), 5, name="dup"), "already exists"),
    (lambda app, t: app.schedule(t.options(countdown=3).s(), 5, name="x"), "countdown"),
    (lambda app, t: app.schedule(t.s(), 5, name="x", missed="never"), "missed="),
    (lambda app, t: app.schedule(t.s(), 5, name=""), "entry name"),
    (lambda app, t: app.schedule(t.s(), "every day", name="x"), "cron"),
    (lambda app, t: app.schedule(t.s(), 5, name="x", tz="Nowhere/Else"), "time zone"),
    (lambda app, t: new_app().schedule(t.s(), 5, name="x"), "another app"),
])
def test_bad_entries_are_refused(call: object, match: str) -> None:
    app = new_app()

    @app.task
    async def job() -> None: ...

    app.schedule(job.s(), 5, name="dup")
    with pytest.raises(asyncq.ConfigurationError, match=match):
        call(app, job)  # type: ignore[operator]


class Clock:
    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now


async def test_two_schedulers_one_leader_each_tick_once() -> None:
    app = new_app()

    @app.periodic(dt.timedelta(seconds=1), name="tick")
    async def tick() -> None: ...

    clock = Clock(dt.datetime(2026, 1, 1, 12, 0, 0, 500000, tzinfo=UTC))
    one, two = Beat(app, clock=clock), Beat(app, clock=clock)
    async with app:
        assert await one.tick() == []
        assert one.leading
        assert await two.tick() == []
        assert not two.leading
        clock.now += dt.timedelta(seconds=3)
        sent = await one.tick() + await two.tick()
        assert sent == [tick_id(app.name, "tick", dt.datetime(2026, 1, 1, 12, 0, s,
                                                                tzinfo=UTC))
                        for s in (1, 2, 3)]
        assert await app.broker.queue_size("default") == 3
        assert one.statistics() == asyncq.BeatStats(leading=True, entries=1, sent=3,
                                                    duplicates=0, failed_rounds=0)
        await one.store.close()  # hands over: the other goes on from the same cursor
        clock.now += dt.timedelta(seconds=1)
        assert await two.tick() == [tick_id(app.name, "tick",
                                            dt.datetime(2026, 1, 1, 12, 0, 4, tzinfo=UTC))]
        assert two.statistics().sent == 1


async def test_run_sends_ticks_to_a_worker_until_stopped() -> None:
    app = new_app()
    ran: list[str] = []

    @app.periodic(dt.timedelta(seconds=1), name="hb")
    async def hb() -> None:
        ran.append(asyncq.current_request().id)

    beat = Beat(app, lease=0.3)
    async with app, asyncq.Worker(app):
        import asyncio

        running = asyncio.create_task(beat.run())
        async with asyncio.timeout(20):  # the first tick is due within a second
            while not ran:  # noqa: ASYNC110 - waits for the worker to run a tick
                await asyncio.sleep(0.05)
        beat.stop()
        await running
    assert len(ran) >= 1
    assert all(i.startswith(f"beat:{app.name}:hb:") for i in ran)
    assert not beat.leading


def test_cli_list_prints_entries_with_their_next_run_in_their_zone(tmp_path: Path) -> None:
    (tmp_path / "ptasks.py").write_text(textwrap.dedent('''
        from datetime import timedelta
        from asyncq import App, crontab
        app = App("ptasks", broker="memory://", timezone="Europe/Berlin")

        @app.periodic(crontab(minute="30", hour="19", day_of_week="thu"), tz="Asia/Shanghai")
        async def weekly_report() -> None: ...

        @app.periodic("*/15 * * * *", name="sweep")
        async def sweep() -> None: ...
    '''))
    done = subprocess.run([sys.executable, "-m", "asyncq", "beat", "ptasks:app", "--list"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    weekly, sweep = done.stdout.splitlines()
    assert weekly.startswith("ptasks.weekly_report  task=ptasks.weekly_report  cron 30 19 * * thu")
    assert "T19:30:00+08:00" in weekly
    assert sweep.startswith("sweep  task=sweep  cron */15 * * * * (Europe/Berlin)")
    assert ":00+01:00" in sweep or ":00+02:00" in sweep


def test_arguments_that_do_not_bind_or_serialize_fail_at_registration() -> None:
    app = new_app()

    @app.task
    async def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(TypeError, match="missing a required argument"):
        app.schedule(add.s(2), 60, name="short")  # type: ignore[call-arg]
    with pytest.raises(asyncq.SerializationError):
        app.schedule(add.s({1}, 2), 60, name="set")  # type: ignore[arg-type]
    assert app.entries == {}


def test_cli_beat_without_entries_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "notasks.py").write_text(
        'from asyncq import App\napp = App("n", broker="redis://127.0.0.1:1/0")\n')
    done = subprocess.run([sys.executable, "-m", "asyncq", "beat", "notasks:app"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.strip() == ("asyncq: error: notasks:app has no periodic entries "
                                   "(app.periodic / app.schedule)")


async def test_apps_sharing_a_memory_broker_each_have_a_leader() -> None:
    url = f"memory://{uuid.uuid4().hex}"
    first, second = App("first", broker=url), App("second", broker=url)
    for app in (first, second):
        app.schedule(app.task(name="job")(_job).s(), 1, name="job")
    beats = [Beat(first), Beat(second)]
    async with first, second:
        for beat in beats:
            await beat.tick()
        assert [beat.leading for beat in beats] == [True, True]
        for beat in beats:
            await beat.store.close()


async def _job() -> None: ...
