"""Where a worker's CPU goes on a no-op drain: cProfile of one in-process worker.

    python benchmarks/profile_worker.py [--broker redis://127.0.0.1:6379/0] [--tasks 50000] \\
        [--top 25] [--out profile.txt]

Queues ``--tasks`` no-op tasks (``bench_tasks.noop``, results recorded), then drains
them with an in-process ``Worker(app, concurrency=100)`` on uvloop under cProfile with a
CPU-time timer (``time.process_time``): the producer's enqueue is not in the profile
and nothing waits on a handle (the last result is polled), the worker's start-up is (it
is small next to the drain). The profiler inflates the cost
of every Python call, so read the shares, not the times; ``benchmarks/worker_cpu.py``
and ``instructions.py`` give the per-task figures.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import sys
import time
import uuid
from pathlib import Path


async def _drain(tasks: int) -> cProfile.Profile:
    import bench_tasks

    import asyncq

    app = bench_tasks.app
    async with app:
        handles = await app.enqueue_many([bench_tasks.noop.s(i) for i in range(tasks)])
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        async with asyncq.Worker(app, concurrency=100, queues=[bench_tasks.QUEUE]):
            # polled, not awaited: a wait would subscribe this process to its reply
            # channel, and the profile would hold the producer's side of every result
            while await app.backend.get(handles[-1].id) is None:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        profile.disable()
        await app.broker.delete_queue(bench_tasks.QUEUE)
    return profile


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--broker", default="redis://127.0.0.1:6379/0")
    p.add_argument("--tasks", type=int, default=50_000)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    os.environ["ASYNCQ_BENCH_BROKER"] = args.broker
    os.environ["ASYNCQ_BENCH_QUEUE"] = f"prof-{uuid.uuid4().hex[:8]}"
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import uvloop

    profile = uvloop.run(_drain(args.tasks))
    text = io.StringIO()
    stats = pstats.Stats(profile, stream=text)
    stats.sort_stats("tottime").print_stats(args.top)
    report = (f"# cProfile (process_time) of an in-process worker draining {args.tasks:,} "
              f"no-op tasks on {args.broker}\n{text.getvalue()}")
    if args.out:
        args.out.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
