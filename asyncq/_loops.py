"""One App across several event loops, one after the other (``asyncio.run`` twice).

Connections, pools and batching tasks belong to the loop that made them. When an App
is used from a new loop after its first loop was closed, it rebuilds its broker and
result backend (in place, so handles and tasks that hold them keep working) and
connects again. An App whose first loop is still running refuses a second one with one
clear error, since its connections cannot serve two loops at once.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asyncq.app import App

__all__ = ["ensure_loop", "owned_by"]

_OWNERS: weakref.WeakKeyDictionary[Any, App] = weakref.WeakKeyDictionary()


def owned_by(backend: Any, app: App) -> None:
    """Let handles holding ``backend`` reconnect ``app`` when used on a new loop."""
    _OWNERS[backend] = app


async def ensure_loop(backend: Any) -> None:
    """Reconnect the App owning ``backend`` if it was connected on another loop."""
    app = _OWNERS.get(backend)
    if app is not None and app.bound_loop not in (None, asyncio.get_running_loop()):
        await app.connect()
