"""reply_wait_cost.py cannot rot: its program (what callgrind counts) must run on this
tree, a few waits without valgrind. It drives the listener's own methods, so a rename
there breaks it silently otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests._modules import load_file

ROOT = Path(__file__).resolve().parents[2]


def test_the_reply_wait_program_runs_on_this_tree(redis_url: str, tmp_path: Path) -> None:
    module = load_file("reply_wait_cost", "benchmarks/reply_wait_cost.py")
    program = tmp_path / "program.py"
    program.write_text(module.PROGRAM)
    result = subprocess.run([sys.executable, str(program), "20", redis_url],
                            env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
