"""F4 silent drop: a 30 s black hole between the clients and the broker (an in-process
proxy that stops forwarding without closing anything) is detected and survived, 0 lost.
Redis, and RabbitMQ with asyncq's default heartbeat (10 s) and with ``?heartbeat=5``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import asyncq
from tests.faults.conftest import (
    Ledger,
    RabbitNode,
    RedisServer,
    free_port,
    record,
    start_worker,
    stop,
)
from tests.faults.test_chaos import load_tasks, wait_done, wait_empty

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

HOLE_SECONDS = float(os.environ.get("F4_HOLE_SECONDS", "30"))


class BlackHoleProxy:
    """Forwards TCP to a server; `hole()` silently stops every connection open at that
    time for good (data and closes from either side are swallowed), and stalls new ones
    until `mend()`. `accepted` has the time of every connection made."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.epoch = 0
        self.open = asyncio.Event()
        self.open.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.accepted: list[float] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    def hole(self) -> None:
        self.epoch += 1
        self.open.clear()

    def mend(self) -> None:
        self.open.set()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.append(time.time())
        await self.open.wait()
        epoch = self.epoch
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        self._writers += [writer, up_writer]
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst, epoch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    epoch: int) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await src.read(65536):
                if epoch != self.epoch:
                    continue  # swallowed: nothing closes, nothing arrives
                dst.write(data)
                await dst.drain()
        if epoch == self.epoch:  # a server closing a black-holed connection is not seen
            dst.close()


class LeakedCancel(AssertionError):
    """enqueue_many raised CancelledError though nobody cancelled the producer."""


async def enqueue(mod: Any, ledger: Ledger, numbers: range) -> tuple[list[Any], int, int]:
    """Enqueue until confirmed; return the handles, the failures and how many of them
    were a CancelledError that was not ours (an asyncq bug on RabbitMQ, see below)."""
    sigs = [mod.work.options(task_id=f"f4-{n}").s(n) for n in numbers]
    failures = leaked = 0
    while True:
        try:
            handles = await mod.app.enqueue_many(sigs)
        except asyncq.AsyncqError:
            failures += 1
            await asyncio.sleep(0.5)
            continue
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if me is None or me.cancelling():
                raise  # really cancelled
            failures += 1
            leaked += 1
            await asyncio.sleep(0.5)
            continue
        ledger.producer_note(list(numbers))
        return handles, failures, leaked


@dataclass
class HoleRun:
    """What one black-hole scenario saw (times are unix times)."""

    results: list[Any]
    failures: int
    leaked: int
    hole_at: float
    mended_at: float
    enqueued_at: float
    first_after: float


async def through_the_hole(mod: Any, ledger: Ledger, proxy: BlackHoleProxy,
                           drain_s: float) -> HoleRun:
    """100 tasks before the hole, 100 enqueued while it lasts, 100 after it closes."""
    before, _, _ = await enqueue(mod, ledger, range(0, 100))
    await wait_done(ledger, set(range(100)), 60)
    proxy.hole()
    hole_at = time.time()
    during_task = asyncio.create_task(enqueue(mod, ledger, range(100, 200)))
    await asyncio.sleep(HOLE_SECONDS)
    proxy.mend()
    mended_at = time.time()
    during, failures, leaked = await during_task
    enqueued_at = time.time()
    after, _, leaked_after = await enqueue(mod, ledger, range(200, 300))
    await wait_done(ledger, set(range(300)), drain_s)
    results = [await h.get(timeout=120) for h in (*before, *during, *after)]
    first_after = min(ts for e, n, _, ts in ledger.rows() if e == "done" and n >= 100)
    return HoleRun(results, failures, leaked + leaked_after, hole_at, mended_at, enqueued_at,
                   first_after)


async def test_f4_black_hole(redis_server: RedisServer, fault_env: tuple[Path, Ledger],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    workdir, ledger = fault_env
    proxy = BlackHoleProxy(redis_server.port)
    await proxy.start()
    url = f"redis://127.0.0.1:{proxy.port}/0"
    mod = load_tasks(workdir, url, ledger, monkeypatch)
    worker = start_worker(workdir, url, ledger, "-c", "20", "--lease", "2", name="f4")
    try:
        async with mod.app:
            run = await through_the_hole(mod, ledger, proxy, 180)
    finally:
        stop(worker)
        await proxy.close()
    assert run.results == [2 * n for n in range(300)]
    done = ledger.counts("done")
    figures = {"tasks": 300, "completed": len(done), "lost": 300 - len(done),
               "duplicate_executions": sum(c - 1 for c in done.values() if c > 1),
               "hole_s": HOLE_SECONDS, "producer_enqueue_failures_during_hole": run.failures,
               "first_completion_after_mend_s": round(run.first_after - run.mended_at, 2),
               "since_hole_start_s": round(run.first_after - run.hole_at, 2)}
    record("F4_silent_drop_redis", figures)
    assert figures["lost"] == 0


@pytest.mark.parametrize("heartbeat", [None, 5], ids=["default-heartbeat", "heartbeat-5"])
async def test_f4_black_hole_rabbitmq(heartbeat: int | None, rabbit_node: RabbitNode,
                                      redis_server: RedisServer,
                                      fault_env: tuple[Path, Ledger],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The hole is between every client (worker and producer) and RabbitMQ; results go
    straight to a throwaway Redis. Detection is up to the AMQP heartbeat: aiormq closes a
    connection that received nothing for 3 x (heartbeat + 1) s; asyncq's default is 10 s."""
    workdir, ledger = fault_env
    proxy = BlackHoleProxy(rabbit_node.port)
    await proxy.start()
    queue = "f4"
    url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
    if heartbeat is not None:
        url += f"?heartbeat={heartbeat}"
    monkeypatch.setenv("F_BACKEND", redis_server.url)
    mod = load_tasks(workdir, url, ledger, monkeypatch, queue)
    worker = start_worker(workdir, url, ledger, "-c", "20", name="f4-amqp", queue=queue)
    try:
        async with mod.app:
            run = await through_the_hole(mod, ledger, proxy, 240)
            await wait_empty(rabbit_node, queue, 60)
    finally:
        stop(worker)
        await proxy.close()
    # every task queue empty; the revoke stream (asyncq.control.<app>.revoked) keeps its
    # revocations and start markers for the revoke window by design (asyncq/control)
    left = {name: ready + unacked for name, (ready, unacked) in rabbit_node.queues().items()
            if not name.startswith("asyncq.control.")}
    assert run.results == [2 * n for n in range(300)]
    done = ledger.counts("done")
    reconnects = [at for at in proxy.accepted if at > run.hole_at]
    figures = {"tasks": 300, "completed": len(done), "lost": 300 - len(done),
               "duplicate_executions": sum(c - 1 for c in done.values() if c > 1),
               "hole_s": HOLE_SECONDS, "heartbeat_s": heartbeat or "asyncq default (10)",
               "first_reconnect_after_hole_start_s":
                   round(reconnects[0] - run.hole_at, 2) if reconnects else None,
               "producer_enqueue_failures_during_hole": run.failures,
               "producer_leaked_cancelled_errors": run.leaked,
               "producer_enqueued_after_hole_start_s": round(run.enqueued_at - run.hole_at, 2),
               "first_completion_after_mend_s": round(run.first_after - run.mended_at, 2),
               "since_hole_start_s": round(run.first_after - run.hole_at, 2), "leftover": left}
    record(f"F4_silent_drop_rabbitmq_{'heartbeat_' + str(heartbeat) if heartbeat else 'default'}",
           figures)
    assert figures["lost"] == 0
    assert not any(left.values()), left
    if run.leaked:
        raise LeakedCancel(f"{run.leaked} CancelledError(s) from enqueue_many")
