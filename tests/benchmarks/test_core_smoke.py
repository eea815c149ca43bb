"""The benchmark harness cannot rot: a small run must produce every figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "benchmarks" / "core.py"


@pytest.mark.parametrize("fixture", ["redis_url", "amqp_url"])
def test_core_benchmark_smoke(fixture: str, request: pytest.FixtureRequest,
                              tmp_path: Path) -> None:
    url = str(request.getfixturevalue(fixture))
    out = tmp_path / "core.json"
    result = subprocess.run(
        [sys.executable, str(CORE), "--broker", url, "--drain", "300", "--enqueue", "300",
         "--round-trip", "30", "--concurrency", "20", "--fan-in", "300", "--inflight", "50",
         "--json", str(out)],
        capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    for workload in ("enqueue_concurrent", "enqueue_batch", "drain", "drain_backlog_first"):
        assert figures[workload]["per_s"] > 0, workload
    assert 0 < figures["round_trip"]["p50_ms"] <= figures["round_trip"]["p99_ms"]
    # a small fan-in (its default is 20,000 calls: most of the smoke's time when it ran)
    assert figures["fan_in"]["tasks"] == 300
    assert figures["fan_in"]["per_s"] > 0
    assert figures["fan_in"]["vs_drain"] > 0
    assert "guest:guest" not in out.read_text()
