"""What a user's editor sees: mypy --strict on user code (options, handles, batches)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

USER_CODE = '''
import asyncq
from asyncq import App, TaskResult

app = App("typing")


@app.task
async def add(x: int, y: int) -> int:
    return x + y


async def main() -> None:
    ok: TaskResult[int] = await add.options(countdown=1, queue="q").enqueue(2, 3)
    many: list[TaskResult[int]] = await app.enqueue_many([add.s(1, 2), add.s(3, 4)])
    by_id: TaskResult[int] = app.result(ok.id, add)
    total: int = await by_id + await many[0]
    await add.options(countdwn=1).enqueue(2, 3)
    await add.enqueue("2", 3)
    wrong: TaskResult[str] = app.result(ok.id, add)
'''


def test_mypy_flags_wrong_options_and_calls_and_types_handles(tmp_path: Path) -> None:
    source = tmp_path / "user_code.py"
    source.write_text(textwrap.dedent(USER_CODE))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--config-file",
         "/dev/null", str(source)], capture_output=True, text=True, timeout=300, check=False)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    lines = sorted({int(line.split(":")[1]) for line in errors})
    code = textwrap.dedent(USER_CODE).splitlines()
    flagged = [code[n - 1].strip() for n in lines]
    assert flagged == [
        "await add.options(countdwn=1).enqueue(2, 3)",
        'await add.enqueue("2", 3)',
        "wrong: TaskResult[str] = app.result(ok.id, add)",
    ], result.stdout
    assert any("countdwn" in line for line in errors)
