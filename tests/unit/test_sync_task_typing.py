"""``@app.task`` on a plain ``def`` keeps its types: checked with mypy --strict."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = '''
from typing import assert_type

from asyncq import App, TaskResult

app = App("typing")


@app.task
def resize(path: str, width: int) -> bytes:
    return b""


@app.task(retries=2)
def count(n: int) -> int:
    return n


@app.task
async def add(x: int, y: int) -> int:
    return x + y


async def main() -> None:
    assert_type(await resize.enqueue("a.png", 640), TaskResult[bytes])
    assert_type(await count.enqueue(3), TaskResult[int])
    assert_type(await resize("a.png", 640), bytes)
    assert_type(await add.enqueue(1, 2), TaskResult[int])
    await resize.enqueue(640, "a.png")  # the one error expected
'''


def test_sync_tasks_are_typed_like_async_ones(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    probe = tmp_path / "probe.py"
    probe.write_text(textwrap.dedent(PROBE))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir",
         str(tmp_path / ".mypy"), str(probe)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 2, result.stdout  # both arguments of the swapped call
    assert all('"enqueue" of "Task"' in line for line in errors), result.stdout
