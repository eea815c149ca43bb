"""Rate limits: shared by all workers, holding no run slot, leaving messages queued."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

import asyncq

RATE_TASKS = '''
import os, time
from asyncq import App

app = App(os.environ["T_APP"], broker=os.environ["T_BROKER"],
          backend=os.environ.get("T_BACKEND") or None, default_queue=os.environ["T_QUEUE"])
LEDGER = os.environ["T_LEDGER"]


@app.task(rate_limit=os.environ["T_RATE"], ignore_result=True)
async def tick(n: int) -> None:
    with open(LEDGER, "a") as f:
        f.write(f"{time.time():.6f} {n} {os.getpid()}\\n")
'''


def measure_two_workers(tmp_path: Path, broker: str, backend: str | None, *, rate: float,
                        seconds: float) -> tuple[int, float, dict[int, int]]:
    """Two CLI worker processes share ``rate``/s for ``seconds``: the runs they made,
    the rate measured between the first and last run, and runs per process."""
    (tmp_path / "rtasks.py").write_text(textwrap.dedent(RATE_TASKS))
    ledger = tmp_path / "ledger.txt"
    env = {**os.environ, "T_APP": f"rl{uuid.uuid4().hex[:8]}", "T_BROKER": broker,
           "T_BACKEND": backend or "", "T_QUEUE": f"rl-{uuid.uuid4().hex[:10]}",
           "T_LEDGER": str(ledger), "T_RATE": f"{rate:g}/s",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    sys.path.insert(0, str(tmp_path))
    os.environ.update({k: env[k] for k in ("T_APP", "T_BROKER", "T_BACKEND", "T_QUEUE",
                                           "T_LEDGER", "T_RATE")})
    try:
        import rtasks

        async def send() -> None:
            async with rtasks.app:
                await rtasks.app.enqueue_many(
                    [rtasks.tick.s(n) for n in range(int(rate * seconds * 1.5) + 50)])

        asyncio.run(send())
        procs = [subprocess.Popen(
            [sys.executable, "-m", "asyncq", "worker", "rtasks:app", "-c", "20", "-l",
             "warning"], cwd=tmp_path, env=env, stderr=subprocess.DEVNULL)
            for _ in range(2)]
        try:
            _wait_for_runs(ledger, 1, 30)
            time.sleep(seconds)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(30)

        async def clean() -> None:
            async with rtasks.app:
                await rtasks.app.broker.delete_queue(env["T_QUEUE"])

        asyncio.run(clean())
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("rtasks", None)
    rows = [line.split() for line in ledger.read_text().splitlines()]
    times = sorted(float(row[0]) for row in rows)
    per_process: dict[int, int] = {}
    for row in rows:
        per_process[int(row[2])] = per_process.get(int(row[2]), 0) + 1
    return len(times), (len(times) - 1) / (times[-1] - times[0]), per_process


def _wait_for_runs(ledger: Path, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ledger.exists() and len(ledger.read_text().splitlines()) >= count:
            return
        time.sleep(0.05)
    raise AssertionError("no worker ran the task")


@pytest.mark.parametrize("kind", ["redis", "amqp"])
def test_two_worker_processes_share_one_limit(kind: str, tmp_path: Path, redis_url: str,
                                              request: pytest.FixtureRequest) -> None:
    broker = redis_url if kind == "redis" else str(request.getfixturevalue("amqp_url"))
    backend = None if kind == "redis" else redis_url
    runs, rate, per_process = measure_two_workers(tmp_path, broker, backend, rate=20,
                                                  seconds=5)
    print(f"{kind}: {runs} runs, {rate:.2f}/s for a limit of 20/s, per process "
          f"{sorted(per_process.values())}")
    assert abs(rate - 20) / 20 < 0.10
    assert len(per_process) == 2  # both processes ran it: the limit is shared


@pytest.fixture(params=["memory", "redis"])
def rl_app(request: pytest.FixtureRequest, unique: Callable[[str], str]) -> asyncq.App:
    queue = unique("rl")
    url = f"memory://{queue}" if request.param == "memory" else str(
        request.getfixturevalue("redis_url"))
    if request.param == "redis":
        request.getfixturevalue("redis_cleanup")(queue)
    return asyncq.App(unique("app"), broker=url, default_queue=queue)


async def test_a_waiting_job_holds_no_run_slot(rl_app: asyncq.App) -> None:
    app = rl_app
    limited_runs: list[float] = []

    @app.task(rate_limit="2/s")
    async def limited(n: int) -> int:
        limited_runs.append(time.monotonic())
        return n

    @app.task
    async def fast(n: int) -> int:
        await asyncio.sleep(0.01)
        return n

    async with app:
        limited_handles = [await limited.enqueue(n) for n in range(4)]
        fast_handles = [await fast.enqueue(n) for n in range(10)]
        async with asyncq.Worker(app, concurrency=1, prefetch=20):
            began = time.monotonic()
            assert [await h.get(timeout=10) for h in fast_handles] == list(range(10))
            fast_done = time.monotonic() - began
            assert [await h.get(timeout=10) for h in limited_handles] == list(range(4))
            limited_done = time.monotonic() - began
    # one run slot: the fast tasks ran while the limited ones waited for their turn
    assert fast_done < 1.0 < limited_done
    # a burst of two, then 2/s: the last token comes 1 s after the first (a run may
    # start a little after its token, behind the fast tasks)
    assert limited_runs[-1] - limited_runs[0] > 0.75, limited_runs


async def test_waiting_messages_stay_on_the_server(rl_app: asyncq.App) -> None:
    app = rl_app

    @app.task(rate_limit="5/s")
    async def limited(n: int) -> int:
        return n

    async with app:
        handles = [await limited.enqueue(n) for n in range(40)]
        async with asyncq.Worker(app, concurrency=1, prefetch=1) as worker:
            await handles[2].get(timeout=10)
            await asyncio.sleep(0.3)
            stats = worker.statistics()
            assert stats.held <= 2  # concurrency + prefetch
            waiting = await app.broker.queue_size(app.default_queue)
            assert waiting >= 40 - 3 - 2 - 3  # done, held, and a few more since
        await app.broker.delete_queue(app.default_queue)


async def test_rabbitmq_with_rpc_results_refuses_a_rate_limit_clearly(
        amqp_url: str, unique: Callable[[str], str]) -> None:
    app = asyncq.App(unique("app"), broker=amqp_url, default_queue=unique("rl"))

    @app.task(rate_limit="5/m")
    async def limited() -> None: ...

    with pytest.raises(asyncq.ConfigurationError, match="rate limits are shared through Redis"):
        async with asyncq.Worker(app, concurrency=1):
            pass


def test_bad_rate_limits_fail_at_registration() -> None:
    app = asyncq.App("rl-bad", broker="memory://rl-bad")
    for bad in ("fast", "0/s", "10/d", "-1/s", "10/"):
        with pytest.raises(asyncq.ConfigurationError, match="rate_limit"):
            app.task(rate_limit=bad)(_noop)
    from asyncq.ratelimit import parse_rate

    assert parse_rate("100/s") == 100
    assert parse_rate("30/m") == 0.5
    assert parse_rate("3600/h") == 1
    assert parse_rate("5") == 5


async def _noop() -> None: ...


async def test_jobs_waiting_for_their_token_are_handed_back_on_stop(
        rl_app: asyncq.App) -> None:
    app = rl_app
    ran: list[int] = []
    burst_done = asyncio.Event()

    @app.task(rate_limit="1/h")
    async def hourly(n: int) -> None:
        ran.append(n)
        if len(ran) == 2:
            burst_done.set()

    async with app:
        for n in range(4):
            await hourly.enqueue(n)
        async with asyncq.Worker(app, concurrency=4, prefetch=0) as worker:
            await asyncio.wait_for(burst_done.wait(), 10)  # the burst of two
            await asyncio.sleep(0.2)
            assert worker.statistics().buffered == 2  # waiting for a token, not running
        assert ran == [0, 1]
        assert await app.broker.queue_size(app.default_queue) == 2  # back on the server
        await app.broker.delete_queue(app.default_queue)


async def test_an_admit_hook_that_fails_hands_the_message_back(unique: Callable[[str], str]
                                                               ) -> None:
    from asyncq.middleware import Job, Middleware

    class Flaky(Middleware):
        calls = 0

        async def admit(self, job: Job) -> None:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("gate closed")

    app = asyncq.App(unique("app"), broker=f"memory://{unique('m')}", middleware=[Flaky()])

    @app.task
    async def gated() -> str:
        return "through"

    async with app, asyncq.Worker(app, concurrency=1):
        assert await (await gated.enqueue()).get(timeout=10) == "through"
    assert Flaky.calls == 2
