"""Shared fixtures: real servers (never mocks), unique names, worker subprocesses."""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import redis.asyncio as aioredis

from tests._order import deal, workers_of

REDIS_URL = os.environ.get("ASYNCQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("ASYNCQ_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
HOW = "run ./scripts/test (it finds or starts the servers) or set ASYNCQ_TEST_{}_URL"


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1",
                                       parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a parallel run the slowest tests start first, spread over the processes."""
    items[:] = deal(items, workers_of(config))


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not _reachable(REDIS_URL, 6379):
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {HOW.format('REDIS')}")
    return REDIS_URL


@pytest.fixture(scope="session")
def amqp_url() -> str:
    if not _reachable(AMQP_URL, 5672):
        pytest.fail(f"RabbitMQ is not reachable at the test URL: {HOW.format('AMQP')}")
    return AMQP_URL


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Unique names for queues and apps, so tests never share state."""
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
async def redis_aio(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain asyncio Redis client on the test server (to look at what asyncq wrote)."""
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def redis_cleanup(redis_client: redis.Redis) -> Iterator[Callable[[str], None]]:
    """Register queues whose keys are deleted after the test."""
    queues: list[str] = []
    yield queues.append
    for queue in queues:  # the keys a queue has (no SCAN: the keyspace may be large)
        redis_client.delete(*(f"asyncq:{{{queue}}}:{part}"
                              for part in ("stream", "delayed", "dead")))


TASKS_MODULE = '''
import asyncio, os, signal, time
from pathlib import Path
from asyncq import App

app = App(os.environ["T_APP"], broker=os.environ["T_BROKER"])
LEDGER = Path(os.environ["T_LEDGER"])
QUEUE = os.environ["T_QUEUE"]


def note(event: str, n: int) -> None:
    with LEDGER.open("a") as f:
        f.write(f"{event} {n} {os.getpid()}\\n")


@app.task(queue=QUEUE)
async def add(x: int, y: int) -> int:
    return x + y


@app.task(queue=QUEUE)
async def slow(n: int, seconds: float) -> int:
    note("start", n)
    await asyncio.sleep(seconds)
    note("done", n)
    return n


@app.task(queue=QUEUE)
async def boom(text: str) -> None:
    raise RuntimeError(text)
'''


class WorkerProcess:
    """A worker started through the real CLI, with its log in a file."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc = proc
        self.log = log

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} not in worker log:\n{self.text()}")


@pytest.fixture
def tasks_dir(tmp_path: Path) -> Path:
    (tmp_path / "wtasks.py").write_text(textwrap.dedent(TASKS_MODULE))
    return tmp_path


#: Worker processes of the running test, so fixtures that clean up a broker can stop
#: them first (a live worker would declare its queue again).
LIVE_WORKERS: list[subprocess.Popen[bytes]] = []


def kill_live_workers() -> None:
    while LIVE_WORKERS:
        proc = LIVE_WORKERS.pop()
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


@pytest.fixture
def start_worker(tasks_dir: Path) -> Iterator[Callable[..., WorkerProcess]]:
    procs = LIVE_WORKERS

    def start(env: dict[str, str], *args: str, name: str = "w") -> WorkerProcess:
        log = tasks_dir / f"{name}-{len(procs)}.log"
        cmd = [sys.executable, "-m", "asyncq", "worker", "wtasks:app", "-l", "info", *args]
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, cwd=tasks_dir, env={**os.environ, **env},
                                    stdout=out, stderr=subprocess.STDOUT)
        procs.append(proc)
        return WorkerProcess(proc, log)

    yield start
    kill_live_workers()


@pytest.fixture(scope="module", autouse=True)
def _garbage_collected_after_each_module() -> Iterator[None]:
    """What a module's tests left unclosed (an App, a client, a socket) warns, and so
    fails, at the end of that module rather than in whichever later test the garbage
    collector happens to run in (a collection per module: per test it took 46 ms)."""
    yield
    gc.collect()
