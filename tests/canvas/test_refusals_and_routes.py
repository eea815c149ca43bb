"""RPC results refuse workflows at enqueue; task_routes takes Celery's forms; a failure
can be caught and matched by type name."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

import asyncq
from asyncq import chain, chord, group
from asyncq.routing import Route, Router


async def test_rpc_results_refuse_every_workflow_at_enqueue(amqp_url: str,
                                                            unique: Callable[[str], str]
                                                            ) -> None:
    app = asyncq.App(unique("rpc"), broker=amqp_url, default_queue=unique("q"))

    @app.task
    async def add(x: int, y: int) -> int:
        return x + y

    refused = pytest.raises(asyncq.ConfigurationError, match="rpc:// has none")
    with refused:
        await chain(add.s(1, 2), add.s(3)).enqueue()
    with refused:
        await group(add.s(1, 2)).enqueue()
    with refused:
        await chord([add.s(1, 2)], add.s(3)).enqueue()
    with refused:
        await add.options(link=add.s(1)).enqueue(1, 2)
    await app.close()


def _router_fn(name: str, args: Any, kwargs: Any, options: Any, task: Any = None,
               **kw: Any) -> str | dict[str, str] | None:
    if name == "shop.resize":
        return "big" if args and args[0] > 100 else {"queue": "small"}
    return None


def test_task_routes_take_celerys_forms() -> None:
    routes = (
        {"tasks.image_compress": {"queue": "images", "routing_key": "media.image"}},
        {re.compile(r"tasks\.video_.*"): {"queue": "videos", "routing_key": "media.video"}},
        {"tasks.other*": "others"},
        _router_fn,
    )
    router = Router(routes)
    assert router.dynamic
    assert router.route("tasks.image_compress") == Route("images", "media.image")
    assert router.route("tasks.video_upload") == Route("videos", "media.video")
    assert router.route("tasks.others") == Route("others")
    assert router.route("shop.resize") is None  # functions answer per call
    assert router.route_call("shop.resize", (500,), {}, {}) == Route("big")
    assert router.route_call("shop.resize", (5,), {}, {}) == Route("small")
    assert router.route_call("tasks.video_compress", (), {}, {}) == Route("videos",
                                                                          "media.video")
    assert Router([{"a": "b"}]).route("a") == Route("b")
    assert not Router({"a": "b"}).dynamic


@pytest.mark.parametrize(("routes", "message"), [
    ("images", "got str"),
    (42, "got int"),
    ([{"a": "b"}, 3], "got int"),
    ({1: "q"}, "not int"),
    ({"a": 3}, "expected a queue name or a mapping"),
    ({"a": {"queue": 3}}, "queue must be a string"),
    ({re.compile(rb"x"): "q"}, "of text, not bytes"),
])
def test_task_routes_in_any_other_form_are_a_configuration_error(routes: Any, message: str
                                                                  ) -> None:
    with pytest.raises(asyncq.ConfigurationError, match=message):
        asyncq.App("routes", broker="memory://routes-bad", task_routes=routes)


async def test_a_router_function_routes_each_call(unique: Callable[[str], str]) -> None:
    app = asyncq.App("routes", broker=f"memory://{unique('r')}", task_routes=[_router_fn])

    @app.task(name="shop.resize")
    async def resize(size: int) -> str:
        return asyncq.current_request().queue

    async with app, asyncq.Worker(app, queues=["big", "small"], concurrency=2):
        assert await (await resize.enqueue(500)).get(timeout=5) == "big"
        assert await (await resize.enqueue(5)).get(timeout=5) == "small"
        assert await (await resize.options(queue="small").enqueue(500)).get(timeout=5) == "small"
        handles = await app.enqueue_many([resize.s(1000), resize.s(1)])
        assert [await h.get(timeout=5) for h in handles] == ["big", "small"]


async def test_route_with_queue_and_routing_key_but_no_exchange_reaches_the_queue_on_rabbitmq(
        amqp_url: str, redis_url: str, unique: Callable[[str], str]) -> None:
    images = unique("images")
    app = asyncq.App(unique("seed"), broker=amqp_url, backend=redis_url, task_routes=(
        {"tasks.image_compress": {"queue": images, "routing_key": "media.image"}},))

    @app.task(name="tasks.image_compress")
    async def image_compress(name: str) -> str:
        return f"{name} from {asyncq.current_request().queue}"

    try:
        async with app, asyncq.Worker(app, queues=[images], concurrency=2):
            handle = await image_compress.enqueue("cat.png")  # was PublishError NO_ROUTE
            assert await handle.get(timeout=20) == f"cat.png from {images}"
    finally:
        await app.connect()
        await app.broker.delete_queue(images)
        await app.close()


def test_task_failed_matches_by_name_and_never_imports() -> None:
    err = asyncq.TaskFailed("t1", "KeyError", "'x'")
    assert err.matches(KeyError)
    assert err.matches(LookupError)  # a builtin's bases are known without importing
    assert err.matches(Exception)
    assert err.matches((ValueError, KeyError))
    assert err.matches("KeyError")
    assert not err.matches(ValueError)
    custom = asyncq.TaskFailed("t2", "shop.errors.OutOfStock", "none left")
    assert custom.matches("shop.errors.OutOfStock")
    assert custom.matches("OutOfStock")
    assert not custom.matches(Exception)  # bases of a non-builtin class are not recorded
    assert not custom.matches("shop.OutOfStock")
    timeout = asyncq.TaskFailed("t3", "TimeoutError", "over its limit")
    assert timeout.matches(TimeoutError)
    assert timeout.matches(OSError)
    forged = asyncq.TaskFailed("t4", "os.system", "x")
    assert not forged.matches(Exception)
    with pytest.raises(TypeError, match="exception classes or names"):
        err.matches(42)  # type: ignore[arg-type]


async def test_get_propagate_false_returns_the_failure(unique: Callable[[str], str]) -> None:
    app = asyncq.App("prop", broker=f"memory://{unique('p')}")

    @app.task
    async def boom() -> None:
        raise KeyError("gone")

    async with app, asyncq.Worker(app, concurrency=1):
        handle = await boom.enqueue()
        failure = await handle.get(timeout=5, propagate=False)
        assert isinstance(failure, asyncq.TaskFailed)
        assert failure.matches(LookupError)
        with pytest.raises(asyncq.TaskFailed):
            await handle.get(timeout=5)
