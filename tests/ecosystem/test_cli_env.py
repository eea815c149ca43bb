"""Worker settings a deployment changes come from the environment too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TASKS = '''
from asyncq import App

app = App("envapp")


@app.task(queue="alpha")
async def ping() -> str:
    return "pong"
'''

ENVVARS = ["ASYNCQ_QUEUES", "ASYNCQ_CONCURRENCY", "ASYNCQ_PREFETCH", "ASYNCQ_LOG_LEVEL",
           "ASYNCQ_SHUTDOWN_TIMEOUT", "ASYNCQ_WORKERS", "ASYNCQ_METRICS_PORT"]


def test_worker_help_names_the_variables() -> None:
    result = subprocess.run([sys.executable, "-m", "asyncq", "worker", "--help"],
                            capture_output=True, text=True, timeout=60, check=True,
                            env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})
    missing = [name for name in ENVVARS if name not in result.stdout]
    assert not missing, result.stdout


def _wait_for(path: Path, needle: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if needle in path.read_text(errors="replace") or proc.poll() is not None:
            return
        time.sleep(0.05)


@pytest.mark.parametrize(("args", "expected", "info_logged"), [
    ([], [" concurrency:  7 (prefetch 3)", " queues:       alpha, beta"], False),
    (["-c", "9", "-Q", "gamma", "-l", "info"],
     [" concurrency:  9 (prefetch 3)", " queues:       gamma"], True),
], ids=["environment", "flags-win"])
def test_worker_reads_the_environment(tmp_path: Path, args: list[str], expected: list[str],
                                      info_logged: bool, redis_url: str) -> None:
    (tmp_path / "envtasks.py").write_text(TASKS)
    log = tmp_path / "worker.log"
    env = {**os.environ, "ASYNCQ_BROKER": redis_url, "ASYNCQ_CONCURRENCY": "7",
           "ASYNCQ_PREFETCH": "3", "ASYNCQ_QUEUES": "alpha,beta", "ASYNCQ_LOG_LEVEL": "warning"}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "asyncq", "worker", "envtasks:app", *args],
                                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for(log, " queues:", proc)
        # the banner comes before the signal handlers; at level warning nothing says
        # when they are in place, so give the worker a generous moment
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log.read_text()
    assert all(line in text for line in expected), text
    assert "SIGTERM received" in text, text  # a warning: logged at either level
    assert ("worker stopped" in text) is info_logged, text  # info: not at "warning"
