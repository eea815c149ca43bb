"""What ``?wait_replicas=1`` costs an enqueue: plain vs waiting, alternated in one run.

    python benchmarks/sentinel_wait.py --pairs 3

Starts a throwaway master + replica + 3 sentinels (tests/_servers/sentinel.py, from the
local redis-server), then, pair by pair, times the same enqueues through
``redis+sentinel://...`` without and with ``wait_replicas=1``: ``concurrent`` (N
``enqueue`` calls under one gather: the producer coalesces them into batches, one WAIT
per batch) and ``sequential`` (one enqueue after another: one WAIT each).
Prints tasks/s per pair and the ratio waiting / plain.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asyncq import App
from tests._servers.sentinel import SentinelGroup


async def rates(url: str, concurrent: int, sequential: int) -> dict[str, float]:
    app = App("bench-wait", broker=url, default_queue=f"bench-wait-{time.time_ns()}")

    @app.task
    async def noop(i: int) -> None: ...

    async with app:
        began = time.perf_counter()
        await asyncio.gather(*(noop.enqueue(i) for i in range(concurrent)))
        mid = time.perf_counter()
        for i in range(sequential):
            await noop.enqueue(i)
        end = time.perf_counter()
        await app.broker.delete_queue(app.default_queue)
    return {"concurrent": concurrent / (mid - began), "sequential": sequential / (end - mid)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--concurrent", type=int, default=20_000)
    parser.add_argument("--sequential", type=int, default=2_000)
    args = parser.parse_args()
    ratios: dict[str, list[float]] = {"concurrent": [], "sequential": []}
    with SentinelGroup.started() as group:
        for pair in range(args.pairs):
            plain = asyncio.run(rates(group.url(), args.concurrent, args.sequential))
            wait = asyncio.run(
                rates(group.url(query="wait_replicas=1"), args.concurrent, args.sequential)
            )
            for kind in ratios:
                ratios[kind].append(wait[kind] / plain[kind])
                print(
                    f"pair {pair + 1} {kind:10}: plain {plain[kind]:9,.0f}/s  "
                    f"wait_replicas=1 {wait[kind]:9,.0f}/s  ratio {ratios[kind][-1]:.2f}"
                )
    for kind, values in ratios.items():
        print(f"{kind}: median ratio wait/plain {statistics.median(values):.2f}")


if __name__ == "__main__":
    main()
