"""RabbitMQ's own ceiling for asyncq's messages, beside asyncq's one-at-a-time enqueue.

    python benchmarks/amqp_ceiling.py [--broker amqp://guest:guest@127.0.0.1:5672/]
        [--backend redis://127.0.0.1:6379/0] [--n 30000] [--rounds 5]
        [--storage default,lazy+v2] [--beam-pid PID] [--json out.json]

The "broker alone" figure takes the client out: the frames of ``n`` messages are made
beforehand, exactly as asyncq makes them (the task's body, its properties, ``basic.publish``
to the ``asyncq`` exchange, mandatory, persistent), and written by a bare AMQP 0-9-1
connection (pamqp frames over a socket) in batches of 1,000 with 16 batches awaiting
their publisher confirms at once, as the publisher's window does; the time runs from the
first write to the last confirm. Beside it, ``n`` concurrent ``await noop.enqueue(i)``
through asyncq (W1). Both go to fresh queues that asyncq declared. The two take turns
within a round and swap places each round; figures are medians, with RabbitMQ's CPU per
message (its ``beam.smp``: ``--beam-pid``, else the oldest one) and the machine's idle
cores.

``--storage`` compares classic queue storage on RabbitMQ 3.10/3.11 (ignored from 3.12,
where classic queues behave like ``lazy`` + version 2): ``default``, ``lazy``
(``x-queue-mode``), ``v2`` (``x-queue-version``), ``lazy+v2``. The arguments are added
to the queues this script declares; an operator sets the same with a policy
(``queue-mode``, ``queue-version``; docs/brokers.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote, urlsplit

import pamqp.frame
import sched_share
from amqp_window import _beam
from pamqp import commands

from asyncq import App
from asyncq.brokers.amqp import _frames, _layout

BATCH = 1000
WINDOW = 16  # the publisher's _WINDOW
STORAGE: dict[str, dict[str, Any]] = {
    "default": {}, "lazy": {"x-queue-mode": "lazy"}, "v2": {"x-queue-version": 2},
    "lazy+v2": {"x-queue-mode": "lazy", "x-queue-version": 2},
}


class Bare:
    """One AMQP 0-9-1 connection with one confirming channel, frames by pamqp."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.buffer = reader, writer, b""
        self.frame_max = 131072

    @classmethod
    async def open(cls, url: str) -> Bare:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 5672)
        bare = cls(reader, writer)
        writer.write(b"AMQP\x00\x00\x09\x01")
        await bare.frame()  # connection.start
        login = f"\0{unquote(parts.username or 'guest')}\0{unquote(parts.password or 'guest')}"
        bare.send(0, commands.Connection.StartOk(client_properties={}, mechanism="PLAIN",
                                                 response=login))
        _, tune = await bare.frame()
        bare.frame_max = tune.frame_max or bare.frame_max
        bare.send(0, commands.Connection.TuneOk(channel_max=tune.channel_max,
                                                frame_max=bare.frame_max, heartbeat=0))
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        for number, method in ((0, commands.Connection.Open(virtual_host=vhost)),
                               (1, commands.Channel.Open()), (1, commands.Confirm.Select())):
            bare.send(number, method)
            await bare.frame()
        return bare

    def send(self, channel: int, method: Any) -> None:
        self.writer.write(pamqp.frame.marshal(method, channel))

    async def frame(self) -> tuple[int, Any]:
        while True:
            if self.buffer:
                try:
                    used, channel, frame = pamqp.frame.unmarshal(self.buffer)
                except pamqp.exceptions.UnmarshalingException:
                    pass  # not whole yet
                else:
                    self.buffer = self.buffer[used:]
                    return channel, frame
            data = await self.reader.read(1 << 16)
            if not data:
                raise ConnectionError("RabbitMQ closed the connection")
            self.buffer += data

    async def publish(self, chunks: list[tuple[int, bytes]]) -> None:
        """Write the chunks ((messages, bytes), in order), at most ``WINDOW * BATCH``
        messages awaiting their confirms at once; return once all are confirmed."""
        n = sum(count for count, _ in chunks)
        confirmed = 0
        changed = asyncio.Event()

        async def read_confirms() -> None:
            nonlocal confirmed
            try:
                while confirmed < n:
                    _, frame = await self.frame()
                    if isinstance(frame, commands.Basic.Nack | commands.Basic.Return
                                  | commands.Channel.Close):
                        raise RuntimeError(f"RabbitMQ refused a message: {frame!r}")
                    if isinstance(frame, commands.Basic.Ack):
                        confirmed = max(confirmed, frame.delivery_tag)
                        changed.set()
            finally:
                changed.set()  # the writer stops waiting whichever way this ends

        reading = asyncio.create_task(read_confirms())
        written = 0
        for count, chunk in chunks:
            while written - confirmed >= WINDOW * BATCH and not reading.done():
                changed.clear()
                await changed.wait()
            self.writer.write(chunk)
            written += count
            await self.writer.drain()
        await reading

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def with_storage(args: dict[str, Any]) -> Callable[[], None]:
    """Add ``args`` to the classic queues asyncq declares from now on; returns an undo."""
    plain = _layout.QueueKind.main_args

    def main_args(kind: _layout.QueueKind, queue: str) -> dict[str, Any]:
        return {**plain(kind, queue), **({} if kind.quorum else args)}

    _layout.QueueKind.main_args = main_args  # type: ignore[method-assign]

    def undo() -> None:
        _layout.QueueKind.main_args = plain  # type: ignore[method-assign]
    return undo


async def frames_for(app: App, task: Any, n: int, frame_max: int
                     ) -> tuple[list[tuple[int, bytes]], list[Any]]:
    """The wire bytes of ``n`` calls of ``task`` as asyncq's publisher writes them, in
    chunks of ``BATCH`` messages, and the calls' result handles."""
    channel = SimpleNamespace(number=1, max_content_size=frame_max - 8)
    publisher = app.broker.publisher  # type: ignore[attr-defined]
    frames, handles = [], []
    for i in range(n):
        outgoing, handle = app._preparer.prepare(task.s(i))
        frames.append(_frames._frames(channel, await publisher._item(outgoing)))
        handles.append(handle)
    chunks = [(len(frames[i:i + BATCH]), b"".join(frames[i:i + BATCH]))
              for i in range(0, n, BATCH)]
    return chunks, handles


async def bare_round(app: App, task: Any, broker: str, n: int, beam: int | None
                     ) -> dict[str, Any]:
    bare = await Bare.open(broker)
    try:
        chunks, _ = await frames_for(app, task, n, bare.frame_max)
        phase, start = sched_share.Phase({"broker": beam} if beam else {}), time.perf_counter()
        await bare.publish(chunks)
        seconds = time.perf_counter() - start
    finally:
        await bare.close()
    return {"per_s": n / seconds, "sched": phase.report(n, seconds)}


async def asyncq_round(task: Any, n: int, beam: int | None) -> dict[str, Any]:
    await task.enqueue(-1)  # its queue declared
    pids = {"producer": os.getpid(), **({"broker": beam} if beam else {})}
    phase, start = sched_share.Phase(pids), time.perf_counter()
    await asyncio.gather(*(task.enqueue(i) for i in range(n)))
    seconds = time.perf_counter() - start
    return {"per_s": n / seconds, "sched": phase.report(n, seconds)}


async def one_round(args: argparse.Namespace, storage: str, bare_first: bool,
                    beam: int | None) -> dict[str, Any]:
    undo = with_storage(STORAGE[storage])
    tag = uuid.uuid4().hex[:8]
    app = App("bench-ceiling", broker=args.broker, backend=args.backend)

    @app.task(queue=f"bench-ceil-{tag}-b", name="bench.ceiling.b")
    async def noop_b(i: int) -> int:
        return i

    @app.task(queue=f"bench-ceil-{tag}-a", name="bench.ceiling.a")
    async def noop_a(i: int) -> int:
        return i

    out: dict[str, Any] = {"storage": storage, "bare_first": bare_first}
    try:
        async with app:
            for side in (["bare", "asyncq"] if bare_first else ["asyncq", "bare"]):
                out[side] = (await bare_round(app, noop_b, args.broker, args.n, beam)
                             if side == "bare" else await asyncq_round(noop_a, args.n, beam))
            for task in (noop_a, noop_b):
                await app.broker.delete_queue(task.config.queue)
    finally:
        undo()
    return out


def summary(runs: list[dict[str, Any]], storage: str) -> dict[str, Any]:
    mine = [r for r in runs if r["storage"] == storage]
    row: dict[str, Any] = {"storage": storage, "rounds": len(mine)}
    for side in ("bare", "asyncq"):
        row[f"{side}_per_s"] = statistics.median(r[side]["per_s"] for r in mine)
        sched = [r[side]["sched"] for r in mine if r[side]["sched"]]
        if sched:
            row[f"{side}_idle_cores"] = statistics.median(s["idle_cores"] for s in sched)
            for name in ("broker", "producer"):
                if name in sched[0]:
                    row[f"{side}_{name}_cpu_us"] = statistics.median(
                        s[name]["cpu_us_per_task"] for s in sched)
    row["asyncq_vs_bare"] = row["asyncq_per_s"] / row["bare_per_s"]
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672/")
    p.add_argument("--backend", default="redis://127.0.0.1:6379/0",
                   help="results (not awaited here), as core.py --backend")
    p.add_argument("--n", type=int, default=30000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--storage", default="default,lazy+v2",
                   help=f"comma-separated, of {', '.join(STORAGE)}")
    p.add_argument("--beam-pid", type=int, default=None)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    kinds = args.storage.split(",")
    unknown = [k for k in kinds if k not in STORAGE]
    if unknown:
        p.error(f"unknown --storage {unknown}: choose from {', '.join(STORAGE)}")
    beam = _beam(args.beam_pid)
    runs = [asyncio.run(one_round(args, kind, r % 2 == 0, beam))
            for r in range(args.rounds) for kind in kinds]
    table = [summary(runs, kind) for kind in kinds]
    for row in table:
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                          for k, v in row.items()}))
    if args.json:
        args.json.write_text(json.dumps({"summary": table, "runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
