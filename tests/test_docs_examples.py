"""Docs are runnable: every example under docs/examples/ runs and prints what it says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
EXPECTED = {
    "quickstart.py": ["add: 5", "state: SUCCESS", "failed: ValueError no such customer",
                      "by id: 5"],
    "retries_and_limits.py": ["order 7 confirmed", "sku-1 in stock",
                              "cleaning up after the soft time limit",
                              "crunch: TimeoutError"],
    "routing.py": ["emails 1", "images 1", "urgent 1"],
    "testing_your_tasks.py": ["ok"],
}


def test_every_example_is_checked() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str) -> None:
    result = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    for line in EXPECTED[name]:
        assert line in result.stdout
