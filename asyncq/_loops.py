"""Event loops: one App across several of them, and calls handed to another loop.

One after the other (``asyncio.run`` twice). Connections, pools and batching tasks belong
to the loop that made them. When an App is used from a new loop after its first loop was
closed, it rebuilds its broker and result backend (in place, so handles and tasks that
hold them keep working) and connects again. An App whose first loop is still running
refuses a second one with one clear error, since its connections cannot serve two loops
at once.

Side by side (:func:`call_in_loop`). The in-memory broker and backend are shared by every
App with the same URL in the process, and those Apps may run on different event loops:
Starlette's TestClient runs the web app on a loop of its own in a thread while the test
(and an in-process worker) runs on another. asyncio futures and events are not
thread-safe, so a wake-up for a waiter on another loop must go through that loop's
``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import weakref
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING, Any, TypeVarTuple

from asyncq.errors import ConfigurationError

if TYPE_CHECKING:
    from asyncq.app import App

__all__ = [
    "LoopCloser", "call_in_loop", "ensure_loop", "never", "owned_by", "rebuild_for_new_loop",
    "running_test",
]

Ts = TypeVarTuple("Ts")

#: backend -> its App, both weakly: the App holds its backend, so a strong value would
#: keep both (and the App's last event loop) alive for ever
_OWNERS: weakref.WeakKeyDictionary[Any, weakref.ref[App]] = weakref.WeakKeyDictionary()


_get_ident = threading.get_ident
#: forks of this process so far, counted in the child (a child's copy of a loop still
#: names the forking thread as the one running it)
_forks = 0


def _forked() -> None:
    global _forks
    _forks += 1


if hasattr(os, "register_at_fork"):  # (no fork on Windows)
    os.register_at_fork(after_in_child=_forked)


def never() -> bool:
    """:func:`running_test` of no loop (an App not connected)."""
    return False


def running_test(loop: asyncio.AbstractEventLoop) -> Callable[[], bool]:
    """A test of whether the code calling it runs on ``loop``, the running loop now.

    ``asyncio.get_running_loop() is loop`` says the same, but on Python 3.11 each
    ``get_running_loop()`` makes a ``getpid()`` system call, and the hot path asked
    twice per awaited ``enqueue``. The test instead relies on a thread running one loop
    at a time. For asyncio's own loops, which note the thread running them, it asks
    whether that thread is this one; for other loops (uvloop), whether ``loop`` is
    running and this is the thread that made the test. Either way it also asks that
    this process has not forked since (a child's copy of ``loop`` looks like it runs).
    It can be wrong only when ``loop`` is stopped and run again in another thread while
    this thread runs a loop of its own, or when a patched asyncio (nest_asyncio) runs
    a second loop inside ``loop``'s thread.
    """
    born = _forks
    if isinstance(loop, asyncio.BaseEventLoop):
        return lambda: loop._thread_id == _get_ident() and _forks == born  # type: ignore[attr-defined]
    thread = _get_ident()
    return lambda: _get_ident() == thread and _forks == born and loop.is_running()


def owned_by(backend: Any, app: App) -> None:
    """Let handles holding ``backend`` reconnect ``app`` when used on a new loop."""
    _OWNERS[backend] = weakref.ref(app)


async def ensure_loop(backend: Any) -> None:
    """Reconnect the App owning ``backend`` if it was connected on another loop."""
    owner = _OWNERS.get(backend)
    app = None if owner is None else owner()
    if app is not None and app.bound_loop not in (None, asyncio.get_running_loop()):
        await app.connect()


def rebuild_for_new_loop(app: App) -> None:
    """Rebuild ``app``'s broker and backend in place (their clients, pools, batchers
    and locks belong to the old loop), or raise ConfigurationError when that is not
    possible: the old loop is still open, or the App did not build them itself."""
    old = app.bound_loop
    if old is not None and not old.is_closed():
        raise ConfigurationError(
            f"App {app.name!r} is connected on another event loop that is still open; "
            "an App serves one loop at a time: close it there first (async with app), "
            "or from threads and sync code use app.blocking()")
    if not app.rebuildable:
        raise ConfigurationError(
            f"App {app.name!r} was connected on an event loop that is now closed, and "
            "its broker or backend was built outside the App, so it cannot be rebuilt: "
            "build them from URLs (App(name, broker=url, backend=url)) or use "
            "app.blocking()")
    broker, backend = app.broker, app.backend
    type(broker).__init__(broker, broker.url)
    settings: dict[str, Any] = {"ttl": backend.ttl, "max_size": backend.max_size}
    if hasattr(backend, "transport"):  # RPC results ride on the broker's connection
        settings["transport"] = broker
    signer = getattr(backend, "signer", None)  # set by the App (signed records)
    type(backend).__init__(backend, backend.url, **settings)
    if signer is not None:
        backend.signer = signer


class LoopCloser:
    """Closes an App when its event loop shuts down (``asyncio.run`` ending).

    ``asyncio.run`` finalizes the loop's async generators before closing it; a
    generator parked at its first ``yield`` is such a hook, so the App's connections
    are closed cleanly on their own loop instead of being left to a closed one.
    """

    def __init__(self) -> None:
        self._gen: AsyncGenerator[None, None] | None = None

    async def arm(self, app: App) -> None:
        await self.disarm()
        gen = self._gen = self._watch(app, object())
        await gen.__anext__()  # registers it with the running loop

    async def disarm(self) -> None:
        gen, self._gen = self._gen, None
        if gen is not None:
            await gen.aclose()

    async def _watch(self, app: App, token: object) -> AsyncGenerator[None, None]:
        self._token = token
        try:
            yield
        finally:
            if self._gen is not None and self._token is token:
                self._gen = None
                await app.close()


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
