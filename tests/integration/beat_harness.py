"""Several schedulers on one app through the real CLI, a leader killed, and the ticks
counted where they land: in the queue (no worker consumes it), by task id."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import redis.asyncio as aioredis

from asyncq.message import Message

BEAT_MODULE = '''
import os
from datetime import timedelta
from asyncq import App

app = App(os.environ["B_APP"], broker=os.environ["B_BROKER"])
QUEUE = os.environ["B_QUEUE"]


@app.periodic(timedelta(seconds=1), name="tick", queue=QUEUE)
async def tick() -> None: ...


@app.task(queue=QUEUE + "-other")
async def other() -> None: ...
'''


@dataclass
class Scheduler:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def leads(self) -> bool:
        return self.alive and "beat leads" in self.text()


@dataclass
class Fleet:
    """Schedulers of one app (``asyncq beat`` and ``asyncq worker --beat`` processes)."""

    broker: str
    workdir: Path
    app: str = field(default_factory=lambda: f"beat{uuid.uuid4().hex[:8]}")
    queue: str = field(default_factory=lambda: f"beat-{uuid.uuid4().hex[:10]}")
    members: list[Scheduler] = field(default_factory=list)

    def __post_init__(self) -> None:
        (self.workdir / "btasks.py").write_text(textwrap.dedent(BEAT_MODULE))

    def start(self, name: str, *args: str) -> Scheduler:
        log = self.workdir / f"{name}.log"
        env = {**os.environ, "B_APP": self.app, "B_BROKER": self.broker,
               "B_QUEUE": self.queue}
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "asyncq", *args, "btasks:app",
                                     "-l", "info"], cwd=self.workdir, env=env,
                                    stdout=out, stderr=subprocess.STDOUT)
        member = Scheduler(name, proc, log)
        self.members.append(member)
        return member

    def start_beat(self, name: str, lease: float) -> Scheduler:
        return self.start(name, "beat", "--lease", str(lease))

    def start_worker(self, name: str) -> Scheduler:
        return self.start(name, "worker", "-Q", f"{self.queue}-other", "--beat")

    def leader(self, timeout: float = 20.0, *, besides: Scheduler | None = None) -> Scheduler:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leading = [m for m in self.members if m is not besides and m.leads]
            if leading:
                return leading[0]
            time.sleep(0.02)
        raise AssertionError("no scheduler leads:\n" + self.logs())

    def logs(self) -> str:
        return "\n".join(f"--- {m.name}\n{m.text()[-3000:]}" for m in self.members)

    def stop(self) -> None:
        for member in self.members:
            if member.alive:
                member.proc.send_signal(signal.SIGTERM)
        for member in self.members:
            try:
                member.proc.wait(15)
            except subprocess.TimeoutExpired:
                member.proc.kill()
                member.proc.wait(5)

    def kill(self) -> None:
        for member in self.members:
            if member.alive:
                member.proc.kill()
                member.proc.wait(5)

    # -- what landed in the queue -----------------------------------------------------------
    async def tick_ids(self) -> list[str]:
        bodies = await (_redis_bodies(self) if self.broker.startswith("redis")
                        else _amqp_bodies(self))
        return [Message.decode(body).id for body in bodies]

    async def cleanup(self) -> None:
        if self.broker.startswith("redis"):
            # the ticks' marks by their ids (no SCAN: the keyspace may be large)
            keys = [f"asyncq:{{{self.queue}}}:beat:{tick}" for tick in await self.tick_ids()]
            keys += [f"asyncq:beat:{{{self.app}}}:leader", f"asyncq:beat:{{{self.app}}}:cursors"]
            client = aioredis.Redis.from_url(self.broker)
            for queue in (self.queue, f"{self.queue}-other"):
                keys += [f"asyncq:{{{queue}}}:{part}" for part in ("stream", "delayed", "dead")]
            await client.delete(*keys)
            await client.aclose()
            return
        connection = await aio_pika.connect(self.broker)
        async with connection:
            channel = await connection.channel()
            for name in (self.queue, f"{self.queue}.dead", f"{self.queue}-other",
                         f"{self.queue}-other.dead", f"asyncq.beat.{self.app}"):
                await channel.queue_delete(name)


async def _redis_bodies(fleet: Fleet) -> list[bytes]:
    client = aioredis.Redis.from_url(fleet.broker)
    try:
        entries: Any = await client.xrange(f"asyncq:{{{fleet.queue}}}:stream")
    finally:
        await client.aclose()
    return [fields[b"d"] for _, fields in entries]


async def _amqp_bodies(fleet: Fleet) -> list[bytes]:
    connection = await aio_pika.connect(fleet.broker)
    bodies = []
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(fleet.queue)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            bodies.append(message.body)
    return bodies


def tick_figures(ids: list[str]) -> dict[str, Any]:
    """Enqueued, duplicated and missed ticks of a 1 s entry (missed: the holes between
    the first and the last tick)."""
    millis = [int(i.rsplit(":", 1)[1]) for i in ids]
    counts = Counter(millis)
    if not millis:
        return {"enqueued": 0, "duplicated": 0, "missed": 0, "distinct": 0}
    expected = set(range(min(millis), max(millis) + 1, 1000))
    return {
        "enqueued": len(millis),
        "distinct": len(counts),
        "duplicated": sum(n - 1 for n in counts.values()),
        "missed": len(expected - set(counts)),
        "missed_ticks": sorted(expected - set(counts)),
        "span_s": (max(millis) - min(millis)) / 1000 + 1,
    }


def run_fleet(fleet: Fleet, *, seconds: float, kill_at: float | None, lease: float
              ) -> dict[str, Any]:
    """Two ``asyncq beat`` and one ``asyncq worker --beat`` for ``seconds``; the leader
    SIGKILLed ``kill_at`` seconds in. Returns what happened (no ticks counted yet)."""
    fleet.start_beat("beat-1", lease)
    fleet.start_beat("beat-2", lease)
    leader = fleet.leader()
    fleet.start_worker("worker-beat")
    started = time.monotonic()
    figures: dict[str, Any] = {"first_leader": leader.name, "lease_s": lease}
    if kill_at is not None:
        time.sleep(max(0.0, kill_at - (time.monotonic() - started)))
        leader = fleet.leader()
        leader.proc.kill()
        killed = time.monotonic()
        successor = fleet.leader(timeout=lease * 3 + 10, besides=leader)
        figures.update(killed=leader.name, successor=successor.name,
                       handover_s=round(time.monotonic() - killed, 2))
    time.sleep(max(0.0, seconds - (time.monotonic() - started)))
    fleet.stop()
    figures["exit_codes"] = {m.name: m.proc.returncode for m in fleet.members}
    return figures
