"""CPU per message on RabbitMQ: the producer, the worker and the broker itself.

    python benchmarks/amqp_cost.py --broker amqp://guest:guest@127.0.0.1:5672/ \\
        [--n 20000] [--rounds 3] [--beam-pid PID] [--backend redis://...] [--json out.json]

Each round enqueues ``n`` no-op tasks one at a time (``n`` concurrent ``enqueue`` calls),
then drains them through one worker process (``asyncq worker -c 100``), as
``benchmarks/core.py`` does; results go back over RabbitMQ (RPC) unless ``--backend``
names another store, which takes the reply messages out of the broker's figure.
Around each phase it reads the CPU time (user + system) of this process, of the worker
and of RabbitMQ's ``beam.smp`` (found by the broker's port, or ``--beam-pid``), and
prints wall rate and microseconds of CPU per message for each. On a shared machine the
wall rates move with the load; the CPU figures move far less, and say which process is
the limit: a node used by others also counts their work, so use a throwaway node
(``scripts/servers.py --amqp``) for the broker's figure. The broker's drain figure also
holds this process's polling of the queue's length (every 5 ms): a slower drain polls
more per message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import core

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def beam_pid(broker: str) -> int | None:
    """The ``beam.smp`` process listening on the broker URL's port, if it is ours to see."""
    port = urlsplit(broker).port or 5672
    inodes = _listening_inodes(port)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "beam.smp":
                continue
            fds = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
        except OSError:
            continue
        if any(f"socket:[{inode}]" in fds for inode in inodes):
            return int(entry.name)
    return None


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(parts[9])
    return inodes


class Meter:
    """CPU seconds of several processes between two instants."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = {name: cpu_seconds(pid) for name, pid in pids.items()}
        self.started = time.perf_counter()

    def per_message(self, n: int) -> dict[str, float]:
        wall = time.perf_counter() - self.started
        out = {"per_s": n / wall}
        for name, pid in self.pids.items():
            out[f"{name}_us"] = (cpu_seconds(pid) - self.start[name]) / n * 1e6
        return out


async def enqueue(mod: Any, pids: dict[str, int], n: int) -> dict[str, float]:
    meter = Meter(pids)
    await asyncio.gather(*(mod.noop.enqueue(i) for i in range(n)))
    return meter.per_message(n)


async def drain(
    mod: Any, args: argparse.Namespace, pids: dict[str, int], n: int
) -> dict[str, float]:
    handles = await mod.app.enqueue_many([mod.noop.s(i) for i in range(n)])
    size = mod.app.broker.queue_size
    with core.worker(args.broker, mod.QUEUE, args.backend, 100) as procs:
        while await size(mod.QUEUE) >= n:  # noqa: ASYNC110 - excludes the worker's start-up
            await asyncio.sleep(0.005)
        meter = Meter({**pids, "worker": procs[0].pid})
        while await size(mod.QUEUE) > 0:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        await handles[-1].get(timeout=60)
        return meter.per_message(n)


def summary(rows: list[dict[str, float]]) -> dict[str, str]:
    """Median [min-max] of each figure over the rounds."""
    return {
        key: f"{statistics.median(r[key] for r in rows):.1f} "
        f"[{min(r[key] for r in rows):.1f}-{max(r[key] for r in rows):.1f}]"
        for key in rows[0]
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    mod = core._load(args.broker, f"cost-{uuid.uuid4().hex[:8]}", args.backend)
    pids = {"client": os.getpid()}
    beam = args.beam_pid or beam_pid(args.broker)
    if beam is not None:
        pids["broker"] = beam
    out: dict[str, Any] = {"enqueue": [], "drain": []}
    async with mod.app:
        await mod.noop.enqueue(0)  # connect and declare outside the measured phases
        await mod.app.broker.delete_queue(mod.QUEUE)
        for _ in range(args.rounds):
            out["enqueue"].append(await enqueue(mod, pids, args.n))
            await mod.app.broker.delete_queue(mod.QUEUE)
            out["drain"].append(await drain(mod, args, pids, args.n))
        await mod.app.broker.delete_queue(mod.QUEUE)
    out["summary"] = {phase: summary(out[phase]) for phase in ("enqueue", "drain")}
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--beam-pid", type=int, default=None)
    parser.add_argument("--backend", default=None,
                        help="result backend URL (default: RPC results over RabbitMQ)")
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args()
    result = asyncio.run(main(arguments))
    print(json.dumps(result["summary"], indent=2))
    if arguments.json:
        arguments.json.write_text(json.dumps(result, indent=2) + "\n")
