"""Reply-channel waits that are a bare future (see :mod:`asyncq.results._listener`).

While the reply channel is live, a handle stamped by ``enqueue`` reads no key: its wait
is only a future in the listener's ``mine`` table. Awaiting that future directly, with
no coroutine around it, saves a frame per await and a resume per reply (a fan-in of
thousands of callers spends a good part of its CPU there). With no ``finally`` to clean
up, the table entry goes when the reply is dispatched (:meth:`QuickWaits.settle`, which
also takes the done-callback off), or else, when the future ends otherwise (cancelled,
timed out, failed, resolved by a key read), in that done-callback.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable

__all__ = ["QuickWaits", "Waiting"]

Waiting = tuple[str, list["asyncio.Future[bytes]"]]


class QuickWaits:
    """The bare-future waits of one listener's ``mine`` table (key -> waiting)."""

    def __init__(self, mine: dict[bytes, Waiting], on_idle: Callable[[], None]) -> None:
        self._mine = mine
        self._on_idle = on_idle
        #: future -> its key in ``mine``, while its done-callback is on
        self._keys: dict[asyncio.Future[bytes], bytes] = {}
        # one bound method (remove_done_callback compares), one context (no copy per wait)
        self._done = self._on_done
        self._context = contextvars.Context()

    def __len__(self) -> int:
        return len(self._keys)

    def wait(self, task_id: str, key: bytes) -> asyncio.Future[bytes]:
        """A future for ``task_id``'s record; ``key`` must not be in ``mine``."""
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._mine[key] = (task_id, [fut])
        self._keys[fut] = key
        fut.add_done_callback(self._done, context=self._context)
        return fut

    def settle(self, key: bytes, entry: Waiting) -> None:
        """``entry``, ``key``'s in ``mine``, is about to be resolved: out of the table."""
        mine = self._mine
        if mine.get(key) is entry:
            del mine[key]
            if not mine:
                self._on_idle()
        keys = self._keys
        for fut in entry[1]:
            if keys.pop(fut, None) is not None:
                fut.remove_done_callback(self._done)

    def _on_done(self, fut: asyncio.Future[bytes]) -> None:
        key = self._keys.pop(fut, None)
        if key is None:
            return
        entry = self._mine.get(key)
        if entry is None or fut not in entry[1]:
            return
        entry[1].remove(fut)
        if not entry[1]:
            del self._mine[key]
            if not self._mine:
                self._on_idle()
