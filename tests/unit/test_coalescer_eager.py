"""A Coalescer under eager tasks (Python 3.12's ``asyncio.eager_task_factory``): a task
runs up to its first wait inside ``create_task``, so the batch runner must find the
first caller's item already queued, or that item waits for a runner that has ended."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Generator, Sequence
from typing import Any

from asyncq._batch import Coalescer


def _eager_factory(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any],
                   **kwargs: Any) -> asyncio.Future[Any]:
    """``asyncio.eager_task_factory`` (3.12+); on 3.11 the same first step, by hand."""
    native = getattr(asyncio, "eager_task_factory", None)
    if native is not None:
        task: asyncio.Future[Any] = native(loop, coro, **kwargs)
        return task
    try:
        first = coro.send(None)
    except StopIteration as stop:  # done without waiting: a finished future
        done = loop.create_future()
        done.set_result(stop.value)
        return done
    return asyncio.Task(_resumed(coro, first), loop=loop, **kwargs)


@types.coroutine
def _resumed(coro: Coroutine[Any, Any, Any], yielded: Any) -> Generator[Any, Any, Any]:
    """``coro`` on from where its first step stopped (``yielded``: what it waits for)."""
    while True:
        try:
            try:
                sent = yield yielded
            except BaseException as exc:  # handed on, as a Task does
                yielded = coro.throw(exc)
            else:
                yielded = coro.send(sent)
        except StopIteration as stop:
            return stop.value


async def test_each_caller_s_item_is_sent_when_runners_start_eagerly() -> None:
    sent: list[list[int]] = []

    async def flush(items: Sequence[int]) -> list[int]:
        sent.append(list(items))
        await asyncio.sleep(0)
        return [item * 2 for item in items]

    loop = asyncio.get_running_loop()
    loop.set_task_factory(_eager_factory)  # type: ignore[arg-type]
    try:
        batcher: Coalescer[int, int] = Coalescer(flush)
        async with asyncio.timeout(2):
            assert await batcher.submit(21) == 42
            assert await asyncio.gather(*(batcher.submit(n) for n in range(3))) == [0, 2, 4]
            assert await batcher.submit(5) == 10
    finally:
        loop.set_task_factory(None)
    assert [n for batch in sent for n in batch] == [21, 0, 1, 2, 5]
