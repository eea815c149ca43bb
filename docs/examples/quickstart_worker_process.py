"""The quickstart for real: `asyncq worker shop.tasks:app` in its own process, on Redis.

Runs what docs/quickstart.md shows: a worker started by the CLI, the producer in
shop/producer.py, then SIGTERM. Needs Redis: $ASYNCQ_TEST_REDIS_URL, default
redis://127.0.0.1:6379/0. The shop's queues are called "default" and "emails", so
this script borrows an empty Redis database (1-15) for the run instead of sharing
one with anything else, and deletes what it wrote.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import redis

HERE = Path(__file__).resolve().parent
BASE_URL = os.environ.get("ASYNCQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CLAIM = "asyncq-docs-example:claim"


def borrow_empty_database() -> tuple[str, redis.Redis]:
    token = uuid.uuid4().hex
    for db in range(15, 0, -1):
        url = urlsplit(BASE_URL)._replace(path=f"/{db}").geturl()
        client = redis.Redis.from_url(url)
        if client.set(CLAIM, token, nx=True, ex=120):
            if client.dbsize() == 1:  # nothing but our claim: the database is ours
                return url, client
            client.delete(CLAIM)
        client.close()
    sys.exit(f"no empty Redis database (1-15) at {BASE_URL} to run this example in")


def wait_for(log: Path, needle: str, proc: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text()
        if needle in text:
            return text
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    sys.exit(f"{needle!r} not in the worker's log:\n{log.read_text()}")


def main() -> None:
    url, client = borrow_empty_database()
    env = {**os.environ, "ASYNCQ_BROKER": url}
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "worker.log"
        with log.open("wb") as out:
            # the shell command: ASYNCQ_BROKER=redis://... asyncq worker shop.tasks:app -l info
            worker = subprocess.Popen(
                [sys.executable, "-m", "asyncq", "worker", "shop.tasks:app", "-c", "20",
                 "-l", "info"], cwd=HERE, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            banner = wait_for(log, "   . shop.tasks.send_email", worker, 20)
            print("\n".join(line for line in banner.splitlines() if "pid" not in line))
            producer = subprocess.run([sys.executable, "-m", "shop.producer"], cwd=HERE,
                                      env=env, capture_output=True, text=True, timeout=30,
                                      check=True)
            print(producer.stdout, end="")
            worker.send_signal(signal.SIGTERM)  # finish running tasks, hand back the rest
            print("worker exit code:", worker.wait(30))
            text = wait_for(log, "worker stopped", worker, 5)
            print("\n".join(line.split("] ", 1)[1] for line in text.splitlines()
                            if "] asyncq." in line and not line.endswith("] received")))
        finally:
            if worker.poll() is None:
                worker.kill()
            keys = list(client.scan_iter(match="asyncq:*"))
            client.delete(*keys, CLAIM)
            client.close()


if __name__ == "__main__":
    main()
