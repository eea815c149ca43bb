"""The one seam between the scheduler loop and a broker's server.

A store keeps the leader lease and the schedule state (each entry's cursor: the last
tick it handled) on the broker's own server, and sends a tick exactly once. One
implementation per broker family: :mod:`asyncq.beat.redis`, :mod:`asyncq.beat.amqp`,
:mod:`asyncq.beat.memory`.
"""

from __future__ import annotations

import abc
import datetime as dt
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from asyncq.brokers import Outgoing
from asyncq.errors import ConfigurationError

if TYPE_CHECKING:
    from asyncq.app import App

__all__ = ["BeatStore", "store_for"]

#: the store of each broker family, by the broker class's module
_STORES = {
    "asyncq.brokers.redis": "asyncq.beat.redis:RedisBeatStore",
    "asyncq.brokers.amqp": "asyncq.beat.amqp:AmqpBeatStore",
    "asyncq.brokers.memory": "asyncq.beat.memory:MemoryBeatStore",
}


class BeatStore(abc.ABC):
    """Leader lease, schedule state and exactly-once sending for one app."""

    #: seconds between leadership checks of a follower (and renewals of a leader)
    poll_interval: float = 1.0

    async def open(self) -> None:  # noqa: B027  (a store may need no setup)
        """Join the election (the app is connected)."""

    @abc.abstractmethod
    async def lead(self) -> bool:
        """Acquire or renew the leadership; True while this process leads."""

    @abc.abstractmethod
    async def load(self) -> dict[str, dt.datetime]:
        """Every entry's cursor, as the last leader left it (called on becoming leader)."""

    @abc.abstractmethod
    async def send(self, entry: str, message: Outgoing, tick: dt.datetime,
                   remember: dt.timedelta) -> bool:
        """Send ``message`` (``tick`` of ``entry``) unless it was sent already, and move
        the entry's cursor to ``tick``. False when it was a duplicate. ``remember``: how
        long the tick's id must stay known."""

    @abc.abstractmethod
    async def advance(self, entry: str, cursor: dt.datetime) -> None:
        """Move an entry's cursor without sending (a new entry, skipped ticks)."""

    async def close(self) -> None:  # noqa: B027
        """Leave the election, handing over the leadership at once when possible."""


def store_for(app: App, *, lease: float) -> BeatStore:
    """The store for ``app``'s broker (by the family its class belongs to)."""
    path = next((path for family, path in _STORES.items()
                 if any(cls.__module__ == family for cls in type(app.broker).__mro__)), None)
    if path is None:
        raise ConfigurationError(
            f"periodic tasks need a Redis, RabbitMQ or memory broker, not "
            f"{type(app.broker).__name__}")
    module, _, attr = path.partition(":")
    make: Callable[..., BeatStore] = getattr(importlib.import_module(module), attr)
    return make(app, lease=lease)
