"""Opt-in pytest fixtures: ``pytest_plugins = ["asyncq.testing.plugin"]`` in a conftest.

- ``asyncq_memory``: a function ``asyncq_memory(app)`` that points ``app`` at a fresh
  in-memory broker and backend until the test ends;
- ``asyncq_worker``: the :func:`asyncq.testing.worker` context manager, for
  ``async with asyncq_worker(app): ...`` inside an async test (any async plugin).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from asyncq.app import App
from asyncq.testing import use_memory, worker

__all__ = ["asyncq_memory", "asyncq_worker"]


@pytest.fixture
def asyncq_memory() -> Iterator[Callable[[App], App]]:
    with contextlib.ExitStack() as stack:
        yield lambda app: stack.enter_context(use_memory(app))


@pytest.fixture
def asyncq_worker() -> Callable[..., Any]:
    return worker
