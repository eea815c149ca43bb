"""Testing helpers, public: for your own tests, and for anyone writing a broker.

- :func:`use_memory` points an App at a fresh in-memory broker and result backend for
  the duration of a ``with`` block (messages still go through the codec);
- :func:`worker` runs an in-process :class:`~asyncq.Worker` in an ``async with``;
- :mod:`asyncq.testing.contract` is the conformance kit: ``BrokerContract`` and
  ``ResultBackendContract`` test classes a broker or backend package subclasses with its
  own factory;
- :mod:`asyncq.testing.plugin` is an opt-in pytest plugin (``pytest_plugins =
  ["asyncq.testing.plugin"]``) with fixtures for the above.

None of it needs pytest-asyncio: the contract's tests run their own event loop.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from asyncq.app import App
from asyncq.brokers.memory import MemoryBroker
from asyncq.results.memory import MemoryResultBackend
from asyncq.worker import Worker

__all__ = ["use_memory", "worker"]


@contextlib.contextmanager
def use_memory(app: App) -> Iterator[App]:
    """Swap ``app``'s broker and backend for fresh in-memory ones, then put them back.

    For an App built with ``broker="redis://..."`` in your code: its tests run with no
    server. The App must not be connected when the block starts.
    """
    url = f"memory://test-{uuid.uuid4().hex[:12]}"
    saved = app.broker, app.backend
    app.broker = MemoryBroker(url)
    app.backend = MemoryResultBackend(url, ttl=saved[1].ttl, max_size=app.max_message_size)
    try:
        yield app
    finally:
        app.broker, app.backend = saved


@contextlib.asynccontextmanager
async def worker(app: App, queues: Sequence[str] | None = None, **options: Any
                 ) -> AsyncIterator[Worker]:
    """An in-process worker for ``app`` (connecting it) while the block runs; on exit
    it stops, letting running tasks finish (``Worker`` options pass through)."""
    async with app, Worker(app, queues, **options) as running:
        yield running
