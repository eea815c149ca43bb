"""ab_phases.py cannot rot: two trees (here the same one) alternated over the enqueue
and round-trip phases give every figure for both sides, with the ratio's direction."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests._modules import ROOT


def test_the_phases_benchmark_compares_two_trees(amqp_url: str, redis_url: str,
                                                 tmp_path: Path) -> None:
    stdout, rows = _compare(tmp_path, "--rounds", "2", "--broker", amqp_url,
                            "--backend", redis_url, "--n", "1200", "--round-trips", "30")
    assert set(rows) == {"enqueue batch /s", "enqueue one at a time /s",
                         "round trip p50 ms", "round trip p99 ms"}
    for name, row in rows.items():
        assert len(row["before_runs"]) == len(row["after_runs"]) == 2
        assert min(row["before_runs"] + row["after_runs"]) > 0
        expected = (row["before"] / row["after"] if name.endswith(" ms")
                    else row["after"] / row["before"])
        assert row["ratio"] == expected
    assert "| enqueue one at a time /s |" in stdout


def test_the_drain_and_fan_in_phases_give_their_ratio(redis_url: str, tmp_path: Path) -> None:
    _, rows = _compare(tmp_path, "--rounds", "1", "--broker", redis_url, "--backend", redis_url,
                       "--phases", "drain,fan_in", "--n", "1500")
    assert set(rows) == {"drain /s", "fan-in /s", "fan-in / drain"}
    for side in ("before_runs", "after_runs"):
        [drain] = rows["drain /s"][side]
        [fan_in] = rows["fan-in /s"][side]
        [ratio] = rows["fan-in / drain"][side]
        assert min(drain, fan_in) > 0
        assert ratio == fan_in / drain


def _compare(tmp_path: Path, *options: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """ab_phases.py with this tree on both sides: its table, and its rows by figure."""
    out = tmp_path / "phases.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "ab_phases.py"), "--before", str(ROOT),
         "--after", str(ROOT), *options, "--json", str(out)],
        capture_output=True, text=True, timeout=240, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, {row["figure"]: row for row in json.loads(out.read_text())["rows"]}
