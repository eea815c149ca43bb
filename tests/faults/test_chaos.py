"""F1 chaos, F2 poison, F3 long tasks. Run: ./scripts/test tests/faults -m faults"""

from __future__ import annotations

import asyncio
import importlib
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aio_pika
import pytest

import asyncq
from asyncq.brokers import WORKER_GROUP
from tests.faults.conftest import (
    Ledger,
    RabbitNode,
    RedisServer,
    Target,
    enqueue_numbered,
    record,
    start_worker,
    stop,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

CONCURRENCY, PREFETCH = 50, 50


def load_tasks(workdir: Path, broker: str, ledger: Ledger,
               monkeypatch: pytest.MonkeyPatch, queue: str = "work") -> Any:
    monkeypatch.setenv("F_BROKER", broker)
    monkeypatch.setenv("F_QUEUE", queue)
    monkeypatch.setenv("F_LEDGER", str(ledger.base))
    monkeypatch.syspath_prepend(str(workdir))
    sys.modules.pop("ftasks", None)
    return importlib.import_module("ftasks")


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


async def enqueue_all(mod: Any, ledger: Ledger, n: int, batch: int, pause: float) -> int:
    """No-op tasks with fixed ids (see :func:`enqueue_numbered`)."""
    return await enqueue_numbered(
        mod.app, lambda ns: [mod.work.options(task_id=f"t{i}").s(i) for i in ns],
        ledger, n, batch, pause)


#: per burst of :func:`enqueue_bursts` (first attempt): batches awaiting confirms when its
#: last caller ran
EARLY: list[int] = []


async def enqueue_bursts(mod: Any, ledger: Ledger, n: int, burst: int, pause: float) -> int:
    """Tasks 0 .. n-1 as ``burst`` concurrent ``enqueue`` calls at a time (one ``gather``:
    the RabbitMQ publisher writes a burst's full batches while its callers still run),
    ``pause`` seconds apart; a call the broker refuses is sent again with the same id
    until it is acknowledged, and noted in the ledger only then. Returns the retries."""
    retries = 0

    async def written_meanwhile() -> int:  # after every caller of its gather ran
        return int(mod.app.broker.publisher._window.count)

    for start in range(0, n, burst):
        pending = list(range(start, min(n, start + burst)))
        first = True
        while pending:
            *outcomes, meanwhile = await asyncio.gather(
                *(mod.work.options(task_id=f"t{i}").enqueue(i) for i in pending),
                written_meanwhile(), return_exceptions=True)
            if first:  # (a retry of a few refused calls is no burst)
                EARLY.append(meanwhile)
                first = False
            for out in outcomes:  # only the broker's refusals are retried
                if isinstance(out, BaseException) and not isinstance(out, asyncq.AsyncqError):
                    raise out
            refused = [i for i, out in zip(pending, outcomes, strict=True)
                       if isinstance(out, asyncq.AsyncqError)]
            ledger.producer_note(sorted(set(pending) - set(refused)))
            if refused:
                retries += 1
                await asyncio.sleep(0.2)
            pending = refused
        await asyncio.sleep(pause)
    return retries


async def wait_done(ledger: Ledger, wanted: set[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if wanted <= set(ledger.counts("done")):
            return
        await asyncio.sleep(0.5)
    missing = wanted - set(ledger.counts("done"))
    raise AssertionError(f"{len(missing)} tasks never completed, e.g. {sorted(missing)[:10]}")


async def first_completion(ledger: Ledger, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ledger.counts("done") and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)


def recovery_times(ledger: Ledger, faults: list[tuple[float, str]]) -> list[dict[str, Any]]:
    """Seconds from each fault until completions are back at half the pre-fault rate."""
    done = sorted(ts for e, _, _, ts in ledger.rows() if e == "done")
    out = []
    for at, kind in faults:
        before = sum(1 for ts in done if at - 2 <= ts < at) / 2
        recovered = None
        t = at
        while before and t < at + 120:
            if sum(1 for ts in done if t <= ts < t + 0.5) * 2 >= before / 2:
                recovered = round(t - at, 2)
                break
            t += 0.1
        out.append({"fault": kind, "at": round(at, 2), "pre_rate_per_s": before,
                    "recovery_s": recovered})
    return out


def leftovers(server: RedisServer) -> dict[str, int]:
    client = server.client()
    try:
        pending = client.xpending("asyncq:{work}:stream", WORKER_GROUP)
        return {"stream": client.xlen("asyncq:{work}:stream"), "pending": pending["pending"],
                "delayed": client.zcard("asyncq:{work}:delayed")}
    finally:
        client.close()


async def chaos(sup: Any, server: RedisServer | RabbitNode | None, rng: random.Random,
                kills: int, window: float, faults: list[tuple[float, str]],
                back: list[float] | None = None) -> None:
    """Kill worker children at seeded moments; crash the broker once when it is ours
    (restarted after 2 s; ``back`` gets the time it answers again)."""
    plan = [(rng.uniform(0.5, window), "kill worker") for _ in range(kills)]
    if server is not None:
        plan.append((rng.uniform(1.0, window), "broker crash"))
    plan.sort()
    started = time.monotonic()
    for at, kind in plan:
        await asyncio.sleep(max(0.0, at - (time.monotonic() - started)))
        faults.append((time.time(), kind))
        if kind == "kill worker":
            victims = children(sup.pid)
            if victims:
                os.kill(rng.choice(victims), signal.SIGKILL)
        elif server is not None:
            server.crash()
            await asyncio.sleep(2.0)
            await asyncio.to_thread(server.start)  # a RabbitMQ node takes seconds
            if back is not None:
                back.append(time.time())


async def test_f1_chaos(redis_server: RedisServer, fault_env: tuple[Path, Ledger],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    workdir, ledger = fault_env
    n = int(os.environ.get("F1_TASKS", "50000"))
    rng = random.Random(int(os.environ.get("F1_SEED", "20261124")))
    mod = load_tasks(workdir, redis_server.url, ledger, monkeypatch)
    sup = start_worker(workdir, redis_server.url, ledger, "-w", "2", "-c", str(CONCURRENCY),
                       "--prefetch", str(PREFETCH), "--lease", "2", name="f1")
    faults: list[tuple[float, str]] = []
    started = time.time()
    try:
        async with mod.app:
            window = max(6.0, n / 6000)  # the producer enqueues throughout the chaos
            producer = asyncio.create_task(enqueue_all(mod, ledger, n, 500, window / (n / 500)))
            await chaos(sup, redis_server, rng, 5, window, faults)
            enqueue_retries = await producer
            await wait_done(ledger, set(range(n)), 300)
            elapsed = time.time() - started
            sample = rng.sample(range(n), 200)
            results = [await mod.app.result(f"t{i}").get(timeout=30) for i in sample]
            assert results == [2 * i for i in sample]
            await asyncio.sleep(1.0)  # the last acks
            left = leftovers(redis_server)
    finally:
        stop(sup)
    done, started_counts = ledger.counts("done"), ledger.counts("start")
    duplicates = sum(c - 1 for c in done.values() if c > 1)
    kills = sum(1 for _, kind in faults if kind == "kill worker")
    bound = (kills + 2) * (CONCURRENCY + PREFETCH) + 500  # + in flight at the crash + a batch
    figures = {"tasks_enqueued": len(ledger.counts("enq")), "completed": len(done),
               "lost": n - len(set(done) & set(range(n))), "duplicate_executions": duplicates,
               "duplicate_bound": bound, "starts_beyond_first": sum(started_counts.values()) - n,
               "worker_kills": kills, "broker_crashes": 1,
               "producer_batch_retries": enqueue_retries, "seconds": round(elapsed, 1),
               "leftover": left, "recovery": recovery_times(ledger, faults),
               "first_completion_s": round(min(ts for e, _, _, ts in ledger.rows()
                                               if e == "done") - started, 2),
               "faults_at_s": [(round(at - started, 2), kind) for at, kind in faults]}
    record("F1_chaos_redis", figures)
    assert figures["lost"] == 0
    assert duplicates <= bound
    assert left == {"stream": 0, "pending": 0, "delayed": 0}


async def queued_ids(url: str, queue: str) -> set[int]:
    """The task numbers of the messages still in ``queue`` (read, then all returned)."""
    found = set()
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        source = await channel.get_queue(queue)
        while (message := await source.get(no_ack=False, fail=False)) is not None:
            found.add(int((message.correlation_id or "t-1")[1:]))
    finally:
        await connection.close()  # unacked: back to the queue
    return found


async def wait_empty(node: RabbitNode, queue: str, timeout: float) -> None:
    """Until ``queue`` holds nothing, ready or unacked (duplicates may still be queued
    when every task has run); gives up quietly, the leftover check then fails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum((await asyncio.to_thread(node.queues)).get(queue, (0, 0))) == 0:
            return
        await asyncio.sleep(1.0)


@pytest.mark.parametrize(("queue_type", "producer"), [
    ("classic", "batches"),
    ("quorum", "batches"),
    ("classic", "bursts"),
])
async def test_f1_chaos_rabbitmq(queue_type: str, producer: str, rabbit_node: RabbitNode,
                                 redis_server: RedisServer, fault_env: tuple[Path, Ledger],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """F1 on a RabbitMQ node of the test's own: 5 worker kills and one node crash
    (SIGKILL of the whole node, started again on the same ports and data directory)
    while the producer enqueues (``enqueue_many`` of 500, or bursts of 2,000 concurrent
    ``enqueue`` calls, whose batches go out while the burst runs); results in a
    throwaway Redis."""
    workdir, ledger = fault_env
    n = int(os.environ.get("F1_AMQP_TASKS", "50000"))
    drain = float(os.environ.get("F1_AMQP_DRAIN_S", "240"))
    rng = random.Random(int(os.environ.get("F1_SEED", "20261124")))
    queue = "f1"
    EARLY.clear()
    url = f"{rabbit_node.url}?queue_type={queue_type}"
    monkeypatch.setenv("F_BACKEND", redis_server.url)
    mod = load_tasks(workdir, url, ledger, monkeypatch, queue)
    sup = start_worker(workdir, url, ledger, "-w", "2", "-c", str(CONCURRENCY),
                       "--prefetch", str(PREFETCH), name="f1-amqp", queue=queue)
    faults: list[tuple[float, str]] = []
    back: list[float] = []
    started = time.time()
    unfinished: str | None = None
    letters: list[Any] = []
    results: list[int] = []
    try:
        async with mod.app:
            window = max(6.0, n / 3000)  # the producer enqueues throughout the chaos
            batch = 500 if producer == "batches" else 2000
            send = enqueue_all if producer == "batches" else enqueue_bursts
            sending = asyncio.create_task(send(mod, ledger, n, batch, window / (n / batch)))
            await first_completion(ledger, 60)  # faults hit running workers, not starting ones
            await chaos(sup, rabbit_node, rng, 5, window, faults, back)
            enqueue_retries = await sending
            try:
                await wait_done(ledger, set(range(n)), drain)
            except AssertionError as exc:
                unfinished = str(exc)
            elapsed = time.time() - started
            if unfinished is None:
                sample = rng.sample(range(n), 200)
                results = [await mod.app.result(f"t{i}").get(timeout=60) for i in sample]
                assert results == [2 * i for i in sample]
                await wait_empty(rabbit_node, queue, 60)  # duplicates queued behind
            letters = await mod.app.broker.dead_letters(queue)
    finally:
        stop(sup)
    # every task queue empty; the revoke stream (asyncq.control.<app>.revoked) keeps its
    # revocations and start markers for the revoke window by design (asyncq/control)
    left = {name: ready + unacked for name, (ready, unacked) in rabbit_node.queues().items()
            if not name.startswith("asyncq.control.")}
    queued = await queued_ids(rabbit_node.url, queue) if left.get(queue) else set()
    done, started_counts = ledger.counts("done"), ledger.counts("start")
    duplicates = sum(c - 1 for c in done.values() if c > 1)
    kills = sum(1 for _, kind in faults if kind == "kill worker")
    # a killed worker's unacked messages (the consumer's prefetch is concurrency +
    # prefetch; x2 for the classic-queue recount republish), both workers' at the node
    # crash, and one producer batch (or burst) retried with the same ids
    bound = (2 * kills + 2) * (CONCURRENCY + PREFETCH) + batch
    crash_at = next(at for at, kind in faults if kind == "broker crash")
    after = [ts for e, _, _, ts in ledger.rows() if e == "done" and ts > back[0]]
    figures = {"queue_type": queue_type, "producer": producer, "tasks": n,
               "tasks_enqueued": len(ledger.counts("enq")), "completed": len(done),
               "lost": len(set(range(n)) - set(done) - queued),
               "not_completed": len(set(range(n)) - set(done)),
               "duplicate_executions": duplicates, "duplicate_bound": bound,
               "starts_beyond_first": sum(started_counts.values()) - len(started_counts),
               "worker_kills": kills, "broker_crashes": 1,
               "broker_outage_s": round(back[0] - crash_at, 2),
               "first_completion_after_node_up_s": round(min(after) - back[0], 2),
               "producer_batch_retries": enqueue_retries, "seconds": round(elapsed, 1),
               "bursts_written_early": sum(1 for count in EARLY if count),
               "bursts": len(EARLY), "drain_deadline_s": drain,
               "dead_letters": len(letters), "leftover": left,
               "recovery": recovery_times(ledger, faults)}
    record(f"F1_chaos_rabbitmq_{queue_type}" + ("" if producer == "batches" else "_bursts"),
           figures)
    assert unfinished is None, unfinished
    assert figures["lost"] == 0
    assert duplicates <= bound
    assert producer == "batches" or figures["bursts_written_early"] >= len(EARLY) // 2
    assert not letters
    assert not any(left.values()), left


async def dead_letters_soon(app: asyncq.App, queue: str, timeout: float = 10.0) -> list[Any]:
    """The queue's dead letters, once there are any (or none after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        letters = await app.broker.dead_letters(queue)
        if letters or time.monotonic() > deadline:
            return letters
        await asyncio.sleep(0.1)


async def test_f2_poison(target: Target, fault_env: tuple[Path, Ledger],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    workdir, ledger = fault_env
    mod = load_tasks(workdir, target.url, ledger, monkeypatch, target.queue)
    args = ("-c", "20", "--lease", "1", "--max-deliveries", "3")

    def start() -> Any:
        return start_worker(workdir, target.url, ledger, *args, name="f2", queue=target.queue)

    procs = [start()]

    async def restart_when_dead() -> None:  # what systemd or a supervisor would do
        while True:
            await asyncio.sleep(0.2)
            if procs[-1].poll() is not None:
                procs.append(start())

    keeper = asyncio.create_task(restart_when_dead())
    try:
        async with mod.app:
            await mod.app.enqueue_many([mod.work.s(i) for i in range(250)])
            bad = await mod.poison.enqueue()
            await mod.app.enqueue_many([mod.work.s(i) for i in range(250, 500)])
            await wait_done(ledger, set(range(500)), 180)
            with pytest.raises(asyncq.TaskRejected, match="delivered 4 times"):
                await bad.get(timeout=60)
            # the handle's record is stored first, the dead letter right after it
            letters = await dead_letters_soon(mod.app, target.queue)
    finally:
        keeper.cancel()
        for proc in procs:
            stop(proc)
    assert [letter.task_id for letter in letters] == [bad.id]
    poison_runs = ledger.counts("poison")[0]
    duplicates = sum(c - 1 for c in ledger.counts("done").values() if c > 1)
    record(f"F2_poison_{target.kind}", {
        "normal_tasks": 500, "completed": len(ledger.counts("done")),
        "poison_deliveries_run": poison_runs, "dead_letter_reason": letters[0].reason,
        "duplicate_executions": duplicates})
    assert poison_runs == 3
    assert duplicates <= 3 * 40


async def test_f3_long_tasks_run_exactly_once(target: Target, fault_env: tuple[Path, Ledger],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    workdir, ledger = fault_env
    mod = load_tasks(workdir, target.url, ledger, monkeypatch, target.queue)
    workers = [start_worker(workdir, target.url, ledger, "-c", "10", "--lease", "1",
                            name=f"f3-{k}", queue=target.queue) for k in range(2)]
    try:
        async with mod.app:
            handles = [await mod.work.enqueue(i, 3.0) for i in range(20)]
            assert [await h.get(timeout=120) for h in handles] == [2 * i for i in range(20)]
    finally:
        for worker in workers:
            stop(worker)
    starts = ledger.counts("start")
    record(f"F3_long_tasks_{target.kind}", {"tasks": 20, "lease_s": 1, "task_s": 3,
                                   "max_runs_per_task": max(starts.values())})
    assert all(starts[i] == 1 for i in range(20))
