"""Sync code: the blocking client (from a plain script and from threads), and one App
used from several consecutive ``asyncio.run`` calls."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import textwrap
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import asyncq

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = '''
import sys, time
from asyncq import chain
from shop_tasks import app, add

with app.blocking() as client:          # a plain synchronous script
    h = client.enqueue(add, 4, 4)
    while not h.ready():
        time.sleep(0.05)
    print("sum", h.get(timeout=10))
    c = client.enqueue(chain(add.s(1, 2), add.s(3)))
    print("chain", c.get(timeout=10), client.result(c.id).get(timeout=10))
'''

TASKS = '''
import os
from asyncq import App
app = App("blk", broker=os.environ["T_BROKER"], backend=os.environ.get("T_BACKEND") or None,
          default_queue=os.environ["T_QUEUE"])

@app.task(name="blk.add")
async def add(x: int, y: int) -> int:
    return x + y
'''


@pytest.fixture(params=["redis", "amqp"])
def env(request: pytest.FixtureRequest, unique: Callable[[str], str]) -> dict[str, str]:
    redis_url = str(request.getfixturevalue("redis_url"))
    queue = unique("blk")
    if request.param == "redis":
        request.getfixturevalue("redis_cleanup")(queue)
        return {"T_BROKER": redis_url, "T_BACKEND": "", "T_QUEUE": queue}
    return {"T_BROKER": str(request.getfixturevalue("amqp_url")), "T_BACKEND": redis_url,
            "T_QUEUE": queue}


def _app(env: dict[str, str], name: str) -> asyncq.App:
    return asyncq.App(name, broker=env["T_BROKER"], backend=env["T_BACKEND"] or None,
                      default_queue=env["T_QUEUE"])


def test_blocking_client_from_a_plain_script(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "shop_tasks.py").write_text(textwrap.dedent(TASKS))
    (tmp_path / "script.py").write_text(textwrap.dedent(SCRIPT))
    worker = subprocess.Popen(
        [sys.executable, "-m", "asyncq", "worker", "shop_tasks:app", "-Q", env["T_QUEUE"]],
        cwd=tmp_path, env={**os.environ, **env, "PYTHONPATH": f"{ROOT}:{tmp_path}"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        done = subprocess.run([sys.executable, "-X", "dev", "script.py"], cwd=tmp_path,
                              env={**os.environ, **env, "PYTHONPATH": f"{ROOT}:{tmp_path}"},
                              capture_output=True, text=True, timeout=60, check=False)
    finally:
        worker.kill()
        worker.wait(10)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["sum 8", "chain 6 6"]
    assert "Error" not in done.stderr, done.stderr
    assert "Warning" not in done.stderr, done.stderr


def test_blocking_client_shared_by_threads(env: dict[str, str],
                                           unique: Callable[[str], str]) -> None:
    app = _app(env, unique("blk"))

    @app.task(name="blk.mul")
    async def mul(x: int, y: int) -> int:
        await asyncio.sleep(0.01)
        return x * y

    results: dict[int, int] = {}
    errors: list[BaseException] = []
    with app.blocking() as client:
        with client.worker(concurrency=20):

            def use(n: int) -> None:
                try:
                    for k in range(5):
                        results[n * 10 + k] = client.enqueue(mul, n, k).get(timeout=20)
                except BaseException as exc:  # reported below
                    errors.append(exc)

            threads = [threading.Thread(target=use, args=(n,)) for n in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        assert app._connected  # the worker stopping did not close the client's App
        client.run(app.broker.delete_queue(env["T_QUEUE"]))
    assert not errors
    assert results == {n * 10 + k: n * k for n in range(8) for k in range(5)}
    with pytest.raises(asyncq.ConfigurationError, match="blocking client is closed"):
        client.enqueue(mul, 1, 1)


def test_one_app_across_five_asyncio_runs(env: dict[str, str],
                                          unique: Callable[[str], str]) -> None:
    app = _app(env, unique("runs"))

    @app.task(name="runs.add")
    async def add(x: int, y: int) -> int:
        return x + y

    handles = []
    for i in range(5):  # the plain pattern a sync port writes: asyncio.run per call
        handle = asyncio.run(add.enqueue(i, i))
        handles.append(handle)
        assert asyncio.run(handle.state()) is asyncq.TaskState.PENDING

    async def work() -> list[int]:
        async with app, asyncq.Worker(app, concurrency=5):
            return [await h.get(timeout=20) for h in handles]  # handles of closed loops

    assert asyncio.run(work()) == [0, 2, 4, 6, 8]

    async def cleanup() -> None:
        async with app:
            await app.broker.delete_queue(env["T_QUEUE"])

    asyncio.run(cleanup())


def test_an_app_that_ran_and_was_dropped_is_freed_with_its_loop(
        env: dict[str, str], unique: Callable[[str], str]) -> None:
    """Nothing of asyncq's keeps an App, or the event loop it last ran on, alive once
    its user lets go of it (a process that makes an App per test or per job)."""
    kept: list[weakref.ref[Any]] = []

    def use_one() -> None:
        app = _app(env, unique("gone"))

        @app.task(name="gone.add")
        async def add(x: int, y: int) -> int:
            return x + y

        async def run() -> None:
            kept.append(weakref.ref(asyncio.get_running_loop()))
            async with app:
                async with asyncq.Worker(app, concurrency=2):
                    assert await (await add.enqueue(1, 2)).get(timeout=20) == 3
                    flow = await asyncq.chain(add.s(1, 2), add.s(3)).enqueue()  # canvas state
                    assert await flow.get(timeout=20) == 6
                await app.broker.delete_queue(env["T_QUEUE"])

        asyncio.run(run())
        kept.extend([weakref.ref(app), weakref.ref(app.broker), weakref.ref(app.backend)])

    use_one()
    gc.collect()
    assert [ref() for ref in kept] == [None] * 4  # its loop, App, broker and backend


def test_an_app_open_on_a_running_loop_refuses_another(redis_url: str) -> None:
    """Its connections belong to one loop (memory:// has none: it serves every loop)."""
    app = asyncq.App("two-loops", broker=redis_url)
    with app.blocking(), pytest.raises(asyncq.ConfigurationError, match="still open"):
        asyncio.run(app.connect())


async def test_workflow_member_handles_keep_their_app(
        redis_url: str, unique: Callable[[str], str],
        redis_cleanup: Callable[[str], None]) -> None:
    """A group's member handles, a chain's steps and its tail hold the App, as
    enqueue's handles do: an App that nothing else holds is closed when collected, and
    with it the backend they wait on."""
    queue = unique("kept")
    redis_cleanup(queue)

    def make() -> tuple[asyncq.App, Any]:
        app = asyncq.App(unique("kept"), broker=redis_url, backend=redis_url,
                         default_queue=queue)

        @app.task(name="kept.slow")
        async def slow(x: float) -> float:
            await asyncio.sleep(x)
            return x
        return app, slow

    async def produce() -> list[asyncq.TaskResult[Any]]:
        app, slow = make()  # an App per job, dropped when it returns
        await app.connect()
        group = await asyncq.group(slow.s(0.5), slow.s(0.8)).enqueue()
        flow = await asyncq.chain(slow.s(0.1), slow.si(0.2)).enqueue()
        return [*await group.results(), *await flow.steps(), await flow.tail()]

    worker_app, _ = make()
    async with worker_app, asyncq.Worker(worker_app, concurrency=4):
        handles = await produce()
        waiting = [asyncio.ensure_future(h.get(timeout=20)) for h in handles]
        await asyncio.sleep(0.1)
        gc.collect()  # the producing App, if only the handles' backend held it
        assert await asyncio.gather(*waiting) == [0.5, 0.8, 0.1, 0.2, 0.2]
