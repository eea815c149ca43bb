"""The Prometheus endpoint after a known mix of outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from asyncq import App, Retry, TaskFailed, Worker

prometheus_client = pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from asyncq.middleware.prometheus import Metrics  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.mark.parametrize("broker", ["memory", "redis"])
async def test_counts_match_after_a_known_mix(broker: str, unique: Callable[[str], str],
                                              request: pytest.FixtureRequest) -> None:
    url = (f"memory://{unique('m')}" if broker == "memory"
           else request.getfixturevalue("redis_url"))
    port = free_port()
    metrics = Metrics(port=port, addr="127.0.0.1", depth_ttl=0.0)
    queue = unique("mq")
    app = App(unique("metrics"), broker=url, middleware=[metrics])
    tries: dict[str, int] = {}

    @app.task(name="ok", queue=queue)
    async def ok() -> None:
        return None

    @app.task(name="bad", queue=queue)
    async def bad() -> None:
        raise ValueError("no")

    @app.task(name="flaky", queue=queue, retries=1, retry_backoff=0.01, retry_jitter=False)
    async def flaky() -> None:
        tries["n"] = tries.get("n", 0) + 1
        if tries["n"] == 1:
            raise Retry(0.01)

    async with app:
        async with Worker(app, concurrency=4) as worker:
            handles = [await ok.enqueue() for _ in range(3)]
            handles += [await bad.enqueue() for _ in range(2)]
            handles.append(await flaky.enqueue())
            for handle in handles:
                with contextlib.suppress(TaskFailed):
                    await handle.get(timeout=10)
            await worker.join(10)
            await asyncio.sleep(0.1)
            samples = await asyncio.to_thread(scrape, port)
        if broker == "redis":
            await app.broker.delete_queue(queue)
    if samples:
        def count(task: str, outcome: str) -> float:
            return samples.get(("asyncq_tasks_total", (("outcome", outcome), ("queue", queue),
                                                       ("task", task))), 0.0)

        assert count("ok", "succeeded") == 3
        assert count("bad", "failed") == 2
        assert count("flaky", "retried") == 1
        assert count("flaky", "succeeded") == 1
        assert samples[("asyncq_task_retries_total", (("queue", queue), ("task", "flaky")))] == 1
        assert samples[("asyncq_task_run_seconds_count",
                        (("queue", queue), ("task", "ok")))] == 3
        assert samples[("asyncq_task_queue_wait_seconds_count",
                        (("queue", queue), ("task", "bad")))] == 2
        assert samples[("asyncq_tasks_enqueued_total", (("queue", queue), ("task", "ok")))] == 3
        assert samples[("asyncq_tasks_in_flight", ())] == 0
        assert ("asyncq_prefetch_buffer", ()) in samples
        assert samples[("asyncq_event_loop_lag_seconds", ())] >= 0
        assert samples[("asyncq_queue_depth", (("queue", queue), ("state", "waiting")))] == 0


async def test_observed_counts_and_events_match(unique: Callable[[str], str]) -> None:
    from prometheus_client import generate_latest

    from asyncq.events import bus_for
    from asyncq.events.monitor import Events
    from asyncq.events.observed import Observed

    metrics = Metrics()
    app = App(unique("obs"), broker=f"memory://{unique('m')}",
              middleware=[Observed(Events(0.2), metrics)])

    @app.task(name="ok", queue="q")
    async def ok() -> None:
        return None

    @app.task(name="bad", queue="q")
    async def bad() -> None:
        raise ValueError("no")

    async with app, Worker(app, concurrency=2) as worker:
        sent = [await ok.enqueue(), await ok.enqueue(), await bad.enqueue()]
        await worker.join(10)
        await asyncio.sleep(0.4)  # one flush of events
        events = await bus_for(app).recent(50)
    text = generate_latest(metrics.registry).decode()
    assert 'asyncq_tasks_total{outcome="succeeded",queue="q",task="ok"} 2.0' in text
    assert 'asyncq_tasks_total{outcome="failed",queue="q",task="bad"} 1.0' in text
    assert 'asyncq_task_queue_wait_seconds_count{queue="q",task="ok"} 2.0' in text
    outcomes = {e["id"]: e for e in events if e["type"].startswith("task-")}
    assert {outcomes[h.id]["type"] for h in sent} == {"task-succeeded", "task-failed"}
    assert all(outcomes[h.id]["runtime"] >= 0 for h in sent)
    assert "ValueError: no" in outcomes[sent[2].id]["error"]


async def test_observed_retries_and_skips_reach_events_and_metrics(
        unique: Callable[[str], str]) -> None:
    from prometheus_client import generate_latest

    from asyncq.events import bus_for
    from asyncq.events.monitor import Events
    from asyncq.events.observed import observed

    metrics = Metrics()
    app = App(unique("obs"), broker=f"memory://{unique('m')}",
              middleware=[observed(Events(0.2), metrics)])
    tries: list[int] = []

    @app.task(name="flaky", queue="q", retries=1, retry_backoff=0.01, retry_jitter=False)
    async def flaky() -> None:
        tries.append(1)
        if len(tries) == 1:
            raise Retry(0.01)

    async with app:
        revoked = await flaky.enqueue()
        await revoked.revoke()
        expired = await flaky.options(expires=0.01).enqueue()
        await asyncio.sleep(0.05)
        retried = await flaky.enqueue()
        async with Worker(app, concurrency=1) as worker:
            await retried.get(timeout=10)
            await worker.join(10)
            await asyncio.sleep(0.4)  # one flush of events
            events = await bus_for(app).recent(50)
    text = generate_latest(metrics.registry).decode()
    for outcome, count in (("succeeded", 1), ("retried", 1), ("revoked", 1),
                           ("cancelled", 1)):
        assert f'asyncq_tasks_total{{outcome="{outcome}",queue="q",task="flaky"}} ' \
            f'{count}.0' in text
    assert 'asyncq_task_retries_total{queue="q",task="flaky"} 1.0' in text
    assert 'asyncq_task_run_seconds_count{queue="q",task="flaky"} 2.0' in text  # ran twice
    by_id: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_id.setdefault(str(event.get("id")), []).append(event)
    assert [e["type"] for e in by_id[retried.id]] == ["task-retried", "task-succeeded"]
    assert by_id[retried.id][0]["delay"] == pytest.approx(0.01)
    (skip,) = by_id[revoked.id]
    assert skip["type"] == "task-revoked"
    assert skip.get("runtime") is None  # it did not run
    assert by_id[expired.id][0]["type"] == "task-cancelled"
    assert all(abs(e["ts"] - time.time()) < 30 for e in events)
