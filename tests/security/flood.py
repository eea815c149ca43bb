"""The flood (issue 13): hostile messages of every kind among good ones, through a real
``asyncq worker`` process: good tasks are served, the worker's memory stays within the
documented bound, and the dead-letter store within its cap. Used by the small flood in
tests/security/test_flood.py and the 10,000-message one in tests/faults."""

from __future__ import annotations

import asyncio
import os
import random
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

import asyncq
from asyncq.brokers import Outgoing
from asyncq.signing import Signer
from asyncq.wire import encode_fields

KEYS = {"k1": "0123456789abcdef-flood-key"}
MAX_SIZE = 256 * 1024
CONCURRENCY = 10
DEAD_CAP = 2000

TASKS = '''
import os
from asyncq import App
from asyncq.brokers.redis import RedisBroker

url = os.environ["T_BROKER"]
broker = RedisBroker(url, dead_letter_max={cap}) if url.startswith("redis") else url
app = App("flood", broker=broker, default_queue=os.environ["T_QUEUE"],
          signing_keys={keys!r}, max_message_size={size})


@app.task
async def add(x: int, y: int) -> int:
    return x + y
'''


@dataclass
class FloodReport:
    hostile: int
    good: int
    kinds: Counter[str]
    served: int
    seconds: float
    rss_start_mb: float
    rss_peak_mb: float
    bound_mb: float
    dead_stored: int
    extra: dict[str, Any] = field(default_factory=dict)


def memory_bound_mb(start_mb: float) -> float:
    """docs/reliability.md: held messages x max size x (1 + DECODED_RATIO), over the start."""
    from asyncq._decoded import DECODED_RATIO

    held = 2 * CONCURRENCY  # running + prefetched
    return start_mb + held * MAX_SIZE * (1 + DECODED_RATIO) / 2**20


def hostile_bodies(count: int, queue: str, add_name: str) -> tuple[list[bytes], Counter[str]]:
    signer = Signer(KEYS)
    stranger = Signer({"k9": "another-key-entirely-0000"})
    rng = random.Random(13)

    def signed(payload: bytes, to: str = queue) -> bytes:
        return signer.sign(payload, to)

    def env(task: str, args: list[Any], kwargs: dict[str, Any] | None = None) -> bytes:
        return encode_fields(uuid.uuid4().hex, task, args, kwargs or {}, {}, {})

    makers: list[tuple[str, int, Callable[[], bytes]]] = [
        ("random bytes", 20, lambda: os.urandom(rng.randint(1, 200))),
        ("unsigned", 10, lambda: env(add_name, [1, 2])),
        ("bad signature", 10, lambda: _flip(signed(env(add_name, [1, 2])))),
        ("unknown key", 5, lambda: stranger.sign(env(add_name, [1, 2]), queue)),
        ("legacy AQS1", 5, lambda: b"AQS1" + signed(env(add_name, [1, 2]))[4:]),
        ("other queue", 5, lambda: signed(env(add_name, [1, 2]), "elsewhere")),
        ("unknown task", 15, lambda: signed(env("os.system", ["id"]))),
        ("huge task name", 2, lambda: signed(env("t" * 100_000, []))),
        ("wrong args", 15, lambda: signed(env(add_name, [1, 2, 3]))),
        ("wrong kwargs", 5, lambda: signed(env(add_name, [], {"k" * 50_000: 1}))),
        ("deep nesting", 3, lambda: signed(b"\x91" * 50_000 + b"\x01")),
        ("over-size", 2, lambda: signed(os.urandom(MAX_SIZE + 1000))),
        ("bomb", 1, lambda: signed(msgpack.packb(
            [1, uuid.uuid4().hex, add_name, [[]] * (MAX_SIZE - 200), {}, {}, {}, 0]))),
        ("bad envelope", 2, lambda: signed(msgpack.packb([True, "x", add_name, [], {}, {},
                                                          {}, 0]))),
    ]
    weights = [w for _, w, _ in makers]
    kinds: Counter[str] = Counter()
    bodies = []
    for _ in range(count):
        name, _, make = rng.choices(makers, weights)[0]
        kinds[name] += 1
        bodies.append(make())
    return bodies, kinds


def _flip(body: bytes) -> bytes:
    return body[:-1] + bytes((body[-1] ^ 1,))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run_flood(url: str, tasks_dir: Path, start_worker: Callable[..., Any],
                    hostile: int, good: int) -> FloodReport:
    queue = f"flood-{uuid.uuid4().hex[:8]}"
    (tasks_dir / "wtasks.py").write_text(textwrap.dedent(TASKS.format(
        cap=DEAD_CAP, keys=KEYS, size=MAX_SIZE)))
    env = {"T_BROKER": url if url.startswith("redis") else f"{url}?dead_letter_max={DEAD_CAP}",
           "T_QUEUE": queue}
    app = asyncq.App("flood", broker=env["T_BROKER"], default_queue=queue,
                     signing_keys=KEYS, max_message_size=MAX_SIZE)

    @app.task(name="wtasks.add")
    async def add(x: int, y: int) -> int:
        return x + y

    async with app:
        try:
            return await _flood(app, add, queue, env, start_worker, hostile, good)
        finally:
            await app.broker.delete_queue(queue)


async def _flood(app: asyncq.App, add: Any, queue: str, env: dict[str, str],
                 start_worker: Callable[..., Any], hostile: int, good: int) -> FloodReport:
    worker = start_worker(env, "-c", str(CONCURRENCY), name="flood")
    worker.wait_for("queues:", timeout=30)
    await asyncio.sleep(1.0)
    start = rss_mb(worker.proc.pid)
    bodies, kinds = hostile_bodies(hostile, queue, add.name)
    began = time.monotonic()
    handles = []
    every = max(1, hostile // max(1, good))
    peak = start
    for index in range(0, len(bodies), 200):
        chunk = [Outgoing(uuid.uuid4().hex, queue, b) for b in bodies[index : index + 200]]
        await app.broker.publish_many(chunk)
        handles += await app.enqueue_many([add.s(i, i) for i in
                                           range(len(handles), len(handles) + 200 // every)])
        peak = max(peak, rss_mb(worker.proc.pid))
    served = 0
    waiting = [asyncio.ensure_future(h.get(timeout=600)) for h in handles]
    while not all(w.done() for w in waiting):
        peak = max(peak, rss_mb(worker.proc.pid))
        await asyncio.sleep(0.2)
    for i, w in enumerate(waiting):
        served += w.result() == 2 * i
    dead, steady = -1, 0
    for _ in range(1200):  # the hostile ones may still be draining: until nothing moves
        peak = max(peak, rss_mb(worker.proc.pid))
        now_dead = len(await app.broker.dead_letters(queue, 100_000))
        waiting_now = await app.broker.queue_size(queue)
        steady = steady + 1 if (now_dead == dead and waiting_now == 0) else 0
        dead = now_dead
        if steady >= 5 or (dead >= hostile and waiting_now == 0):
            break
        await asyncio.sleep(0.4)
    seconds = time.monotonic() - began
    assert worker.proc.poll() is None, worker.text()[-2000:]
    return FloodReport(hostile, len(handles), kinds, served, seconds, start, peak,
                       memory_bound_mb(start), dead)
