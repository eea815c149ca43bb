"""Scale-out on one machine: I/O-bound rate and CPU per task for 1, 2 and 4 worker processes.

    python benchmarks/scaleout.py --broker redis://127.0.0.1:6379/0 [--procs 1 2 4] [--json F]

Two measurements per process count, each with ``asyncq worker`` processes started through
the CLI:

* **io**: tasks that each await ``--sleep-ms`` (20 ms), ``-c 50`` per process. With no
  contention in the protocol, the rate grows with the process count: one process can do
  at most 50 / 0.020 = 2,500 tasks/s.
* **cpu**: no-op tasks enqueued in one batch to workers already reading. The worker
  processes' CPU (utime + stime from ``/proc/<pid>/stat``) and Redis's (``INFO cpu``)
  over the drain, divided by the tasks, give microseconds of CPU per task on each side.
  Flat figures from 1 to 4 processes mean that adding processes adds capacity until the
  cores run out; the capacity model in benchmarks/README turns them into tasks/s per core.

On two shared vCPUs the cpu rows' rates are bounded by the cores, not by asyncq: read
their CPU-per-task columns, not their rates.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import core  # noqa: E402  (benchmarks/core.py: worker processes, module loading)

from asyncq.brokers.redis._keys import stream_key  # noqa: E402
from asyncq.cli.supervise import READY_ENV  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """Seconds of CPU (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def redis_cpu(app: Any) -> float:
    info = await app.broker.client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


@contextlib.asynccontextmanager
async def ready_workers(mod: Any, args: argparse.Namespace, concurrency: int,
                        procs: int) -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    """Worker processes on an empty queue, yielded once every one of them consumes.

    Each worker touches its own file named in ``READY_ENV`` when it consumes (the
    supervisor's readiness signal), so the clock starts with all of them reading.
    """
    cmd = [sys.executable, "-m", "asyncq", "worker", "bench_tasks:app", "-Q", mod.QUEUE,
           "-c", str(concurrency), "-l", "warning"]
    with tempfile.TemporaryDirectory() as tmp:
        flags = [Path(tmp, f"ready-{i}") for i in range(procs)]
        env = core._env(args.broker, mod.QUEUE, None)
        workers = [subprocess.Popen(  # noqa: ASYNC220 - before the clock
            cmd, env={**env, READY_ENV: str(flag)}, cwd=HERE, stderr=subprocess.DEVNULL)
            for flag in flags]
        try:
            while not all(flag.exists() for flag in flags):
                if any(w.poll() is not None for w in workers):
                    raise SystemExit("a worker process ended before it was ready")
                await asyncio.sleep(0.02)
            yield workers
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(30)


async def drained(app: Any, queue: str) -> None:
    """Until every entry of the queue's stream was delivered and acked (Redis only).

    Awaiting each handle would measure the producer's result fan-in, not the workers.
    """
    client, stream = app.broker.client, stream_key(queue)
    while True:
        groups = await client.xinfo_groups(stream)
        if all(g["pending"] == 0 and not g.get("lag") for g in groups):
            return
        await asyncio.sleep(0.005)


async def io_bound(mod: Any, args: argparse.Namespace, procs: int) -> dict[str, float]:
    n = args.io_tasks * procs
    async with ready_workers(mod, args, args.io_concurrency, procs):
        start = time.perf_counter()
        handles = await mod.app.enqueue_many([mod.sleep_ms.s(args.sleep_ms) for _ in range(n)])
        await drained(mod.app, mod.QUEUE)
        await handles[-1].get(timeout=120)
        elapsed = time.perf_counter() - start
    ceiling = procs * args.io_concurrency / (args.sleep_ms / 1e3)
    return {"procs": procs, "tasks": n, "per_s": n / elapsed, "ceiling_per_s": ceiling}


async def cpu_bound(mod: Any, args: argparse.Namespace, procs: int) -> dict[str, float]:
    n = args.cpu_tasks
    calls = [mod.noop.s(i) for i in range(n)]
    async with ready_workers(mod, args, args.concurrency, procs) as workers:
        w0 = sum(proc_cpu(p.pid) for p in workers)
        r0 = await redis_cpu(mod.app)
        start = time.perf_counter()
        handles = await mod.app.enqueue_many(calls)
        await drained(mod.app, mod.QUEUE)
        await handles[-1].get(timeout=120)
        elapsed = time.perf_counter() - start
        w1 = sum(proc_cpu(p.pid) for p in workers)
        r1 = await redis_cpu(mod.app)
    return {"procs": procs, "tasks": n, "per_s": n / elapsed,
            "worker_us_per_task": (w1 - w0) / n * 1e6,
            "redis_us_per_task": (r1 - r0) / n * 1e6}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    mod = core._load(args.broker, f"scale-{uuid.uuid4().hex[:8]}", None)
    out: dict[str, Any] = {"broker": args.broker.split("@")[-1], "io": [], "cpu": []}
    async with mod.app:
        for procs in args.procs:
            out["io"].append(await io_bound(mod, args, procs))
            out["cpu"].append(await cpu_bound(mod, args, procs))
            print(json.dumps({"io": out["io"][-1], "cpu": out["cpu"][-1]}), file=sys.stderr)
        await mod.app.broker.delete_queue(mod.QUEUE)
    base = out["io"][0]["per_s"]
    for row in out["io"]:
        row["speedup"] = row["per_s"] / base
    return out


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--broker", default="redis://127.0.0.1:6379/0")
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--sleep-ms", type=float, default=20.0)
    p.add_argument("--io-concurrency", type=int, default=50)
    p.add_argument("--io-tasks", type=int, default=10000, help="per worker process")
    p.add_argument("--concurrency", type=int, default=100, help="for the cpu rows")
    p.add_argument("--cpu-tasks", type=int, default=100000)
    p.add_argument("--json", type=Path)
    return p.parse_args()


if __name__ == "__main__":
    arguments = parse()
    result = asyncio.run(main(arguments))
    text = json.dumps(result, indent=2)
    print(text)
    if arguments.json:
        arguments.json.write_text(text + "\n")
