"""A small flood of hostile messages through a real worker, on each broker (the 10,000
message version is tests/faults/test_flood.py, ``-m faults``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.security.flood import DEAD_CAP, run_flood


@pytest.mark.parametrize("broker", ["redis", "amqp"])
async def test_a_small_flood_is_survived(broker: str, request: pytest.FixtureRequest,
                                         tasks_dir: Path, start_worker: Callable[..., Any]
                                         ) -> None:
    url = str(request.getfixturevalue("redis_url" if broker == "redis" else "amqp_url"))
    report = await run_flood(url, tasks_dir, start_worker, hostile=600, good=60)
    print(report)
    assert report.served == report.good
    assert report.rss_peak_mb < report.bound_mb
    assert report.dead_stored == report.hostile  # all dead, none lost: under the cap
    assert len(report.kinds) >= 12
    assert report.dead_stored <= DEAD_CAP
