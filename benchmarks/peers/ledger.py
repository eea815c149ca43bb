"""What every benchmark task calls: first start, last finish and count, per worker process.

The task bodies only touch process memory; a daemon thread (a greenlet under Celery's
gevent pool) copies ``first last count`` into the Redis hash ``<prefix>:ledger`` every
50 ms, keyed by pid, so the driver can time a drain without a Redis call per task.
"""

from __future__ import annotations

import os
import threading
import time

import redis

from peers.base import PREFIX, REDIS_URL

INTERVAL = 0.05


class Ledger:
    def __init__(self) -> None:
        self.pid = 0
        self.first = 0.0
        self.last = 0.0
        self.count = 0

    def begin(self) -> None:
        if self.pid != os.getpid():  # first task of this process (or of a forked child)
            self.pid, self.first, self.last, self.count = os.getpid(), time.time(), 0.0, 0
            threading.Thread(target=self._flush, name="bench-ledger", daemon=True).start()

    def end(self) -> None:
        self.last = time.time()
        self.count += 1

    def _flush(self) -> None:
        client = redis.Redis.from_url(REDIS_URL)
        key, pid, written = f"{PREFIX}:ledger", self.pid, -1
        while True:
            time.sleep(INTERVAL)
            if self.count != written:
                written = self.count
                client.hset(key, str(pid), f"{self.first} {self.last} {written}")


LEDGER = Ledger()


def read_raw(mapping: dict[bytes, bytes]) -> tuple[float, float, int]:
    """(earliest start, latest finish, tasks done) over all worker processes."""
    rows = [v.split() for v in mapping.values()]
    if not rows:
        return 0.0, 0.0, 0
    return (min(float(r[0]) for r in rows), max(float(r[1]) for r in rows),
            sum(int(r[2]) for r in rows))
