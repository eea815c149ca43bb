"""amqp_window.py cannot rot: a small run gives both rates for each window size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_window_benchmark_runs(amqp_url: str, tmp_path: Path) -> None:
    out = tmp_path / "window.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "amqp_window.py"), "--broker", amqp_url,
         "--windows", "1,64", "--n", "300", "--rounds", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert [row["window"] for row in figures["summary"]] == [1, 64]
    for row in figures["summary"]:
        assert row["one_at_a_time_per_s"] > 0
        assert row["batch_per_s"] > 0
    assert "guest:guest" not in out.read_text()
