"""Real worker processes started by the CLI, on Redis and on RabbitMQ."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import asyncq
from tests.conftest import WorkerProcess
from tests.integration.conftest import count

Start = Callable[..., WorkerProcess]


async def _until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - polls a file other processes write
            await asyncio.sleep(0.05)


async def test_full_flow_banner_and_log_lines(start_worker: Start, worker_env: dict[str, str],
                                              producer: Any) -> None:
    worker = start_worker(worker_env, "-Q", worker_env["T_QUEUE"], "-c", "10")
    worker.wait_for("queues:")
    base = 7_340_000_000  # results look like nothing else in a log (pids, times, ids)
    handles = [await producer.add.enqueue(n, base) for n in range(20)]
    assert [await h.get(timeout=30) for h in handles] == [n + base for n in range(20)]
    failing = await producer.boom.enqueue("kaput")
    with pytest.raises(asyncq.TaskFailed, match="RuntimeError: kaput"):
        await failing.get(timeout=30)
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(30) == 0
    log = worker.text()
    assert f"app:          {worker_env['T_APP']}" in log
    assert f"queues:       {worker_env['T_QUEUE']}" in log
    assert ". wtasks.add" in log
    assert f"wtasks.add[{handles[0].id}] received" in log
    assert f"wtasks.add[{handles[0].id}] succeeded in" in log
    assert f"wtasks.boom[{failing.id}] failed in" in log
    assert "73400000" not in log  # argument values and results are never logged
    assert "guest:guest" not in log


async def test_sigkill_mid_task_redelivers_to_another_worker(
        start_worker: Start, worker_env: dict[str, str], producer: Any) -> None:
    queue = worker_env["T_QUEUE"]
    first = start_worker(worker_env, "-Q", queue, "--lease", "1")
    handle = await producer.slow.enqueue(7, 2.0)
    await _until(lambda: count(worker_env, "start", 7) == 1)
    first.proc.kill()
    first.proc.wait(10)
    second = start_worker(worker_env, "-Q", queue, "--lease", "1")
    assert await handle.get(timeout=60) == 7
    assert count(worker_env, "start", 7) == 2
    assert count(worker_env, "done", 7) == 1
    second.proc.send_signal(signal.SIGTERM)
    assert second.proc.wait(30) == 0
    assert await producer.app.broker.queue_size(queue) == 0


async def test_sigterm_drains_running_and_hands_back_queued(
        start_worker: Start, worker_env: dict[str, str], producer: Any) -> None:
    queue = worker_env["T_QUEUE"]
    worker = start_worker(worker_env, "-Q", queue, "-c", "1", "--prefetch", "5",
                          "--shutdown-timeout", "10")
    handles = [await producer.slow.enqueue(n, 1.5) for n in range(4)]
    await _until(lambda: count(worker_env, "start", 0) == 1)
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(20) == 0
    assert count(worker_env, "done", 0) == 1  # the running task finished
    assert await handles[0].get(timeout=5) == 0
    assert sum(count(worker_env, "start", n) for n in (1, 2, 3)) == 0
    start_worker(worker_env, "-Q", queue, "-c", "4")
    assert [await h.get(timeout=30) for h in handles[1:]] == [1, 2, 3]


async def test_long_task_is_not_stolen_while_its_worker_lives(
        start_worker: Start, worker_env: dict[str, str], producer: Any) -> None:
    queue = worker_env["T_QUEUE"]
    for _ in range(2):
        start_worker(worker_env, "-Q", queue, "--lease", "1")
    handles = [await producer.slow.enqueue(n, 3.5) for n in range(3)]
    assert [await h.get(timeout=60) for h in handles] == [0, 1, 2]
    for n in range(3):
        assert count(worker_env, "start", n) == 1
        assert count(worker_env, "done", n) == 1


def _cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "asyncq", *args], cwd=tmp, text=True,
                          capture_output=True, timeout=60, check=False)


@pytest.mark.parametrize(("args", "message"), [
    (["worker", "no_such_module:app"], "cannot import 'no_such_module'"),
    (["worker", "wtasks:nothing"], "wtasks:nothing is not found"),
    (["worker", "wtasks:LEDGER"], "a PosixPath, not an App"),
    (["enqueue", "wtasks:app", "os.system"], "no task named 'os.system'"),
])
def test_cli_errors_are_one_line(tasks_dir: Path, args: list[str], message: str,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # a Redis URL nothing listens on: each error comes before any connect (and the CLI
    # refuses memory://, which no other process can reach)
    for key, value in {"T_APP": "clierr", "T_BROKER": "redis://127.0.0.1:1/0", "T_QUEUE": "q",
                       "T_LEDGER": str(tasks_dir / "l")}.items():
        monkeypatch.setenv(key, value)
    result = _cli(tasks_dir, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("asyncq: error:") == 1


def test_unreachable_broker_is_one_line_with_the_password_masked(
        tasks_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"T_APP": "down", "T_BROKER": "redis://:topsecret@127.0.0.1:1/0",
                       "T_QUEUE": "q", "T_LEDGER": str(tasks_dir / "l")}.items():
        monkeypatch.setenv(key, value)
    result = _cli(tasks_dir, "worker", "wtasks:app")
    assert result.returncode == 2
    assert "asyncq: error: Redis broker at redis://:***@127.0.0.1:1/0 is unavailable" in (
        result.stderr)
    assert "topsecret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


async def test_ctrl_c_on_a_supervisor_stops_its_workers_gracefully(
        tasks_dir: Path, worker_env: dict[str, str], producer: Any) -> None:
    """A terminal's Ctrl-C reaches the whole foreground process group; the supervisor
    forwards one SIGINT to each worker, which finishes its running task (one signal
    means "finish", a second would mean "abort")."""
    queue = worker_env["T_QUEUE"]
    log = tasks_dir / "supervisor.log"
    supervisor = _start_in_own_group(
        ["wtasks:app", "-l", "info", "-Q", queue, "-c", "1", "-w", "2",
         "--shutdown-timeout", "20"], tasks_dir, worker_env, log)
    handles = [await producer.slow.enqueue(n, 2.0) for n in range(2)]
    await _until(lambda: count(worker_env, "start", 0) + count(worker_env, "start", 1) == 2)
    os.killpg(supervisor.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    assert supervisor.wait(30) == 0
    assert [await h.get(timeout=5) for h in handles] == [0, 1]  # both finished
    text = log.read_text()
    assert text.count("SIGINT received: finishing running tasks") == 2, text
    assert "Worker-1" in text
    assert "Worker-2" in text
    assert text.count("asyncq@") == 1  # one banner, from the supervisor


def _start_in_own_group(args: list[str], cwd: Path, env: dict[str, str],
                        log: Path) -> subprocess.Popen[bytes]:
    """``asyncq worker ARGS`` as a shell's foreground job: in its own process group."""
    from tests.conftest import LIVE_WORKERS

    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "asyncq", "worker", *args], cwd=cwd,
                                env={**os.environ, **env}, stdout=out,
                                stderr=subprocess.STDOUT, process_group=0)
    LIVE_WORKERS.append(proc)
    return proc
