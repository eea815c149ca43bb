"""reply_wait_cost.py cannot rot: its program (what callgrind counts) must run on this
tree, a few waits without valgrind. It drives the listener's own methods, so a rename
there breaks it silently otherwise."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_reply_wait_program_runs_on_this_tree(redis_url: str, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "reply_wait_cost", ROOT / "benchmarks" / "reply_wait_cost.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    program = tmp_path / "program.py"
    program.write_text(module.PROGRAM)
    result = subprocess.run([sys.executable, str(program), "20", redis_url],
                            env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
