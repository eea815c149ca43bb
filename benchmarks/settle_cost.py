"""Redis CPU per task of the worker's Redis side: XREADGROUP, then settle.lua.

    python benchmarks/settle_cost.py                      # asyncq's settle.lua
    python benchmarks/settle_cost.py --compare old.lua    # alternated with another version
    python benchmarks/settle_cost.py --hold-head          # the oldest entry stays pending
    python benchmarks/settle_cost.py --each               # settle each batch as it is read
    git show 77795d3~1:asyncq/brokers/redis/lua/settle.lua > /tmp/old.lua  # e.g. an older one

Fills a scratch stream with N entries, reads them through a consumer group in batches
of 100 (as a worker does), then settles them 100 at a time with one result write per
task, and reports Redis's own CPU (``INFO cpu``) per task for each step. With
``--hold-head`` the first entry is never settled, as when a long task holds the oldest
pending entry: every batch lies after it, so nothing can be trimmed from the head. With
``--each`` every batch is settled before the next is read, as a worker's quick tasks
are: each settle leaves nothing pending. Only Redis's CPU is counted, so the client's
speed does not matter; other load on Redis does. Scripts get the result-record prelude
as the broker loads them. Scratch keys (``asyncq-bench-cost:<random>:*``) are deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

import msgpack
import redis.asyncio as aioredis

from asyncq._redis import load_lua
from asyncq.records import lua_prelude

PREFIX = f"asyncq-bench-cost:{os.urandom(4).hex()}"  # (runs side by side do not meet)
BATCH = 100


async def _cpu(client: Any) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _fill(client: Any, stream: str, n: int) -> None:
    await client.delete(stream)
    for start in range(0, n, 1000):
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(start, min(n, start + 1000)):
                pipe.xadd(stream, {"d": os.urandom(60)})
            await pipe.execute()
    await client.xgroup_create(stream, "g", id="0")


async def _read(client: Any, stream: str) -> list[Any]:
    ids: list[Any] = []
    while reply := await client.xreadgroup("g", "c", {stream: ">"}, count=BATCH):
        ids += [entry_id for entry_id, _ in reply[0][1]]
    return ids


async def _settle(client: Any, sha: str, stream: str, ids: list[Any], first: int = 0) -> None:
    """Settle ``ids`` with one new result key each (numbered from ``first``: a key
    written before would hold a final record, and the script keeps that one)."""
    value = b"S" + os.urandom(24)  # a result record's size, roughly
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        keys = [f"{PREFIX}:result:{first + start + i}" for i in range(len(chunk))]
        flat: list[Any] = []
        for key in keys:
            flat += [86_400_000, True, f"{PREFIX}:done:{key}", "", value]
        blob = msgpack.packb([chunk, flat], use_bin_type=False)
        await client.evalsha(sha, 1 + len(keys), stream, *keys, "g", blob)


async def measure(client: Any, script: str, n: int, hold_head: bool,
                  each: bool) -> tuple[float, float]:
    """(XREADGROUP µs per task, settle.lua µs per task) of Redis CPU."""
    stream = f"{PREFIX}:stream"
    sha = await client.script_load(script)
    await _fill(client, stream, n)
    if each:
        read, settle = await _read_and_settle(client, sha, stream)
    else:
        before = await _cpu(client)
        ids = await _read(client, stream)
        after_read = await _cpu(client)
        await _settle(client, sha, stream, ids[1:] if hold_head else ids)
        read, settle = after_read - before, await _cpu(client) - after_read
    assert await client.xlen(stream) == int(hold_head), "settle.lua left entries behind"
    keys = [k async for k in client.scan_iter(f"{PREFIX}:*", count=10_000)]
    for start in range(0, len(keys), 1000):
        await client.unlink(*keys[start : start + 1000])
    return read / n * 1e6, settle / n * 1e6


async def _read_and_settle(client: Any, sha: str, stream: str) -> tuple[float, float]:
    """Read a batch, settle it, and again: Redis CPU seconds of the reads, the settles."""
    read = settle = 0.0
    settled = 0
    while True:
        start = await _cpu(client)
        reply = await client.xreadgroup("g", "c", {stream: ">"}, count=BATCH)
        read_at = await _cpu(client)
        read += read_at - start
        if not reply:
            return read, settle
        ids = [entry_id for entry_id, _ in reply[0][1]]
        await _settle(client, sha, stream, ids, settled)
        settled += len(ids)
        settle += await _cpu(client) - read_at


async def main(args: argparse.Namespace) -> None:
    client = aioredis.Redis.from_url(args.redis_url)
    scripts = {"settle.lua": load_lua("asyncq.brokers.redis", "settle")}
    if args.compare:
        text = args.compare.read_text()
        prelude = lua_prelude() if "asyncq_store(" in text else ""
        scripts[f"{args.compare.name} (compare)"] = prelude + text
    try:
        for round_ in range(1, args.rounds + 1):
            for name, script in scripts.items():
                read, settle = await measure(client, script, args.n, args.hold_head,
                                             args.each)
                print(f"round {round_} {name:>24}: XREADGROUP {read:5.2f} µs/task, "
                      f"settle {settle:5.2f} µs/task (Redis CPU)")
    finally:
        await client.aclose()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--compare", type=Path, help="another settle.lua, alternated with ours")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--hold-head", action="store_true", help="leave the first entry pending")
    mode.add_argument("--each", action="store_true",
                      help="settle each batch before reading the next (nothing left pending)")
    p.add_argument("--redis-url", default=os.environ.get("ASYNCQ_TEST_REDIS_URL",
                                                         "redis://127.0.0.1:6379/0"))
    asyncio.run(main(p.parse_args()))
