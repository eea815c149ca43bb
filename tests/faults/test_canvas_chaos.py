"""Workflows under worker SIGKILLs: a chord of 1,000 members and a chain of 10.

Run: ./scripts/test tests/faults/test_canvas_chaos.py -m faults
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import asyncq
from tests.faults.conftest import RedisServer, record, stop

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

TASKS = '''
import asyncio, os, time
from asyncq import App

app = App("canvas-faults", broker=os.environ["F_BROKER"],
          backend=os.environ.get("F_BACKEND") or None, default_queue=os.environ["F_QUEUE"])
LEDGER = os.environ["F_LEDGER"]


def note(event, n):
    with open(f"{LEDGER}.{os.getpid()}", "a") as f:
        f.write(f"{event} {n}\\n")


@app.task(name="cf.member")
async def member(n: int) -> int:
    note("member", n)
    await asyncio.sleep(0.2)
    return n


@app.task(name="cf.total")
async def total(values: list[int]) -> list[int]:
    note("callback", len(values))
    return [len(values), sum(values)]


@app.task(name="cf.step")
async def step(x: int) -> int:
    note("step", x)
    await asyncio.sleep(0.6)
    return x + 1
'''


@dataclass
class Where:
    """Broker and results: a throwaway Redis for both, or RabbitMQ with its results there."""

    broker: str
    backend: str
    queue: str

    def env(self, workdir: Path) -> dict[str, str]:
        return {"F_BROKER": self.broker, "F_BACKEND": self.backend, "F_QUEUE": self.queue,
                "F_LEDGER": str(workdir / "ledger")}


@pytest.fixture(params=["redis", "amqp"])
def where(request: pytest.FixtureRequest, redis_server: RedisServer) -> Iterator[Where]:
    if request.param == "redis":
        yield Where(redis_server.url, "", "work")
        return
    amqp_url = str(request.getfixturevalue("amqp_url"))
    found = Where(amqp_url, redis_server.url, f"canvas-faults-{os.getpid()}-{time.time_ns()}")
    yield found

    async def drop() -> None:
        app = asyncq.App("canvas-faults-cleanup", broker=amqp_url)
        async with app:
            await app.broker.delete_queue(found.queue)

    asyncio.run(drop())


def _start(workdir: Path, where: Where, name: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **where.env(workdir)}
    with (workdir / f"{name}.log").open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "asyncq", "worker", "ctasks:app", "-Q",
                                 where.queue, "-c", "20", "--lease", "2", "-l", "warning"],
                                cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _events(workdir: Path, event: str) -> Counter[int]:
    found: Counter[int] = Counter()
    for path in workdir.glob("ledger.*"):
        for line in path.read_text().splitlines():
            kind, n = line.split()
            if kind == event:
                found[int(n)] += 1
    return found


async def _kill_during(workers: list[subprocess.Popen[bytes]], workdir: Path, where: Where,
                       kills: int, every: float) -> list[float]:
    """SIGKILL a worker ``kills`` times, ``every`` seconds apart, starting a new one each time."""
    at: list[float] = []
    for k in range(kills):
        await asyncio.sleep(every)
        victim = workers[k % len(workers)]
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(10)
        at.append(time.time())
        workers[k % len(workers)] = _start(workdir, where, f"w{k}-again")
    return at


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "ctasks.py").write_text(textwrap.dedent(TASKS))
    return tmp_path


def _app(workdir: Path, where: Where, monkeypatch: pytest.MonkeyPatch) -> asyncq.App:
    # through monkeypatch: a variable left set (F_BACKEND) sent later scenarios' workers
    # to this one's dead result store
    for name, value in where.env(workdir).items():
        monkeypatch.setenv(name, value)
    monkeypatch.syspath_prepend(str(workdir))
    sys.modules.pop("ctasks", None)
    import ctasks  # type: ignore[import-not-found]

    app: asyncq.App = ctasks.app
    return app


async def test_chord_of_1000_with_three_worker_kills(where: Where, redis_server: RedisServer,
                                                     workdir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(workdir, where, monkeypatch)
    workers = [_start(workdir, where, f"w{i}") for i in range(2)]
    member, total = app.tasks["cf.member"], app.tasks["cf.total"]
    try:
        async with app:
            started = time.time()
            handle = await asyncq.chord([member.s(i) for i in range(1000)], total.s()).enqueue()
            enqueued = time.time() - started
            kills = await _kill_during(workers, workdir, where, 3, 1.5)
            value = await handle.get(timeout=300)
            elapsed = time.time() - started
            record_raw = redis_server.client().get(f"asyncq:result:{await handle.tail_id()}")
    finally:
        for proc in workers:
            stop(proc)
    runs = _events(workdir, "member")
    callbacks = _events(workdir, "callback")
    figures = {"members": 1000, "kills": len(kills), "enqueue_s": round(enqueued, 3),
               "completed_s": round(elapsed, 2),
               "members_run_more_than_once": sum(1 for c in runs.values() if c > 1),
               "callback_runs": sum(callbacks.values()), "callback_got": dict(callbacks),
               "value": value}
    record(f"canvas_chord_1000_kills_{where.broker.split(':')[0]}", figures)
    print(figures)
    assert value == [1000, sum(range(1000))]
    assert set(runs) == set(range(1000))
    assert record_raw is not None
    assert callbacks == Counter({1000: callbacks[1000]})
    assert callbacks[1000] >= 1


async def test_chain_of_10_with_worker_kills(where: Where, workdir: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(workdir, where, monkeypatch)
    workers = [_start(workdir, where, f"w{i}") for i in range(2)]
    step = app.tasks["cf.step"]
    try:
        async with app:
            started = time.time()
            handle = await asyncq.chain(step.s(0), *[step.s() for _ in range(9)]).enqueue()
            kills = await _kill_during(workers, workdir, where, 3, 1.3)
            value = await handle.get(timeout=300)
            elapsed = time.time() - started
    finally:
        for proc in workers:
            stop(proc)
    runs = _events(workdir, "step")
    figures = {"steps": 10, "kills": len(kills), "completed_s": round(elapsed, 2),
               "value": value, "step_runs": sum(runs.values()),
               "steps_run_more_than_once": sum(1 for c in runs.values() if c > 1)}
    record(f"canvas_chain_10_kills_{where.broker.split(':')[0]}", figures)
    print(figures)
    assert value == 10
    assert set(runs) == set(range(10))
