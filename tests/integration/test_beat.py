"""Periodic tasks on real servers: several schedulers, one enqueue per tick, a leader
SIGKILLed midway, schedule state kept on the broker's own server."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asyncq import App, Beat
from asyncq.schedule import tick_id
from tests.integration.beat_harness import Fleet, run_fleet, tick_figures


@pytest.fixture
async def fleet(real_broker: str, tmp_path: Path) -> AsyncIterator[Fleet]:
    fleet = Fleet(real_broker, tmp_path)
    yield fleet
    fleet.kill()
    await fleet.cleanup()


@pytest.mark.timeout(90)
async def test_three_schedulers_send_each_tick_once_through_a_leader_kill(
        fleet: Fleet) -> None:
    figures = run_fleet(fleet, seconds=9, kill_at=3, lease=2)
    ticks = tick_figures(await fleet.tick_ids())
    assert ticks["duplicated"] == 0, (ticks, fleet.logs())
    assert ticks["missed"] == 0, (ticks, fleet.logs())
    assert ticks["enqueued"] >= 6, (ticks, fleet.logs())
    assert figures["handover_s"] < 2 * 4 / 3 + 3, figures  # lease * 4/3 (Redis), + slack
    assert figures["exit_codes"][figures["killed"]] == -9
    assert all(code == 0 for name, code in figures["exit_codes"].items()
               if name != figures["killed"]), (figures, fleet.logs())


async def test_the_cursor_survives_a_restart_and_a_missed_tick_runs_once(
        real_broker: str) -> None:
    """A beat stops; the next one finds the entry's cursor on the server, sends the
    latest missed tick once and the late ones all."""
    await _restart_scenario(real_broker)


async def test_the_schedule_on_a_quorum_queue(amqp_url: str) -> None:
    await _restart_scenario(f"{amqp_url.rstrip('/')}/?queue_type=quorum")


async def _restart_scenario(real_broker: str) -> None:
    name = f"beatstate{uuid.uuid4().hex[:8]}"
    queue = f"beatstate-{uuid.uuid4().hex[:8]}"
    app = App(name, broker=real_broker)

    @app.periodic(dt.timedelta(minutes=1), name="minutely", queue=queue)
    async def minutely() -> None: ...

    @app.periodic(dt.timedelta(seconds=1), name="secondly", queue=queue, missed="skip",
                  grace=3)
    async def secondly() -> None: ...

    start = dt.datetime(2026, 1, 1, 12, 0, 30, tzinfo=dt.UTC)
    clock = [start]
    async with app:
        try:
            first = Beat(app, lease=1, clock=lambda: clock[0])
            assert await lead(first) == []  # new entries start now
            await first.store.close()
            clock[0] = start + dt.timedelta(minutes=5, seconds=1)  # nobody ran for 5 min
            second = Beat(app, lease=1, clock=lambda: clock[0])
            # minutely: the latest missed tick (12:05:00) once; secondly: only the ticks
            # at most 3 s late (missed="skip", grace=3)
            assert sorted(await lead(second)) == sorted([
                tick_id(name, "minutely", dt.datetime(2026, 1, 1, 12, 5, tzinfo=dt.UTC)),
                *(tick_id(name, "secondly", clock[0] - dt.timedelta(seconds=s))
                  for s in range(3))])
            assert await second.tick() == []  # and only once
            await second.store.close()
            third = Beat(app, lease=1, clock=lambda: clock[0])
            assert await lead(third) == []  # a restart re-sends nothing
            await third.store.close()
        finally:
            await app.broker.delete_queue(queue)
            await _forget_beat(app)


async def lead(beat: Beat) -> list[str]:
    """Rounds until ``beat`` leads (RabbitMQ hands the leadership over asynchronously);
    the tick ids of the round in which it first led."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sent = await beat.tick()
        if beat.leading:
            return sent
        await asyncio.sleep(0.05)
    raise AssertionError("the scheduler never led")


async def _forget_beat(app: App) -> None:
    if app.broker.url.startswith("redis"):
        client = app.broker.client  # type: ignore[attr-defined]
        await client.delete(f"asyncq:beat:{{{app.name}}}:leader",
                            f"asyncq:beat:{{{app.name}}}:cursors")
    else:
        async with app.broker.raw_channel() as channel:  # type: ignore[attr-defined]
            await channel.queue_delete(f"asyncq.beat.{app.name}")


async def test_redis_queues_a_tick_sent_twice_once(redis_url: str) -> None:
    """The mark: a second send of the same tick (a paused leader that lost its lease, or
    a resend after a failover) is dropped by the server."""
    app = App(f"beatmark{uuid.uuid4().hex[:8]}", broker=redis_url)
    queue = f"beatmark-{uuid.uuid4().hex[:8]}"

    @app.task(queue=queue)
    async def job(n: int) -> None: ...

    entry = app.schedule(job.s(7), dt.timedelta(seconds=30), name="job")
    tick = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    async with app:
        try:
            one, two = Beat(app).store, Beat(app).store
            message = entry.outgoing(tick)
            assert await one.send("job", message, tick, entry.mark_ttl(tick))
            assert not await two.send("job", entry.outgoing(tick), tick, entry.mark_ttl(tick))
            assert await app.broker.queue_size(queue) == 1
            mark = f"asyncq:{{{queue}}}:beat:{message.id}"
            assert 0 < await app.broker.client.pttl(mark) <= 10 * 60 * 1000  # type: ignore[attr-defined]
            assert (await one.load())["job"] == tick
        finally:
            await app.broker.client.delete(  # type: ignore[attr-defined]
                f"asyncq:{{{queue}}}:beat:{entry.outgoing(tick).id}")
            await app.broker.delete_queue(queue)
            await _forget_beat(app)
