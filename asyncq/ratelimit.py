"""Rate limits shared by every worker of an app: ``@app.task(rate_limit="100/s")``.

A limit is ``"<count>/<unit>"`` with unit ``s``, ``m`` or ``h`` (``"100/s"``,
``"30/m"``, ``"1000/h"``; a bare number means per second). It holds for the task
across all the app's workers together: a token bucket (GCRA: a stored "next free time"
and one Lua script, on server time) on Redis, under the key
``asyncq:ratelimit:{<app>}:<task>``. The Redis is the broker's, or the result
backend's when the broker is RabbitMQ; with RabbitMQ and RPC results there is no shared
store and a worker refuses to start with one clear error. With the memory broker the
bucket is in-process (tests).

Runs are spaced ``1/rate`` apart across the app, with a burst of 2: a run that started
late (its worker woke a little after its token was due) may be followed at once by the
next, so the long-run rate is the limit, not a few percent under it, and any window of
``t`` seconds holds at most ``rate * t + 2`` runs. A run that waits its turn holds no
run slot (:class:`~asyncq.middleware.rate_limit.RateLimit` uses the worker's admission
step).

A limit can be changed while workers run (``asyncq control APP rate-limit TASK 10/s``,
``app.control.rate_limit``): see :mod:`asyncq.middleware.rate_limit`. A stored "next
free time" is never further ahead than ``burst`` intervals of the current rate, so a
raised limit takes effect at once rather than after the old, longer interval.
"""

from __future__ import annotations

import abc
import asyncio
import re
import time
from typing import Any, Final

from asyncq.errors import ConfigurationError

__all__ = ["Bucket", "MemoryBucket", "RedisBucket", "parse_rate"]

_UNITS: Final = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}
_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*([a-z]+))?\s*")


def parse_rate(text: str) -> float:
    """Tokens per second of ``"100/s"``, ``"30/m"``, ``"1000/h"`` (ConfigurationError if
    it is none of these, or not above zero)."""
    match = _RATE.fullmatch(text) if isinstance(text, str) else None
    unit = (match.group(2) or "s") if match else ""
    if match is None or unit not in _UNITS or float(match.group(1)) <= 0:
        raise ConfigurationError(f"rate_limit must look like '100/s', '30/m' or '1000/h', "
                                 f"not {text!r}")
    return float(match.group(1)) / _UNITS[unit]


class Bucket(abc.ABC):
    """One shared limit: :meth:`take` a token or learn how long until one is due.

    :meth:`set_rate` changes the rate while the worker runs (``asyncq control APP
    rate-limit``): a taker waiting for a token at the old rate asks again at once, and
    ``None`` lets every taker through (the limit was lifted).
    """

    def __init__(self, rate: float, burst: int = 2) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.lifted = False
        self._changed = asyncio.Event()

    @abc.abstractmethod
    async def take(self) -> float:
        """Take a token and return 0, or return the seconds until one is due."""

    def set_rate(self, rate: float | None) -> None:
        """Use ``rate`` tokens per second from now on (``None``: no limit any more)."""
        self.lifted = rate is None
        if rate is not None:
            self.rate = rate
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()  # wakes the takers waiting at the old rate

    async def acquire(self) -> None:
        """Wait (sleeping, never polling) until a token is taken."""
        while not self.lifted:
            wait = await self.take()
            if wait <= 0:
                return
            changed = self._changed
            try:
                async with asyncio.timeout(wait):
                    await changed.wait()
            except TimeoutError:
                pass


class RedisBucket(Bucket):
    def __init__(self, client: Any, key: str, rate: float, burst: int = 2) -> None:
        super().__init__(rate, burst)
        self._client = client
        self._key = key
        from asyncq import _redis  # redis is an optional extra

        self._script = client.register_script(_redis.load_lua("asyncq", "rate_limit"))

    async def take(self) -> float:
        wait_us = await self._script(keys=[self._key],
                                     args=[max(1, round(1_000_000 / self.rate)), self.burst])
        return int(wait_us) / 1_000_000


class MemoryBucket(Bucket):
    """The same rule in this process (for the memory broker)."""

    def __init__(self, rate: float, burst: int = 2) -> None:
        super().__init__(rate, burst)
        self._tat = 0.0

    async def take(self) -> float:
        now = time.monotonic()
        interval = 1 / self.rate
        tat = max(self._tat, now)
        if tat > now + interval * self.burst:  # a raised rate: as rate_limit.lua
            tat = self._tat = now + interval * self.burst
        allowed_at = tat - interval * (self.burst - 1)
        if now < allowed_at:
            return allowed_at - now
        self._tat = tat + interval
        return 0.0
