"""F9 Sentinel failover: SIGKILL the Redis master while a producer enqueues and a worker
drains, with plain asynchronous replication and with ``wait_replicas=1``.

Run: ./scripts/test tests/faults/test_sentinel_failover.py -m faults

Two faults, each in both modes:

- ``kill``: SIGKILL the master; the sentinels promote the replica.
- ``lag-kill``: SIGSTOP the replica for ``LAG_S`` (it stops reading its replication
  stream, as on a slow link), SIGKILL the master, SIGCONT the replica; the sentinels
  promote it with whatever it had received (everything, here: the killed master's
  kernel still delivers what it had written to the socket).
- ``partition-kill``: everyone reaches the master through a proxy
  (tests/_servers/hole.py) that, for ``LAG_S``, drops the replication link's bytes
  (a partition between master and replica), then the master is SIGKILLed: what it
  acknowledged meanwhile never reaches the replica that is promoted.

The killed master is started again 1 s after the failover (empty: nothing on disk);
the sentinels make it a replica of the new master. The producer enqueues with fixed ids
and retries a failed batch with the same ids; the ledger counts the enqueues the broker
acknowledged, the tasks that completed, and the acknowledged ones that never ran (lost).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._servers.sentinel import SentinelGroup
from tests.faults.conftest import (
    Ledger,
    completions_after,
    enqueue_numbered,
    record,
    start_worker,
    stop,
    tally,
)
from tests.faults.test_chaos import first_completion, load_tasks

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

LAG_S = 0.8  # the replica stopped, or its link cut, before the kill
TASK_S = 0.02
QUIET_S = 15.0  # no completion for this long (and none missing) ends the drain


#: the sentinels judge a master down after this long. With 1 s on this 2-core machine
#: (shared by Redis, the sentinels, a worker and a producer), the sentinels' logs showed
#: one judging the newly promoted master down a second after the switch, and a run lost
#: 2,800 queued tasks, most likely to a second failover that promoted the restarted,
#: still empty old master (its first sync wipes the other). One failover is what this
#: test is about.
DOWN_AFTER_MS = 3000


@pytest.fixture
def group(kind: str) -> Iterator[SentinelGroup]:
    with SentinelGroup.started(proxied=kind == "partition-kill", down_after_ms=DOWN_AFTER_MS,
                               failover_timeout_ms=2 * DOWN_AFTER_MS) as started:
        yield started


async def produce(
    mod: Any, ledger: Ledger, n: int, batch: int, pause: float, seconds: float = 0.0
) -> int:
    """Tasks of ``seconds`` each, with fixed ids (see :func:`enqueue_numbered`)."""
    return await enqueue_numbered(
        mod.app, lambda ns: [mod.work.options(task_id=f"t{i}").s(i, seconds) for i in ns],
        ledger, n, batch, pause)


async def fault(group: SentinelGroup, kind: str, at: float, timings: dict[str, float]) -> None:
    await asyncio.sleep(at)
    master = group.master()
    replica = next(node for node in group.nodes if node is not master)
    assert replica.proc is not None
    if kind == "lag-kill":
        replica.proc.send_signal(signal.SIGSTOP)
    elif kind == "partition-kill":
        assert group.hole is not None
        group.hole.cut()
    if kind != "kill":
        await asyncio.sleep(LAG_S)
    timings["killed_at"] = time.time()
    master.kill()
    if kind == "lag-kill":
        replica.proc.send_signal(signal.SIGCONT)
    timings["failover_s"] = round(await asyncio.to_thread(group.wait_failover, master), 2)
    if group.hole is not None:
        timings["replication_links_cut"] = group.hole.holed
        group.hole.mend()
    await asyncio.sleep(1.0)
    began = time.monotonic()
    await asyncio.to_thread(group.restart, master)
    await asyncio.to_thread(group.wait_replicas, 1, 60.0)
    timings["old_master_back_as_replica_s"] = round(time.monotonic() - began, 2)


async def drain(ledger: Ledger, wanted: set[int], deadline_s: float) -> None:
    """Until every acknowledged task completed, or none completed for QUIET_S."""
    deadline = time.monotonic() + deadline_s
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        done = set(ledger.counts("done"))
        if wanted <= done:
            return
        if len(done) != last:
            last, quiet_since = len(done), time.monotonic()
        elif time.monotonic() - quiet_since > QUIET_S:
            return
        await asyncio.sleep(0.5)


def leftover(group: SentinelGroup) -> dict[str, int]:
    """What the new master still holds of the queue: the stream and its pending
    entries, and the delayed set and the dead letters (a task in either is not lost,
    but the drain does not wait for it)."""
    client = group.master().client()
    try:
        out = {"stream": 0, "pending": 0,
               "delayed": client.zcard("asyncq:{work}:delayed"),
               "dead": client.xlen("asyncq:{work}:dead")}
        if client.exists("asyncq:{work}:stream"):
            out["stream"] = client.xlen("asyncq:{work}:stream")
            out["pending"] = client.xpending("asyncq:{work}:stream", "asyncq")["pending"]
        return out
    finally:
        client.close()


def log_tail(workdir: Path, name: str, lines: int = 40) -> str:
    """The last lines of a worker's log (kept in the failure message: pytest keeps a
    few workdirs only)."""
    path = workdir / f"{name}.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() \
        else "(no log)"


@pytest.mark.parametrize("kind", ["kill", "lag-kill", "partition-kill"])
@pytest.mark.parametrize("mode", ["async", "wait_replicas=1"])
async def test_f9_sentinel_failover(
    group: SentinelGroup,
    fault_env: tuple[Path, Ledger],
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    kind: str,
) -> None:
    workdir, ledger = fault_env
    n = int(os.environ.get("F9_TASKS", "20000"))
    url = group.url(query="" if mode == "async" else mode)
    mod = load_tasks(workdir, url, ledger, monkeypatch)
    # tasks of 20 ms on -c 20 (1,000/s at most) behind a producer of 1,600/s: a backlog
    # builds up, as in the queues that a failover can take writes from
    sup = start_worker(
        workdir, url, ledger, "-c", "20", "--prefetch", "20", "--lease", "2", name="f9"
    )
    timings: dict[str, float] = {}
    started = time.time()
    try:
        async with mod.app:
            window = 12.0  # the producer enqueues throughout, the fault 3 s into the drain
            producer = asyncio.create_task(produce(mod, ledger, n, 200, window / (n / 200), TASK_S))
            await first_completion(ledger, 60)  # the worker is up (it starts in 1-4 s)
            await fault(group, kind, 3.0, timings)
            retries = await producer
            acked = set(ledger.counts("enq"))
            await drain(ledger, acked, 180)
            elapsed = time.time() - started
            left = leftover(group)
    finally:
        stop(sup)
    after = completions_after(ledger, timings["killed_at"])
    switches = group.switches()
    figures = {
        "mode": mode,
        "fault": kind,
        "failovers": len(switches),
        "tasks": n,
        **tally(ledger, acked),
        "completed_after_the_kill": len(after),
        "producer_batch_retries": retries,
        "seconds": round(elapsed, 1),
        "leftover": left,
        **{k: v for k, v in timings.items() if k != "killed_at"},
        "kill_at_s": round(timings["killed_at"] - started, 2),
    }
    record(f"F9_sentinel_{kind}_{mode.replace('=', '')}", figures)
    assert len(switches) == 1, f"not one failover but {switches} (old, new master)"
    assert len(acked) == n  # every batch was acknowledged in the end (after retries)
    assert after, "the worker did not complete anything after the failover"
    if mode != "async":
        assert figures["lost"] == 0
