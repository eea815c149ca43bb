"""Fault-injection suite: `./scripts/test tests/faults -m faults` (not in the default run).

Every scenario gets its own throwaway redis-server (AOF on, fsync always) so that it
can crash and restart the broker; a ledger written by the tasks and the producer,
independent of the broker, counts lost and duplicated work.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

import asyncq
from tests._servers.rabbit_cluster import servers_script

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "faults" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="fault-injection run: use -m faults")
    for item in items:
        if item.get_closest_marker("faults"):
            item.add_marker(skip)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    """A redis-server of the test's own, which the test may kill and restart."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        program = shutil.which("redis-server")
        if program is None:
            pytest.fail("the fault suite needs redis-server on PATH (apt-get install "
                        "redis-server)")
        self.proc = subprocess.Popen(
            [program, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    client.close()
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        pytest.fail("throwaway redis-server did not start")

    def crash(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.workdir.mkdir()
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.crash()


@dataclass
class RabbitNode:
    """A RabbitMQ node of the test's own (private epmd, files in ``workdir``), which the
    test may SIGKILL and start again on the same ports and data directory."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    env: dict[str, str] = field(default_factory=dict)
    program: str = ""
    starts: int = 0

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def start(self, timeout: float = 90.0) -> float:
        """Start (or start again) the node; return the seconds until it answered AMQP."""
        servers = servers_script()
        if not self.env:
            program = servers.find_program(servers.RABBITMQ)
            if program is None:
                pytest.fail("the fault suite needs rabbitmq-server (apt-get install "
                            "rabbitmq-server)")
            self.env = servers.rabbitmq_env(self.workdir, f"asyncq-faults-{self.port}@localhost",
                                            self.port, servers.start_epmd(self.workdir,
                                                                          self.stack))
            self.program = program
        self.starts += 1
        log = (self.workdir / f"rabbitmq-server.{self.starts}.log").open("wb")
        with log:
            self.proc = subprocess.Popen([self.program], cwd=self.workdir, env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        started = time.monotonic()
        while not servers.amqp_answers(("127.0.0.1", self.port)):
            if self.proc.poll() is not None or time.monotonic() - started > timeout:
                pytest.fail(f"throwaway rabbitmq-server did not start; see {log.name}")
            time.sleep(0.1)
        return time.monotonic() - started

    def crash(self) -> None:
        """SIGKILL every process of the node (beam.smp and its helpers), no clean stop."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def queues(self) -> dict[str, tuple[int, int]]:
        """Every queue of the node: name -> (messages ready, unacknowledged)."""
        ctl = Path(self.program).with_name("rabbitmqctl")
        out = subprocess.run([str(ctl), "list_queues", "-q", "--no-table-headers", "name",
                              "messages_ready", "messages_unacknowledged"], env=self.env,
                             capture_output=True, text=True, timeout=60, check=True).stdout
        rows = (line.split() for line in out.splitlines() if line.strip())
        return {name: (int(ready), int(unacked)) for name, ready, unacked in rows}

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # a clean stop, so that nothing is left behind
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(30)
            self.crash()
        self.stack.close()  # the private epmd


@pytest.fixture
def rabbit_node(tmp_path: Path) -> Iterator[RabbitNode]:
    node = RabbitNode(tmp_path / "rabbitmq")
    node.workdir.mkdir()
    node.start()
    yield node
    node.close()


TASKS = '''
import asyncio, os, signal, time
from asyncq import App

app = App("faults", broker=os.environ["F_BROKER"], backend=os.environ.get("F_BACKEND") or None,
          default_queue=os.environ.get("F_QUEUE", "work"))
LEDGER = os.environ["F_LEDGER"]
_fd = None


def note(event, n):
    global _fd
    if _fd is None:
        _fd = os.open(f"{LEDGER}.{os.getpid()}", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(_fd, f"{event} {n} {os.getpid()} {time.time():.4f}\\n".encode())


@app.task
async def work(n: int, seconds: float = 0.0) -> int:
    note("start", n)
    if seconds:
        await asyncio.sleep(seconds)
    note("done", n)
    return n * 2


@app.task
async def poison() -> None:
    note("poison", 0)
    os.kill(os.getpid(), signal.SIGKILL)
'''


@dataclass
class Ledger:
    base: Path

    def rows(self) -> list[tuple[str, int, int, float]]:
        out = []
        for path in self.base.parent.glob(self.base.name + "*"):
            for line in path.read_text().splitlines():
                event, n, pid, ts = line.split()
                out.append((event, int(n), int(pid), float(ts)))
        return out

    def counts(self, event: str) -> Counter[int]:
        return Counter(n for e, n, _, _ in self.rows() if e == event)

    def producer_note(self, ns: list[int]) -> None:
        with open(f"{self.base}.producer", "a") as f:
            f.writelines(f"enq {n} {os.getpid()} {time.time():.4f}\n" for n in ns)


@dataclass
class Target:
    """Where a scenario runs: a throwaway Redis, or RabbitMQ with a queue of its own."""

    kind: str
    url: str
    queue: str


@pytest.fixture(params=["redis", "amqp"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        yield Target("redis", server.url, "work")
        return
    queue = f"faults-{os.getpid()}-{int(time.time() * 1000)}"
    yield Target("amqp", str(request.getfixturevalue("amqp_url")), queue)

    async def drop() -> None:
        app = asyncq.App("faults-cleanup", broker=str(request.getfixturevalue("amqp_url")))
        async with app:
            await app.broker.delete_queue(queue)

    asyncio.run(drop())


@pytest.fixture
def fault_env(tmp_path: Path) -> tuple[Path, Ledger]:
    (tmp_path / "ftasks.py").write_text(textwrap.dedent(TASKS))
    return tmp_path, Ledger(tmp_path / "ledger")


def start_worker(workdir: Path, broker: str, ledger: Ledger, *args: str,
                 name: str = "worker", queue: str = "work") -> subprocess.Popen[bytes]:
    env = {**os.environ, "F_BROKER": broker, "F_LEDGER": str(ledger.base), "F_QUEUE": queue}
    with (workdir / f"{name}.log").open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "asyncq", "worker", "ftasks:app", "-Q",
                                 queue, "-l", "warning", *args], cwd=workdir, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(5)


def record(scenario: str, figures: dict[str, object]) -> None:
    RESULTS.parent.mkdir(exist_ok=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[scenario] = figures
    RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


async def enqueue_numbered(app: asyncq.App, make: Callable[[list[int]], list[Any]],
                           ledger: Ledger, n: int, batch: int, pause: float) -> int:
    """Enqueue tasks 0 .. n-1, ``batch`` at a time (``make`` gives a batch's signatures,
    with fixed ids), ``pause`` seconds apart. A batch the broker refuses is sent again,
    with the same ids, until it is acknowledged, and noted in the ledger only then.
    Returns the retries."""
    retries = 0
    for start in range(0, n, batch):
        numbers = list(range(start, min(n, start + batch)))
        sigs = make(numbers)
        while True:
            try:
                await app.enqueue_many(sigs)
                break
            except asyncq.AsyncqError:
                retries += 1
                await asyncio.sleep(0.2)
        ledger.producer_note(numbers)
        await asyncio.sleep(pause)
    return retries


def tally(ledger: Ledger, acked: set[int]) -> dict[str, int]:
    """Acknowledged enqueues against completions: completed, lost and run twice."""
    done = ledger.counts("done")
    return {"enqueued_acknowledged": len(acked), "completed": len(set(done) & acked),
            "lost": len(acked - set(done)),
            "duplicate_executions": sum(c - 1 for c in done.values() if c > 1)}


def completions_after(ledger: Ledger, moment: float) -> list[float]:
    """The times of the completions after ``moment``, in order."""
    return sorted(ts for e, _, _, ts in ledger.rows() if e == "done" and ts > moment)
