"""The FastAPI shop's own tests (docs/examples/shop/test_api.py) against a real worker.

The same tests run on memory:// in tests/test_docs_examples.py; here ASYNCQ_BROKER
points at Redis and `asyncq worker shop.tasks:app` runs them in its own process. The
shop's queues have fixed names ("default", "emails"), so the run borrows an empty
Redis database (1-15) instead of sharing one, and empties it afterwards.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
CLAIM = "asyncq-test-shop:claim"


@pytest.fixture
def empty_redis_db(redis_url: str) -> Iterator[str]:
    token = uuid.uuid4().hex
    for db in range(15, 0, -1):
        url = urlsplit(redis_url)._replace(path=f"/{db}").geturl()
        client = redis.Redis.from_url(url)
        if client.set(CLAIM, token, nx=True, ex=300):
            if client.dbsize() == 1:  # nothing but our claim
                try:
                    yield url
                finally:
                    keys = list(client.scan_iter(match="asyncq:*"))
                    client.delete(*keys, CLAIM)
                    client.close()
                return
            client.delete(CLAIM)
        client.close()
    pytest.fail(f"no empty Redis database (1-15) at {redis_url}")


def _wait_for(log: Path, needle: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while needle not in log.read_text(errors="replace"):
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def test_shop_tests_pass_against_a_real_worker_on_redis(tmp_path: Path,
                                                        empty_redis_db: str) -> None:
    shutil.copytree(EXAMPLES / "shop", tmp_path / "shop",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "empty.ini").write_text("")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
           "ASYNCQ_BROKER": empty_redis_db}
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "asyncq", "worker", "shop.tasks:app",
                                   "-c", "20", "-l", "info"], cwd=tmp_path, env=env,
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for(log, "   . shop.tasks.send_email", worker)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c", "empty.ini", "-q",
             "shop/test_api.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=120, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "6 passed" in result.stdout
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
    text = log.read_text()
    # the work was done by the worker process, not by one inside the app
    assert text.count("shop.tasks.add[") >= 2 * 6, text
    assert "shop.tasks.send_email[" in text, text


def _bound_port(log: Path) -> int:
    """The port uvicorn bound (started with ``--port 0``: a port probed free beforehand
    could be taken by a test running in parallel before uvicorn binds it)."""
    found = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", log.read_text())
    assert found is not None, log.read_text()
    return int(found.group(1))


def test_the_shop_runs_with_one_command_on_memory(tmp_path: Path) -> None:
    """The README's command: uvicorn --app-dir docs/examples shop.api:api (no server)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCQ_")}
    log = tmp_path / "uvicorn.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", "docs/examples", "shop.api:api",
             "--port", "0"], cwd=EXAMPLES.parents[1], env=env, stdout=out,
            stderr=subprocess.STDOUT)
    try:
        _wait_for(log, "Uvicorn running on", server)
        port = _bound_port(log)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/add?x=2&y=3", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.load(response)
        assert body["sum"] == 5
        server.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal (exit -15) or exits 0
        assert server.wait(30) in (0, -signal.SIGTERM)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    assert "Application shutdown complete" in log.read_text()
