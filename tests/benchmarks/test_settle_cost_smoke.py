"""settle_cost.py cannot rot: it loads settle.lua the way the broker does and passes
the writes in the script's format, so a move of the script or a change of its
arguments breaks this test (it once ran a stale path with four items per write)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("mode", [[], ["--each"], ["--hold-head"]], ids=["all", "each", "head"])
def test_settle_cost_runs_on_this_tree(redis_url: str, mode: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/settle_cost.py", "--n", "300", "--rounds", "1", *mode],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT), ASYNCQ_TEST_REDIS_URL=redis_url),
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "settle" in result.stdout
    assert "µs/task" in result.stdout
