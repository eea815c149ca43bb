"""Revoke with real worker processes and the CLI, on Redis and on RabbitMQ."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import asyncq
from asyncq.middleware.revoke import Revoke
from tests.conftest import WorkerProcess
from tests.integration.conftest import count

Start = Callable[..., WorkerProcess]


@pytest.fixture
async def control(producer: Any) -> AsyncIterator[Any]:
    """The producer module; the app's kept revocations are deleted afterwards."""
    yield producer
    revoker = next(mw for mw in producer.app.run_middleware() if isinstance(mw, Revoke))
    await revoker.bus(producer.app.broker).clear()


async def _until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - polls a file other processes write
            await asyncio.sleep(0.05)


def _cli(tasks_dir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "asyncq", *args], cwd=tasks_dir,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=60, check=False)


async def test_cli_revoke_terminate_cancels_a_task_running_in_a_worker_process(
        start_worker: Start, worker_env: dict[str, str], control: Any,
        tasks_dir: Path) -> None:
    worker = start_worker(worker_env, "-Q", worker_env["T_QUEUE"])
    worker.wait_for("queues:")
    handle = await control.slow.enqueue(1, 60.0)
    await _until(lambda: count(worker_env, "start", 1) == 1)
    done = await asyncio.to_thread(_cli, tasks_dir, worker_env, "revoke", "wtasks:app",
                                   handle.id, "--terminate")
    assert done.returncode == 0, done.stderr
    assert f"revoked {handle.id} (terminate)" in done.stdout
    with pytest.raises(asyncq.TaskRevoked):
        await handle.get(timeout=30)
    worker.wait_for("terminating revoked task")
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(30) == 0  # at once: nothing is left running
    assert count(worker_env, "done", 1) == 0
    assert await handle.state() is asyncq.TaskState.REVOKED


async def test_a_revocation_holds_across_a_worker_restart(
        start_worker: Start, worker_env: dict[str, str], control: Any) -> None:
    queue = worker_env["T_QUEUE"]
    first = start_worker(worker_env, "-Q", queue)
    # "ready", not the banner: the banner comes before the worker's signal handlers, and
    # a SIGTERM in between ends the process by the default handler (-15, not 0)
    first.wait_for("ready: consuming")
    doomed = await control.slow.options(countdown=4).enqueue(1, 0.0)
    kept = await control.slow.options(countdown=4).enqueue(2, 0.0)
    assert await doomed.state() is asyncq.TaskState.SCHEDULED
    await control.app.revoke(doomed.id)
    first.proc.send_signal(signal.SIGTERM)
    assert first.proc.wait(30) == 0
    second = start_worker(worker_env, "-Q", queue)  # knows only what the server kept
    assert await kept.get(timeout=60) == 2
    with pytest.raises(asyncq.TaskRevoked):
        await doomed.get(timeout=30)
    await asyncio.sleep(0.5)
    assert count(worker_env, "start", 1) == 0
    second.proc.send_signal(signal.SIGTERM)
    assert second.proc.wait(30) == 0


def test_cli_revoke_refuses_a_bad_id(worker_env: dict[str, str], tasks_dir: Path) -> None:
    done = _cli(tasks_dir, worker_env, "revoke", "wtasks:app", "bad id\x1b[31m")
    assert done.returncode == 2
    assert "not a task id" in done.stderr


async def test_rabbitmq_workers_leave_nothing_behind_until_an_app_revokes(
        amqp_url: str, redis_url: str, unique: Callable[[str], str]) -> None:
    import aiormq

    from asyncq.control._amqp import revoke_exchange, revoked_queue

    name, queue = unique("app"), unique("q")
    app = asyncq.App(name, broker=amqp_url, backend=redis_url, default_queue=queue)

    @app.task
    async def noop() -> None: ...

    async def exists(kind: str, entity: str) -> bool:
        async with app.broker.raw_channel() as channel:  # type: ignore[attr-defined]
            try:
                if kind == "queue":
                    await channel.queue_declare(entity, passive=True)
                else:
                    await channel.exchange_declare(entity, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                return False
        return True

    async with app:
        try:
            async with asyncq.Worker(app, concurrency=1):
                assert await exists("exchange", revoke_exchange(name))
            assert not await exists("exchange", revoke_exchange(name))  # auto-deleted
            assert not await exists("queue", revoked_queue(name))
            await app.revoke("some-task")
            assert await exists("queue", revoked_queue(name))
        finally:
            revoker = next(mw for mw in app.run_middleware() if isinstance(mw, Revoke))
            await revoker.bus(app.broker).clear()
            await app.broker.delete_queue(queue)
