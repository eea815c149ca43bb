"""chain, group, chord and link on memory, Redis and RabbitMQ (with Redis results)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import asyncq
from asyncq import TaskFailed, chain, chord, group
from asyncq.canvas._spec import derive_id

MakeApp = Callable[..., asyncq.App]


def _tasks(app: asyncq.App) -> dict[str, Any]:
    seen: list[Any] = []

    @app.task(name="wf.add")
    async def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="wf.tsum")
    async def tsum(xs: list[int]) -> int:
        return sum(xs)

    @app.task(name="wf.boom")
    async def boom(x: int) -> int:
        raise ValueError(f"boom {x}")

    @app.task(name="wf.report")
    async def report(task_id: str, tag: str = "") -> str:
        seen.append((task_id, tag))
        return task_id

    @app.task(name="wf.fetch")
    async def fetch(url: str) -> str:
        return f"<html>{url}</html>"

    @app.task(name="wf.parse")
    async def parse(page: str) -> int:
        return len(page)

    @app.task(name="wf.store")
    async def store(info: int, url: str) -> str:
        return f"{url}: {info}"

    return {"add": add, "tsum": tsum, "boom": boom, "report": report, "fetch": fetch,
            "parse": parse, "store": store, "seen": seen}


async def test_chain_pipes_each_result_into_the_next_step(make_app: MakeApp) -> None:
    app = make_app()
    t = _tasks(app)
    async with app, asyncq.Worker(app, concurrency=8):
        url = "https://example.test/a"
        h = await (t["fetch"].s(url) | t["parse"].s() | t["store"].s(url)).enqueue()
        assert await h.get(timeout=20) == f"{url}: {len(f'<html>{url}</html>')}"
        h = await chain(t["add"].s(1, 2), t["add"].s(3), t["add"].s(4)).enqueue()
        assert await h == 10
        steps = await h.steps()
        assert [await s.get(timeout=5) for s in steps] == [3, 6, 10]
        # an immutable step ignores the previous result
        h = await (t["add"].s(1, 1) | t["add"].si(5, 5)).enqueue()
        assert await h.get(timeout=20) == 10


async def test_group_gives_results_in_order_and_chord_calls_back_once(make_app: MakeApp
                                                                      ) -> None:
    app = make_app()
    t = _tasks(app)
    async with app, asyncq.Worker(app, concurrency=50):
        g = await group(t["add"].s(i, i) for i in range(100)).enqueue()
        assert await g.get(timeout=30) == [2 * i for i in range(100)]
        assert await g.state() is asyncq.TaskState.SUCCESS
        assert await g.completed_count() == 100
        c = await chord(group(t["add"].s(i, i) for i in range(100)), t["tsum"].s()).enqueue()
        assert await c.get(timeout=30) == sum(2 * i for i in range(100))
        # group | signature is a chord too, and a chord's callback may be a chain
        c2 = await (group(t["add"].s(1, 1), t["add"].s(2, 2)) | (t["tsum"].s() | t["add"].s(100))
                    ).enqueue()
        assert await c2.get(timeout=30) == 106


async def test_workflow_handles_rebuild_from_their_id_alone(make_app: MakeApp) -> None:
    app = make_app()
    t = _tasks(app)
    other = make_app(name=f"{app.name}-other")  # another "process": its own App object
    async with app, asyncq.Worker(app, concurrency=20):
        h = await chain(t["add"].s(1, 2), t["add"].s(3)).enqueue()
        g = await group(t["add"].s(i, 1) for i in range(5)).enqueue()
        c = await chord([t["add"].s(i, 1) for i in range(5)], t["tsum"].s()).enqueue()
        await asyncio.gather(h.get(timeout=20), g.get(timeout=20), c.get(timeout=20))
    async with other:
        assert isinstance(other.result(h.id), asyncq.ChainResult)
        assert await other.result(h.id).get(timeout=5) == 6
        assert await other.result(g.id).get(timeout=5) == [1, 2, 3, 4, 5]
        assert await other.result(c.id).get(timeout=5) == 15
        assert await (await other.result(c.id).group()).get(timeout=5) == [1, 2, 3, 4, 5]  # type: ignore[attr-defined]
        with pytest.raises(asyncq.ResultUnavailable, match="never sent, or expired"):
            await other.result("chain-0123456789abcdef").get(timeout=5)


async def test_failed_chain_step_stops_the_chain_and_names_the_step(make_app: MakeApp) -> None:
    app = make_app()
    t = _tasks(app)
    async with app, asyncq.Worker(app, concurrency=8):
        h = await chain(t["add"].s(1, 2), t["boom"].s(), t["add"].s(4)).enqueue()
        with pytest.raises(TaskFailed, match=r"step 2 of 3 \(wf\.boom\[") as err:
            await h.get(timeout=20)
        assert err.value.matches(ValueError)
        assert err.value.exc_message.endswith("boom 3")
        steps = await h.steps()
        assert await steps[0].get(timeout=5) == 3
        assert await steps[2].state() is asyncq.TaskState.FAILURE  # never ran
        failure = await h.get(timeout=5, propagate=False)
        assert isinstance(failure, TaskFailed)


async def test_link_and_link_error(make_app: MakeApp) -> None:
    app = make_app()
    t = _tasks(app)
    async with app, asyncq.Worker(app, concurrency=8):
        url = "https://example.test/b"
        h = await t["fetch"].options(link=[t["parse"].s(), t["store"].s(url)],
                                     link_error=[t["report"].s()]).enqueue(url)
        page = await h.get(timeout=20)
        assert await app.result(derive_id(h.id, "link0")).get(timeout=20) == len(page)
        assert await app.result(derive_id(h.id, "link1")).get(timeout=20) == f"{url}: {page}"
        bad = await t["boom"].options(link_error=t["report"].s("errback")).enqueue(7)
        assert await app.result(derive_id(bad.id, "err0")).get(timeout=20) == bad.id
        assert t["seen"] == [(bad.id, "errback")]
        failure = await app.result(bad.id).get(timeout=5, propagate=False)
        assert isinstance(failure, TaskFailed)
        assert failure.matches("ValueError")


async def test_chord_with_a_failed_member_calls_its_errback_and_raises(make_app: MakeApp
                                                                       ) -> None:
    app = make_app()
    t = _tasks(app)
    async with app, asyncq.Worker(app, concurrency=8):
        c = await chord([t["add"].s(1, 1), t["boom"].s(2), t["add"].s(3, 3)], t["tsum"].s()
                        ).on_error(t["report"].s("chord")).enqueue()
        with pytest.raises(TaskFailed, match=r"member 2 of 3 \(wf\.boom\[") as err:
            await c.get(timeout=20)
        assert err.value.matches((KeyError, ValueError))
        callback_id = (await c.ids())[-1]
        await app.result(derive_id(callback_id, "err0")).get(timeout=20)
        assert t["seen"] == [(callback_id, "chord")]
        members = await (await c.group()).get(timeout=5, propagate=False)
        assert members[0] == 2
        assert isinstance(members[1], TaskFailed)
        assert await (await c.group()).state() is asyncq.TaskState.FAILURE


async def test_a_producer_may_exit_right_after_enqueue(make_app: MakeApp) -> None:
    producer = make_app()
    t = _tasks(producer)
    async with producer:
        h = await chain(t["add"].s(1, 2), t["add"].s(3), t["add"].s(4)).enqueue()
        c = await chord([t["add"].s(i, i) for i in range(10)], t["tsum"].s()).enqueue()
    # the producer is closed; a separate worker App with the same tasks finishes the work
    worker_app = make_app(name=f"{producer.name}-w")
    _tasks(worker_app)
    async with worker_app, asyncq.Worker(worker_app, concurrency=8):
        assert await worker_app.result(h.id).get(timeout=20) == 10
        assert await worker_app.result(c.id).get(timeout=20) == 90


async def test_empty_chord_calls_back_with_no_results(make_app: MakeApp) -> None:
    app = make_app()
    t = _tasks(app)
    async with app, asyncq.Worker(app, concurrency=2):
        assert await (await chord([], t["tsum"].s()).enqueue()).get(timeout=20) == 0


def test_bad_workflows_are_refused_when_built() -> None:
    app = asyncq.App("wf-refuse", broker="memory://wf-refuse")
    other = asyncq.App("wf-refuse-2", broker="memory://wf-refuse")

    @app.task
    async def one(x: int) -> int:
        return x

    @other.task
    async def two(x: int) -> int:
        return x

    with pytest.raises(asyncq.ConfigurationError, match="at least one step"):
        chain()
    with pytest.raises(asyncq.ConfigurationError, match="takes signatures"):
        group([1, 2])
    with pytest.raises(asyncq.ConfigurationError, match="same App"):
        asyncio.run(chain(one.s(1), two.s()).enqueue())
    with pytest.raises(asyncq.ConfigurationError, match="'eta' is not supported"):
        asyncio.run(chain(one.s(1), one.options(eta=1e10).s()).enqueue())
    with pytest.raises(asyncq.ConfigurationError, match="link takes a signature"):
        one.options(link=[one])  # type: ignore[list-item]


async def test_groups_and_chords_of_chains(make_app: MakeApp) -> None:
    app = make_app()
    t = _tasks(app)
    add, tsum = t["add"], t["tsum"]
    async with app, asyncq.Worker(app, concurrency=20):
        g = await group(add.s(1, 1), add.s(3, 3) | add.s(100), add.s(5, 5)).enqueue()
        assert await g.get(timeout=20) == [2, 106, 10]
        assert await app.result(g.id).get(timeout=5) == [2, 106, 10]
        c = await chord([add.s(i, i) | add.s(1) | add.s(1) for i in range(5)], tsum.s()).enqueue()
        assert await c.get(timeout=20) == sum(2 * i + 2 for i in range(5))
        bad = await chord([add.s(1, 1), add.s(2, 2) | t["boom"].s() | add.s(1)], tsum.s()
                          ).enqueue()
        with pytest.raises(TaskFailed, match=r"member 2 of 2 \(wf\.add\[.*step 2 of 3") as err:
            await bad.get(timeout=20)
        assert err.value.matches(ValueError)


async def test_a_group_inside_a_chain_is_a_chord(make_app: MakeApp) -> None:
    app = make_app()
    t = _tasks(app)
    add, tsum = t["add"], t["tsum"]
    async with app, asyncq.Worker(app, concurrency=20):
        # each member gets the previous result; the next step gets their list
        h = await chain(add.s(1, 1), group(add.s(10), add.s(20)), tsum.s()).enqueue()
        assert await h.get(timeout=20) == 34
        # ending with a group: the chain's result is the list
        h = await (add.s(1, 1) | group(add.s(i) for i in range(3))).enqueue()
        assert await h.get(timeout=20) == [2, 3, 4]
        assert await app.result(h.id).get(timeout=5) == [2, 3, 4]
        # starting with a group, and two groups in a row
        h = await chain(group(add.s(1, 1), add.s(2, 2)), tsum.s(), group(add.s(1), add.s(2)),
                        tsum.s()).enqueue()
        assert await h.get(timeout=20) == (6 + 1) + (6 + 2)
        # a failed member stops the rest
        h = await chain(add.s(1, 1), group(add.s(1), t["boom"].s()), tsum.s()).enqueue()
        with pytest.raises(TaskFailed, match=r"member 2 of 2 \(wf\.boom\[") as err:
            await h.get(timeout=20)
        assert err.value.matches(ValueError)
        h = await chain(t["boom"].s(1), group(add.s(1), add.s(2))).enqueue()
        with pytest.raises(TaskFailed, match=r"step 1 of 2"):
            await h.get(timeout=20)
