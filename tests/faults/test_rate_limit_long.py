"""Rate limit accuracy over 30 s, two worker processes (``-m faults``; the default
suite runs a 5 s version, tests/integration/test_rate_limit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_rate_limit import measure_two_workers


@pytest.mark.faults
@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", ["redis", "amqp"])
def test_rate_limit_over_30_seconds(kind: str, tmp_path: Path, redis_url: str,
                                    request: pytest.FixtureRequest) -> None:
    broker = redis_url if kind == "redis" else str(request.getfixturevalue("amqp_url"))
    backend = None if kind == "redis" else redis_url
    runs, rate, per_process = measure_two_workers(tmp_path, broker, backend, rate=20,
                                                  seconds=30)
    print(f"{kind}: {runs} runs in 30 s, {rate:.3f}/s for a limit of 20/s "
          f"({(rate - 20) / 20:+.2%}), per process {sorted(per_process.values())}")
    assert abs(rate - 20) / 20 < 0.10
    assert len(per_process) == 2
