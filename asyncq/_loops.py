"""Hand a call to the event loop that owns an object, from any loop or thread.

The in-memory broker and backend are shared by every App with the same URL in the
process, and those Apps may run on different event loops: Starlette's TestClient runs
the web app on a loop of its own in a thread while the test (and an in-process worker)
runs on another. asyncio futures and events are not thread-safe, so a wake-up for a
waiter on another loop must go through that loop's ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TypeVarTuple

__all__ = ["call_in_loop"]

Ts = TypeVarTuple("Ts")


def call_in_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[*Ts], object],
                 *args: *Ts) -> None:
    """Call ``fn(*args)`` now when ``loop`` is the running loop, else soon in ``loop``.

    A closed loop is skipped: nobody is waiting there any more.
    """
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        fn(*args)
    elif not loop.is_closed():
        with contextlib.suppress(RuntimeError):  # closed between the check and the call
            loop.call_soon_threadsafe(fn, *args)
