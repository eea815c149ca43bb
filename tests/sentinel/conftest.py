"""A Redis master + replica + 3 Sentinels for the whole session (tests/_servers/sentinel.py).

Tests here must leave the group as they found it: the one that fails over starts a
group of its own (under the ``faults`` marker).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests._servers.sentinel import SentinelGroup


@pytest.fixture(scope="session")
def sentinel_group() -> Iterator[SentinelGroup]:
    if shutil.which("redis-server") is None:
        pytest.fail("the Sentinel tests need redis-server on PATH (apt-get install redis-server)")
    with SentinelGroup.started() as group:
        yield group
