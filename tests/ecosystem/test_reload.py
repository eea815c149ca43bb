"""`asyncq worker --reload` on Redis: an edit to the task module restarts the worker,
the task running at that moment finishes on the old code, the next one runs the new."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import asyncq

MODULE = '''
import asyncio
import asyncio
import os
import re

from asyncq import App

app = App(os.environ["T_APP"], broker=os.environ["T_BROKER"])
VERSION = "{version}"


@app.task(name="reload.version", queue=os.environ["T_QUEUE"])
async def version() -> str:
    return VERSION


@app.task(name="reload.slow", queue=os.environ["T_QUEUE"])
async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return VERSION
'''


def _producer(name: str, broker: str, queue: str) -> asyncq.App:
    app = asyncq.App(name, broker=broker)

    @app.task(name="reload.version", queue=queue)
    async def version() -> str: ...

    @app.task(name="reload.slow", queue=queue)
    async def slow(seconds: float) -> str: ...

    return app


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def _read(path: Path) -> str:
    return path.read_text(errors="replace")  # a small local file: no need for a thread


async def _wait_until(log: Path, check: Callable[[str], bool],
                      proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check(_read(log)):
        assert proc.poll() is None, _read(log)
        assert time.monotonic() < deadline, _read(log)
        await asyncio.sleep(0.05)


@pytest.fixture
def reloading_worker(tmp_path: Path, redis_url: str, unique: Callable[[str], str],
                     redis_cleanup: Callable[[str], None]
                     ) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str]]]:
    pytest.importorskip("watchfiles", reason="asyncq[reload] is not installed")
    env = {**os.environ, "T_APP": unique("rapp"), "T_BROKER": redis_url,
           "T_QUEUE": unique("reload")}
    redis_cleanup(env["T_QUEUE"])
    (tmp_path / "reloadtasks.py").write_text(MODULE.format(version="v1"))
    with (tmp_path / "worker.log").open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "asyncq", "worker", "reloadtasks:app", "--reload",
             "-l", "info", "--shutdown-timeout", "20"],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    yield proc, env
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


async def test_an_edit_restarts_the_worker_gracefully(
        tmp_path: Path, reloading_worker: tuple[subprocess.Popen[bytes], dict[str, str]]
        ) -> None:
    proc, env = reloading_worker
    name, redis_url, queue = env["T_APP"], env["T_BROKER"], env["T_QUEUE"]
    module, log = tmp_path / "reloadtasks.py", tmp_path / "worker.log"
    await _wait_until(log, lambda text: "   . reload.version" in text, proc)
    async with _producer(name, redis_url, queue) as producer:
        assert await (await producer.send_task("reload.version")).get(timeout=20) == "v1"
        running = await producer.send_task("reload.slow", [2.0])
        await _wait_until(log, lambda text: f"reload.slow[{running.id}] received" in text,
                          proc)
        _write(module, MODULE.format(version="v2"))
        # the new worker prints its banner after the old one has stopped
        await _wait_until(log, lambda text: text.count("   . reload.version") == 2, proc)
        assert await running.get(timeout=20) == "v1"  # finished, not cut off
        assert await (await producer.send_task("reload.version")).get(timeout=20) == "v2"
    proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        while proc.poll() is None:  # noqa: ASYNC110 - a child process, no event to await
            await asyncio.sleep(0.05)
    assert proc.returncode == 0
    text = _read(log)
    assert "reloadtasks.py changed; restarting the worker" in text, text
    assert "SIGTERM received: finishing running tasks" in text, text
    assert f"reload.slow[{running.id}] succeeded" in text, text


def test_without_watchfiles_the_error_says_what_to_install(tmp_path: Path,
                                                           redis_url: str) -> None:
    (tmp_path / "watchfiles").mkdir()
    (tmp_path / "watchfiles" / "__init__.py").write_text("raise ImportError('not here')\n")
    (tmp_path / "reloadtasks.py").write_text(MODULE.format(version="v1"))
    env = {**os.environ, "T_APP": "rapp", "T_BROKER": redis_url, "T_QUEUE": "q",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "asyncq", "worker", "reloadtasks:app",
                             "--reload"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "asyncq: error: --reload needs watchfiles: pip install 'asyncq[reload]'"), result.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_worker_stops_when_the_reloader_is_killed(tmp_path: Path, redis_url: str) -> None:
    pytest.importorskip("watchfiles", reason="asyncq[reload] is not installed")
    (tmp_path / "reloadtasks.py").write_text(MODULE.format(version="v1"))
    env = {**os.environ, "T_APP": "rapp", "T_BROKER": redis_url, "T_QUEUE": "q"}
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "asyncq", "worker", "reloadtasks:app",
                                 "--reload", "-l", "info"], cwd=tmp_path, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"asyncq@\S+ v\S+ \(pid (\d+)\)", _read(log))):
            assert time.monotonic() < deadline, _read(log)
            time.sleep(0.05)
        child = int(found.group(1))  # it asked for PR_SET_PDEATHSIG before its banner
        while "ready: consuming" not in _read(log):  # a running worker, not one starting
            assert time.monotonic() < deadline, _read(log)
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait(10)
    deadline = time.monotonic() + 20
    while _alive(child):
        assert time.monotonic() < deadline, f"worker {child} outlived its reloader"
        time.sleep(0.05)
    assert "SIGTERM received: finishing running tasks" in _read(log)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False
