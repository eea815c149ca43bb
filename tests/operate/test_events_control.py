"""Heartbeats, task events and control over the wire, on each broker, in one process."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from asyncq import App, Worker
from asyncq.brokers import Outgoing
from asyncq.errors import ConfigurationError
from asyncq.events import bus_for, is_lost
from asyncq.events.control import rate_limit_overrides
from asyncq.events.monitor import Events
from asyncq.events.queues import purge_queue, queue_depths


def make_app(url: str, unique: Callable[[str], str], **kw: Any) -> tuple[App, str]:
    queue = unique("q")
    app = App(unique("app"), broker=url,
              middleware=[Events(0.2, received=True, started=True)], **kw)

    @app.task(name="ok", queue=queue)
    async def ok(x: int) -> int:
        return x

    @app.task(name="bad", queue=queue)
    async def bad() -> None:
        raise ValueError("nope")

    @app.task(name="slow", queue=queue)
    async def slow(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"

    return app, queue


async def collect(follow: Any, want: Callable[[list[dict[str, Any]]], bool],
                  timeout: float = 10.0) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        async for event in follow:
            seen.append(event)
            if want(seen):
                return seen
    raise AssertionError("unreachable")


async def test_task_and_worker_events(any_broker: str, unique: Callable[[str], str],
                                      cleanup: Callable[[App, str], None]) -> None:
    app, _queue = make_app(any_broker, unique)
    cleanup(app, _queue)
    async with app:
        bus = bus_for(app)
        follow = bus.follow()
        first = asyncio.ensure_future(follow.__anext__())  # subscribe before the worker
        await asyncio.sleep(0.3)
        async with Worker(app, concurrency=4) as worker:
            ok = await app.tasks["ok"].enqueue(7)
            bad = await app.tasks["bad"].enqueue()
            poison_id = uuid.uuid4().hex
            body = app.codec.encode(poison_id, "no.such.task", [], {}, {}, {})
            await app.broker.publish(Outgoing(poison_id, _queue, body))
            assert await ok.get(timeout=10) == 7
            with pytest.raises(Exception, match="nope"):
                await bad.get(timeout=10)
            events = [await first]
            wanted = {"task-succeeded", "task-failed", "worker-heartbeat",
                      "task-dead-lettered"}
            events += await collect(follow, lambda seen: wanted
                                    <= {e["type"] for e in events + seen})
            await worker.join(5)
        await follow.aclose()
        types = [e["type"] for e in events]
        assert types[0] == "worker-online"
        done = next(e for e in events if e["type"] == "task-succeeded")
        assert done["id"] == ok.id
        assert done["task"] == "ok"
        assert done["runtime"] >= 0
        failed = next(e for e in events if e["type"] == "task-failed")
        assert failed["id"] == bad.id
        assert "nope" in failed["error"]
        assert any(e["type"] == "task-started" and e["id"] == ok.id for e in events)
        assert any(e["type"] == "task-received" and e["id"] == ok.id for e in events)
        dead = next(e for e in events if e["type"] == "task-dead-lettered")
        assert dead["id"] == poison_id
        assert "unknown task" in dead["error"]


async def test_dead_letters_without_wrapping_prepare(redis_url: str,
                                                     unique: Callable[[str], str],
                                                     cleanup: Callable[[App, str], None]
                                                     ) -> None:
    """Without task-received events the executor's ``prepare`` stays the method (nothing
    on a good message's path), and a dead letter still becomes an event."""
    queue = unique("q")
    app = App(unique("app"), broker=redis_url, middleware=[Events(0.2)])
    cleanup(app, queue)

    @app.task(name="ok", queue=queue)
    async def ok(x: int) -> int:
        return x

    async with app:
        follow = bus_for(app).follow()
        first = asyncio.ensure_future(follow.__anext__())
        await asyncio.sleep(0.3)
        async with Worker(app, concurrency=4) as worker:
            assert "prepare" not in vars(worker.executor)
            poison_id = uuid.uuid4().hex
            body = app.codec.encode(poison_id, "no.such.task", [], {}, {}, {})
            await app.broker.publish(Outgoing(poison_id, queue, body))
            assert await (await ok.enqueue(3)).get(timeout=10) == 3
            events = [await first]
            events += await collect(follow, lambda seen: {"task-dead-lettered",
                                                          "task-succeeded"}
                                    <= {e["type"] for e in events + seen})
            await worker.join(5)
        await follow.aclose()
        dead = next(e for e in events if e["type"] == "task-dead-lettered")
        assert dead["id"] == poison_id
        assert dead["queue"] == queue
        assert "unknown task" in dead["error"]
        assert not any(e["type"] == "task-received" for e in events)


async def test_control_and_inspect(any_broker: str, unique: Callable[[str], str],
                                   cleanup: Callable[[App, str], None]) -> None:
    app, queue = make_app(any_broker, unique)
    cleanup(app, queue)
    async with app, Worker(app, concurrency=2) as worker:
        running = await app.tasks["slow"].enqueue(3.0)
        await asyncio.sleep(0.5)
        pong = await app.control.ping(timeout=0.5)
        assert list(pong.values()) == [{"ok": "pong"}]
        name = next(iter(pong))
        active = await app.inspect(timeout=0.5).active()
        assert [job["id"] for job in active[name]] == [running.id]
        stats = (await app.inspect(timeout=0.3).stats())[name]
        assert stats["queues"] == [queue]
        assert stats["concurrency"] == 2
        assert sorted((await app.inspect(timeout=0.3).registered())[name]) == ["bad", "ok", "slow"]
        assert (await app.inspect(["nobody@nowhere"], 0.3).ping()) == {}
        reply = await app.control.rate_limit("ok", "10/s", limit=1)
        if any_broker.startswith("amqp"):  # RPC results: no Redis to share a bucket in
            assert "shared through Redis" in reply[name]["error"]
        else:
            assert reply[name] == {"ok": "rate limit of ok now 10/s"}
            assert rate_limit_overrides(app) == {"ok": "10/s"}
            assert (await app.inspect(timeout=0.3).stats())[name]["rate_limits"] == {
                "ok": "10/s"}
            assert (await app.control.rate_limit("ok", "off", limit=1))[name] == {
                "ok": "rate limit of ok now none"}
        with pytest.raises(ConfigurationError, match="rate_limit must look like"):
            await app.control.rate_limit("ok", "fast")
        with pytest.raises(ConfigurationError, match="no task named"):
            await app.control.rate_limit("nope", "1/s")
        bad_rate = await app.control.broadcast("rate_limit", {"task": "ok", "rate": "x"},
                                               limit=1)
        assert "error" in bad_rate[name]
        last = await app.control.cancel_consumer(queue, limit=1)
        assert "last queue" in last[name]["error"]
        assert await running.get(timeout=10) == "done"
        assert (await app.control.shutdown(limit=1))[name] == {"ok": "shutting down"}
        await asyncio.wait_for(worker._task, 10)  # the worker stopped by itself


async def test_signed_control_drops_unsigned(any_broker: str, unique: Callable[[str], str],
                                            cleanup: Callable[[App, str], None]) -> None:
    keys = {"k1": b"0123456789abcdef0123"}
    app, queue = make_app(any_broker, unique, signing_keys=keys)
    cleanup(app, queue)
    stranger = App(app.name, broker=any_broker)  # same app name, no keys
    async with app, stranger, Worker(app, concurrency=1):
        await asyncio.sleep(0.3)
        assert len(await app.control.ping(limit=1)) == 1
        assert await stranger.control.ping(timeout=0.5) == {}


async def test_registry_and_lost_worker(unique: Callable[[str], str], redis_url: str,
                                        cleanup: Callable[[App, str], None]) -> None:
    queue = unique("q")
    app = App(unique("app"), broker=redis_url, middleware=[Events(2.0)])  # slow CI: 6 s

    @app.task(name="ok", queue=queue)
    async def ok() -> None:
        return None

    cleanup(app, queue)
    async with app:
        bus = bus_for(app)
        async with Worker(app, concurrency=1):
            await asyncio.sleep(0.3)
            (info,) = await bus.workers() or []
            assert info["state"] in ("online", "heartbeat")
            assert not is_lost(info)
        assert await bus.workers() == []  # offline: gone from the registry
        await bus.put_worker("9@gone", {"worker": "9@gone", "ts": time.time() - 1,
                                        "interval": 0.2})
        (ghost,) = await bus.workers() or []
        assert is_lost(ghost)


async def test_depths_and_purge(any_broker: str, unique: Callable[[str], str]) -> None:
    app, queue = make_app(any_broker, unique)
    async with app:
        await app.tasks["ok"].enqueue(1)
        await app.tasks["ok"].enqueue(2)
        await app.tasks["ok"].options(countdown=60).enqueue(3)
        depth = (await queue_depths(app, [queue]))[queue]
        assert depth.waiting == 2
        if not any_broker.startswith("amqp"):
            assert depth.scheduled == 1
        removed = await purge_queue(app, queue)
        assert removed >= 2
        assert (await queue_depths(app, [queue]))[queue].waiting == 0
        await app.broker.delete_queue(queue)
