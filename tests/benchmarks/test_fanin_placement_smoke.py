"""fanin_placement.py cannot rot: one small round under each placement gives each
run's fan-in ÷ drain, where the time went, CPUs that are the placement's (the pinned
producer on none of the worker's), and medians that are those of the runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._modules import ROOT, load_file

fanin_placement = load_file("fanin_placement", "benchmarks/fanin_placement.py")

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"),
                                reason="pinning and /proc schedstat: Linux")


def test_each_placement_gives_its_ratio(redis_url: str, tmp_path: Path) -> None:
    out = tmp_path / "placement.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fanin_placement.py"), "--rounds", "1",
         "--broker", redis_url, "--drain", "800", "--enqueue", "200", "--fan-in", "400",
         "--round-trip", "20", "--no-pin-broker", "--json", str(out)],
        capture_output=True, text=True, timeout=240, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert set(figures["runs"]) == set(fanin_placement.PLACEMENTS)
    for name, [run] in figures["runs"].items():
        assert min(run["fan_in"], run["drain"]) > 0, name
        assert run["vs_drain"] == pytest.approx(run["fan_in"] / run["drain"])
        assert run["cpu_us"]["producer"] > 0
        assert run["cpu_us"]["worker"] > 0
        assert 0 <= run["idle_cores"] <= (os.cpu_count() or 1)
        assert figures["summary"][name]["vs_drain"] == run["vs_drain"]
        producer, worker = set(run["cpus"]["producer"]), set(run["cpus"]["worker"])
        if not name.startswith("pinned"):
            assert producer == worker, name  # where Linux puts them: the same CPUs
        elif len(os.sched_getaffinity(0)) > 1:
            assert producer, name
            assert worker, name
            assert not producer & worker, name  # a core of its own
    assert "| pinned uvloop | 1 |" in result.stdout


def test_the_summary_takes_medians_and_the_ratio_range() -> None:
    def run(ratio: float, fan_in: float) -> dict[str, object]:
        return {"fan_in": fan_in, "drain": fan_in / ratio, "vs_drain": ratio,
                "idle_cores": 0.5, "waiting_cores": 0.25,
                "cpu_us": {"producer": fan_in / 1e4, "worker": 7.0}}

    summary = fanin_placement.summarize({"asyncio": [run(0.7, 50_000.0), run(0.9, 70_000.0),
                                                     run(0.8, 60_000.0)]})
    assert summary["asyncio"]["vs_drain"] == 0.8
    assert (summary["asyncio"]["vs_drain_min"], summary["asyncio"]["vs_drain_max"]) == (0.7, 0.9)
    assert summary["asyncio"]["fan_in"] == 60_000.0
    assert summary["asyncio"]["cpu_us"] == {"producer": 6.0, "worker": 7.0}
    assert "| asyncio | 3 |" in fanin_placement.table(summary)
