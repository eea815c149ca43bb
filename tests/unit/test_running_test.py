"""``running_test``: is the caller on a given event loop, asked without a system call."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
import uvloop

from asyncq._loops import never, running_test

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


@pytest.mark.parametrize("make", LOOPS.values(), ids=LOOPS.keys())
def test_true_on_its_loop_only(make: Callable[[], asyncio.AbstractEventLoop]) -> None:
    first, second = make(), make()
    try:
        on_first = first.run_until_complete(_test_made_here())
        assert first.run_until_complete(_call(on_first))
        assert not second.run_until_complete(_call(on_first))  # another loop, same thread
        assert not on_first()  # no loop running
        # from a worker thread of the loop itself: not on the loop
        assert not first.run_until_complete(first.run_in_executor(None, on_first))
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("make", LOOPS.values(), ids=LOOPS.keys())
def test_false_while_its_loop_runs_in_another_thread(
        make: Callable[[], asyncio.AbstractEventLoop]) -> None:
    other = make()
    started = threading.Event()
    other.call_soon(started.set)
    thread = threading.Thread(target=other.run_forever)
    thread.start()
    try:
        assert started.wait(5)
        on_other = asyncio.run_coroutine_threadsafe(_test_made_here(), other).result(5)
        assert asyncio.run_coroutine_threadsafe(_call(on_other), other).result(5)
        assert not on_other()  # this thread, no loop
        mine = make()
        try:
            assert not mine.run_until_complete(_call(on_other))  # this thread's own loop
        finally:
            mine.close()
    finally:
        other.call_soon_threadsafe(other.stop)
        thread.join(5)
        other.close()


def test_never() -> None:
    assert never() is False


async def _test_made_here() -> Callable[[], bool]:
    return running_test(asyncio.get_running_loop())


async def _call(test: Callable[[], bool]) -> bool:
    return test()
