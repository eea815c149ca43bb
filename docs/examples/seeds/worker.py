"""Runs ``asyncq worker MODULE:app`` for the seed examples, on an empty Redis database.

The seeds' clients are scripts that talk to a worker started in another terminal
(``celery -A tasks worker``); the examples start that worker here, send the client's
calls, and stop it. The seeds' queue names are fixed ("for_add", "images"...), so the
run borrows an empty Redis database (1-15) and deletes what it wrote.
"""

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import redis

EXAMPLES = Path(__file__).resolve().parent.parent
BASE_URL = os.environ.get("ASYNCQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CLAIM = "asyncq-docs-example:claim"


def _borrow_empty_database() -> tuple[str, redis.Redis]:
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


@contextlib.contextmanager
def running_worker(target: str, queues: str) -> Iterator[None]:
    """``asyncq worker TARGET -Q QUEUES`` in the background; ASYNCQ_BROKER points at it."""
    url, client = _borrow_empty_database()
    os.environ["ASYNCQ_BROKER"] = url  # read by the seeds' task modules
    worker = subprocess.Popen(
        [sys.executable, "-m", "asyncq", "worker", target, "-Q", queues, "-l", "warning"],
        cwd=EXAMPLES, env=os.environ.copy(), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        worker.terminate()
        worker.wait(30)
        keys = list(client.scan_iter(match="asyncq:*"))
        client.delete(*keys, CLAIM)
        client.close()
