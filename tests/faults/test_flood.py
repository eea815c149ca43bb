"""F6 flood (issue 13): 10,000 hostile messages of every kind among 1,000 good ones,
through a real ``asyncq worker``, on each broker (``-m faults``; the small version runs
by default: tests/security/test_flood.py). Figures land in the test output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.security.flood import DEAD_CAP, run_flood


@pytest.mark.faults
@pytest.mark.parametrize("broker", ["redis", "amqp"])
async def test_f6_flood_of_ten_thousand(broker: str, request: pytest.FixtureRequest,
                                        tasks_dir: Path, start_worker: Callable[..., Any]
                                        ) -> None:
    url = str(request.getfixturevalue("redis_url" if broker == "redis" else "amqp_url"))
    report = await run_flood(url, tasks_dir, start_worker, hostile=10_000, good=1_000)
    print(f"\nF6 {broker}: {report}")
    assert report.served == report.good
    assert report.rss_peak_mb < report.bound_mb
    assert DEAD_CAP <= report.dead_stored <= DEAD_CAP + 150  # capped (Redis: ~ by nodes)
