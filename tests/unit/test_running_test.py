"""``running_test``: is the caller on a given event loop, asked without a system call."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import threading
from collections.abc import Callable

import pytest

from asyncq._loops import never, running_test

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
if importlib.util.find_spec("uvloop") is not None:  # (not on Windows)
    import uvloop

    LOOPS["uvloop"] = uvloop.new_event_loop


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


@pytest.mark.skipif(sys.platform == "win32", reason="no fork")
@pytest.mark.parametrize("make", LOOPS.values(), ids=LOOPS.keys())
def test_false_in_a_child_forked_on_the_loop(
        make: Callable[[], asyncio.AbstractEventLoop]) -> None:
    """A child's copy of the loop looks as if it ran in the forking thread."""
    loop = make()
    try:
        here, child = loop.run_until_complete(_fork_and_ask())
    finally:
        loop.close()
    _, status = os.waitpid(child, 0)
    assert here
    assert os.waitstatus_to_exitcode(status) == 0


async def _fork_and_ask() -> tuple[bool, int]:
    """The test in the parent, and the child's pid (it exits 0 when the test is False
    there, as it must be)."""
    on_loop = running_test(asyncio.get_running_loop())
    pid = os.fork()
    if pid == 0:
        os._exit(1 if on_loop() else 0)
    return on_loop(), pid


def test_never() -> None:
    assert never() is False


async def _test_made_here() -> Callable[[], bool]:
    return running_test(asyncio.get_running_loop())


async def _call(test: Callable[[], bool]) -> bool:
    return test()
