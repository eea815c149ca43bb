"""A worker's CPU per task on a no-op drain, from /proc, two source trees alternated.

    python benchmarks/worker_cpu.py --before /path/to/old/tree --after . [--rounds 4] \\
        [--tasks 200000] [--broker redis://127.0.0.1:6379/0]

Each run queues ``--tasks`` no-op tasks (``bench_tasks.noop``, a result recorded for
each), then starts one worker process through the CLI (``asyncq worker -c 100 -l
warning``) with ``PYTHONPATH`` set to the tree, and reads the process's ``utime +
stime`` (``/proc/<pid>/stat``, every thread) when it has taken its first messages and
again when the queue is empty and the last result is in. The difference over the
tasks drained in between is the worker's CPU per task: start-up is not counted, and
neither is the server's CPU (another process). The trees take turns, so drift on a
shared machine falls on both alike. The result keys are deleted after each run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # fields 14 and 15 of stat(5)


async def one_run(mod: Any, tree: Path, args: argparse.Namespace) -> dict[str, float]:
    handles = []
    for start in range(0, args.tasks, 10_000):
        handles += await mod.app.enqueue_many(
            [mod.noop.s(i) for i in range(start, min(args.tasks, start + 10_000))]
        )
    size = mod.app.broker.queue_size
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(tree)]))
    cmd = [
        sys.executable,
        "-m",
        "asyncq",
        "worker",
        "bench_tasks:app",
        "-Q",
        mod.QUEUE,
        "-c",
        str(args.concurrency),
        "-l",
        "warning",
    ]
    proc = await asyncio.create_subprocess_exec(*cmd, env=env, cwd=HERE, stderr=subprocess.DEVNULL)
    try:
        while (left := await size(mod.QUEUE)) >= args.tasks:  # noqa: ASYNC110
            await asyncio.sleep(0.002)
        cpu0, start = cpu_seconds(proc.pid), time.perf_counter()
        while await size(mod.QUEUE) > 0:  # noqa: ASYNC110 - polls the broker
            await asyncio.sleep(0.005)
        await handles[-1].get(timeout=120)
        cpu1, elapsed = cpu_seconds(proc.pid), time.perf_counter() - start
    finally:
        proc.terminate()
        await proc.wait()
    client = mod.app.backend.client
    for i in range(0, len(handles), 5000):
        await client.delete(*(f"asyncq:result:{h.id}" for h in handles[i : i + 5000]))
    return {"us_per_task": (cpu1 - cpu0) / left * 1e6, "per_s": left / elapsed}


async def main(args: argparse.Namespace) -> None:
    queue = f"wcpu-{uuid.uuid4().hex[:8]}"
    os.environ.update(ASYNCQ_BENCH_BROKER=args.broker, ASYNCQ_BENCH_QUEUE=queue)
    sys.path.insert(0, str(HERE))
    import bench_tasks

    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    async with bench_tasks.app:
        try:
            for index in range(args.rounds):
                order = ("before", "after") if index % 2 == 0 else ("after", "before")
                for side in order:
                    result = await one_run(bench_tasks, getattr(args, side).resolve(), args)
                    runs[side].append(result)
                    print(
                        f"round {index + 1} {side:>6}: {result['us_per_task']:5.2f} µs/task, "
                        f"{result['per_s']:,.0f} tasks/s",
                        file=sys.stderr,
                    )
        finally:
            await bench_tasks.app.broker.delete_queue(queue)
    print(
        f"| worker, {args.tasks:,} no-op tasks | before (median of {args.rounds}) | after "
        "| after / before |"
    )
    print("|---|---|---|---|")
    for key, name in (("us_per_task", "CPU µs per task"), ("per_s", "tasks/s")):
        before = statistics.median(r[key] for r in runs["before"])
        after = statistics.median(r[key] for r in runs["after"])
        print(f"| {name} | {before:,.2f} | {after:,.2f} | {after / before:.3f} |")


if __name__ == "__main__":
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--before", type=Path, required=True)
    p.add_argument("--after", type=Path, required=True)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--tasks", type=int, default=200_000)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--broker", default="redis://127.0.0.1:6379/0")
    asyncio.run(main(p.parse_args()))
