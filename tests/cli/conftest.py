"""Shared by the CLI tests: an app module, a unique queue, running `asyncq ...` through
pipes and worker processes with their output in a file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import LIVE_WORKERS

CLI_TASKS = '''
import datetime as dt
import os
from asyncq import App

app = App(os.environ.get("H_APP", "hard"), broker=os.environ.get("H_BROKER") or None)
QUEUE = os.environ.get("H_QUEUE", "hq")


@app.task(queue=QUEUE)
async def echo(value: str) -> str:
    return value


@app.task(queue=QUEUE)
async def boom(text: str) -> None:
    raise RuntimeError(text)


@app.periodic(dt.timedelta(hours=1), queue=QUEUE)  # for `asyncq beat` and `worker --beat`
async def hourly() -> None:
    return None
'''

HOSTILE_REASON = ("[link=https://evil.test]click[/link] \x1b[31mRED\x1b]8;;http://x\x07 "
                  "\u202eevil\r\nsecond line")
NOT_AMQP = "amqp://guest:guest@127.0.0.1:6379/"  # Redis answers nothing to an AMQP header


@pytest.fixture
def cli_dir(tmp_path: Path) -> Path:
    (tmp_path / "htasks.py").write_text(textwrap.dedent(CLI_TASKS))
    return tmp_path


@pytest.fixture
def queue(unique: Callable[[str], str], redis_cleanup: Callable[[str], None]) -> str:
    name = unique("hq")
    redis_cleanup(name)
    return name


def cli_env(broker: str | None, queue: str = "hq") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ASYNCQ_BROKER", "ASYNCQ_BACKEND")}
    env.update(H_QUEUE=queue, H_APP=f"h{uuid.uuid4().hex[:6]}")
    if broker is not None:
        env["H_BROKER"] = broker
    return env


def run_cli(cwd: Path, env: dict[str, str], *args: str,
            timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "asyncq", *args], cwd=cwd, env=env,
                          capture_output=True, timeout=timeout, check=False)


def assert_one_error_line(done: subprocess.CompletedProcess[bytes], *needles: str) -> str:
    err = done.stderr.decode()
    assert done.returncode == 2, (done.returncode, err)
    lines = [line for line in err.splitlines() if line.startswith("asyncq: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]



class Proc(subprocess.Popen[bytes]):
    log: Path


def start_cli(cwd: Path, env: dict[str, str], *args: str) -> Proc:
    log = cwd / f"cli-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as out:
        proc = Proc([sys.executable, "-m", "asyncq", *args], cwd=cwd, env=env, stdout=out,
                     stderr=subprocess.STDOUT)
    proc.log = log
    LIVE_WORKERS.append(proc)
    return proc


def wait_for(proc: Proc, needle: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in proc.log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not in:\n{proc.log.read_text(errors='replace')}")


def stop(proc: Proc) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)



def wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


