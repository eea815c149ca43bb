"""Supervised worker processes on a real Redis: replaced after K tasks, past a memory
limit, and when a task blocks the event loop past its hard time limit."""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import asyncq
from tests.conftest import LIVE_WORKERS, WorkerProcess, kill_live_workers

MODULE = '''
import asyncio, os, time
from asyncq import App

app = App(os.environ["T_APP"], broker=os.environ["T_BROKER"],
          backend=os.environ.get("T_BACKEND") or None)
QUEUE = os.environ["T_QUEUE"]
HOARD = []


@app.task(queue=QUEUE)
async def pid() -> int:
    return os.getpid()


@app.task(queue=QUEUE, timeout=1.0)
async def blocks(seconds: float) -> str:
    time.sleep(seconds)  # blocks the event loop: the in-loop time limit cannot act
    return "finished"


@app.task(queue=QUEUE)
async def hoard(megabytes: int) -> int:
    HOARD.append(b"x" * (megabytes * 1024 * 1024))
    return os.getpid()
'''

Start = Callable[..., WorkerProcess]


@pytest.fixture
def env(redis_url: str, tmp_path: Path, redis_cleanup: Callable[[str], None]
        ) -> dict[str, str]:
    (tmp_path / "htasks.py").write_text(textwrap.dedent(MODULE))
    queue = f"child-{uuid.uuid4().hex[:10]}"
    redis_cleanup(queue)
    return {"T_APP": f"ch{uuid.uuid4().hex[:6]}", "T_BROKER": redis_url, "T_QUEUE": queue,
            "T_DIR": str(tmp_path)}


@pytest.fixture
async def tasks(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(env["T_DIR"])
    sys.modules.pop("htasks", None)
    module = importlib.import_module("htasks")
    async with module.app:
        yield module
    sys.modules.pop("htasks", None)


@pytest.fixture
def start(env: dict[str, str]) -> Iterator[Start]:
    def run(*args: str) -> WorkerProcess:
        log = Path(env["T_DIR"]) / f"worker-{len(LIVE_WORKERS)}.log"
        cmd = [sys.executable, "-m", "asyncq", "worker", "htasks:app", "-l", "info",
               "-Q", env["T_QUEUE"], *args]
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, cwd=env["T_DIR"], env={**os.environ, **env},
                                    stdout=out, stderr=subprocess.STDOUT)
        LIVE_WORKERS.append(proc)
        return WorkerProcess(proc, log)

    yield run
    for proc in LIVE_WORKERS:  # stop the supervisors (and so their children) gracefully
        proc.send_signal(signal.SIGTERM)
    for proc in LIVE_WORKERS:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
    kill_live_workers()


async def test_a_child_is_replaced_after_max_tasks(start: Start, tasks: Any) -> None:
    worker = start("-c", "1", "--threads", "2", "--max-tasks-per-child", "3")  # a supervisor
    handles = [await tasks.pid.enqueue() for _ in range(9)]
    pids = [await h.get(timeout=60) for h in handles]
    assert len(set(pids)) >= 3, pids
    # the K-th task stops the process; a slot it freed at that moment may start one more
    assert all(pids.count(p) <= 3 + 1 for p in pids), pids  # K + concurrency
    worker.wait_for("reached its per-child limit")
    assert "ran 3 tasks (--max-tasks-per-child 3)" in worker.text()
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(30) == 0  # a supervisor stopped on purpose exits 0


async def test_a_child_is_replaced_past_its_memory_limit(start: Start, tasks: Any) -> None:
    worker = start("-w", "1", "-c", "1", "--max-memory-per-child", "150")
    first = await (await tasks.hoard.enqueue(200)).get(timeout=30)
    worker.wait_for("reached its per-child limit")
    assert "over --max-memory-per-child 150" in worker.text()
    second = await (await tasks.pid.enqueue()).get(timeout=30)
    assert second != first


async def test_a_task_blocking_past_its_hard_limit_fails_and_its_child_is_replaced(
        start: Start, tasks: Any) -> None:
    worker = start("-w", "1", "--lease", "2")
    before = await (await tasks.pid.enqueue()).get(timeout=30)
    handle = await tasks.blocks.enqueue(5.0)
    sent = time.monotonic()
    with pytest.raises(asyncq.TaskFailed) as caught:
        await handle.get(timeout=30)
    assert time.monotonic() - sent < 4.5  # recorded before the 5 s sleep ended
    assert caught.value.exc_type == "TimeoutError"
    assert "exceeded its hard time limit of 1 s" in caught.value.exc_message
    assert "time.sleep(seconds)" in (caught.value.traceback or "")  # where it was stuck
    worker.wait_for("a task blocked it past its hard time limit")
    after = await (await tasks.pid.enqueue()).get(timeout=30)
    assert after != before  # a fresh process took over
    # the message came back after the lease and was acked without running again
    worker.wait_for(f"htasks.blocks[{handle.id}] already has a result; acking the "
                    "redelivery", timeout=30)
    record = await tasks.app.backend.get(handle.id)
    assert record.state == asyncq.TaskState.FAILURE
    assert f"htasks.blocks[{handle.id}] succeeded" not in worker.text()


@pytest.mark.amqp
async def test_on_rabbitmq_the_blocked_task_is_recorded_and_its_message_acked(
        amqp_url: str, redis_url: str, env: dict[str, str], start: Start,
        monkeypatch: pytest.MonkeyPatch) -> None:
    env.update(T_BROKER=amqp_url, T_BACKEND=redis_url)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(env["T_DIR"])
    sys.modules.pop("htasks", None)
    tasks = importlib.import_module("htasks")
    async with tasks.app:
        try:
            worker = start("-w", "1")
            handle = await tasks.blocks.enqueue(5.0)
            with pytest.raises(asyncq.TaskFailed, match="hard time limit of 1 s"):
                await handle.get(timeout=30)
            worker.wait_for("a task blocked it past its hard time limit")
            # RabbitMQ hands the message back when the process dies; the fresh one acks it
            worker.wait_for(f"htasks.blocks[{handle.id}] already has a result", timeout=30)
            assert await (await tasks.pid.enqueue()).get(timeout=30) > 0
        finally:
            kill_live_workers()
            await tasks.app.broker.delete_queue(env["T_QUEUE"])
            sys.modules.pop("htasks", None)
