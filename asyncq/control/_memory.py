"""The in-process revoke bus (``memory://`` brokers): for tests of users' own tasks."""

from __future__ import annotations

import asyncio
import time

from asyncq.control import OnRevoke, Revocation, RevokeBus

__all__ = ["MemoryRevokeBus"]

_KEPT: dict[str, list[Revocation]] = {}
_LISTENERS: dict[str, list[OnRevoke]] = {}


class MemoryRevokeBus(RevokeBus):
    def __init__(self, broker: object, app_name: str, window: float, max_entries: int) -> None:
        super().__init__(broker, app_name, window, max_entries)
        self._key = f"{getattr(broker, 'url', 'memory://')}|{app_name}"

    async def publish(self, revocation: Revocation) -> None:
        kept = _KEPT.setdefault(self._key, [])
        kept.append(revocation)
        cutoff = time.time() - self.window
        kept[:] = [r for r in kept[-self.max_entries:] if r.at > cutoff]
        for listener in list(_LISTENERS.get(self._key, [])):
            listener(revocation)

    async def listen(self, on_revoke: OnRevoke, ready: asyncio.Event,
                     stop: asyncio.Event) -> None:
        listeners = _LISTENERS.setdefault(self._key, [])
        listeners.append(on_revoke)
        try:
            for revocation in list(_KEPT.get(self._key, [])):
                on_revoke(revocation)
            ready.set()
            await stop.wait()
        finally:
            listeners.remove(on_revoke)


    async def clear(self) -> None:
        _KEPT.pop(self._key, None)
