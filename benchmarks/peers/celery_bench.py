"""Celery 5 on Redis (BENCH_BROKER=redis) or RabbitMQ (amqp), results in Redis for both.

Celery is synchronous: "one at a time" is a plain loop of ``task.delay()`` and the
tasks are plain functions.  One worker process at concurrency N is the threads pool
(``-P threads -c N``, one of the pools Celery's docs suggest for I/O-bound work), and
the sleep task is ``time.sleep`` in those threads.  ``BENCH_CELERY_POOL=gevent``
switches to the gevent pool (2.5x slower on the no-op drain here).  Prefetch is the default
(multiplier 4).  Every key and AMQP name carries the run prefix (``global_keyprefix``,
``control_exchange``, ``event_exchange``) so that cleanup finds it all.  No batch API
(``group`` sends one message per task), so the batch column is n/a.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

from celery import Celery

from peers.base import AMQP_URL, BROKER, PREFIX, REDIS_URL, SLEEP
from peers.base import Client as BaseClient
from peers.ledger import LEDGER

PACKAGES = ["celery", "kombu", "redis", "gevent"]
POOL = os.environ.get("BENCH_CELERY_POOL", "threads")  # "gevent" is the other choice
app = Celery(PREFIX, broker=AMQP_URL if BROKER == "amqp" else REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_default_queue=PREFIX, control_exchange=PREFIX, event_exchange=f"{PREFIX}.ev",
    result_backend_transport_options={"global_keyprefix": f"{PREFIX}:"},
    broker_transport_options={} if BROKER == "amqp" else {"global_keyprefix": f"{PREFIX}:"},
)


@app.task(name="noop")
def noop(n: int) -> int:
    LEDGER.begin()
    LEDGER.end()
    return n


@app.task(name="sleep")
def sleep(n: int) -> int:
    LEDGER.begin()
    time.sleep(SLEEP)
    LEDGER.end()
    return n


TASKS = {"noop": noop, "sleep": sleep}


def config(concurrency: int) -> str:
    broker = "RabbitMQ" if BROKER == "amqp" else "Redis"
    return (f"Celery(broker={broker}, backend=Redis); `celery worker -P {POOL} -c {concurrency} "
            "-l WARNING` (default prefetch multiplier 4); AsyncResult.get()")


def worker_argv(concurrency: int) -> list[str]:
    return ["-m", "celery", "-A", "peers.celery_bench", "worker", "-P", POOL,
            "-c", str(concurrency), "-l", "WARNING", "-Q", PREFIX, "-n", f"w{{index}}-{PREFIX}@%h"]


class Client(BaseClient):
    each = "loop of task.delay() (Celery is synchronous)"

    async def enqueue(self, task: str, arg: int) -> Any:
        return TASKS[task].delay(arg)

    async def enqueue_each(self, task: str, args: Iterable[int]) -> list[Any]:
        fn = TASKS[task]
        return [fn.delay(a) for a in args]

    async def result(self, handle: Any, timeout: float) -> Any:
        return handle.get(timeout=timeout)

    fan_in_how = "loop of task.delay(), then AsyncResult.get() of each (Celery is synchronous)"

    async def fan_in(self, task: str, n: int, inflight: int, timeout: float) -> list[Any]:
        fn = TASKS[task]
        handles = [fn.delay(i) for i in range(n)]
        return [h.get(timeout=timeout) for h in handles]

    async def close(self) -> None:
        app.close()

    async def cleanup(self) -> None:
        if BROKER == "amqp":
            with app.connection_for_write() as conn:
                channel = conn.default_channel
                channel.queue_delete(PREFIX)
                for name in (PREFIX, f"{PREFIX}.ev", f"{PREFIX}.pidbox", f"reply.{PREFIX}.pidbox"):
                    channel.exchange_delete(name)
