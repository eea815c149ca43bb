"""Property tests over the CLI's arguments, on a real Redis app (typer's CliRunner).

Whatever the arguments, a command ends with exit 0 (and its output), or exit 2 and
exactly one ``asyncq: error:`` line on stderr: never a traceback, never another code.
"""

from __future__ import annotations

import json
import math
import re
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from asyncq.cli import cli

MODULE = '''
import os
from asyncq import App

app = App("props", broker=os.environ["P_BROKER"])


@app.task(name="props.take", queue=os.environ["P_QUEUE"])
async def take(*args, **kwargs) -> None:
    return None
'''

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
#: What a user might type: valid JSON of any shape, or any text at all.
JSON_TEXT = st.one_of(JSON_VALUES.map(json.dumps), st.text(max_size=40))
NUMBER_TEXT = st.one_of(st.floats().map(repr), st.integers().map(str), st.text(max_size=12))
OPTION_TEXT = st.text(max_size=30)
UNEXPECTED = re.compile(r"asyncq: error: [A-Z][A-Za-z0-9_]*: ")


class Cli:
    """Runs ``asyncq ...`` in process against a fresh import of the app module."""

    def __init__(self, module: str, env: dict[str, str | None]) -> None:
        self.module = module
        self.env = env
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Any:
        sys.modules.pop(self.module, None)  # a fresh App (and Redis client) each run
        return self.runner.invoke(cli, list(args), env=self.env)


@pytest.fixture
def props(tmp_path: Path, redis_url: str, redis_client: redis.Redis,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Cli, str, list[str]]]:
    module = f"props_{uuid.uuid4().hex[:8]}"
    queue = f"props-{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    queues = [queue]
    yield (Cli(module, {"P_BROKER": redis_url, "P_QUEUE": queue, "ASYNCQ_BROKER": None}),
           f"{module}:app", queues)
    sys.modules.pop(module, None)
    for name in queues:
        redis_client.delete(*(f"asyncq:{{{name}}}:{part}"
                              for part in ("stream", "delayed", "dead")))


def check(result: Any) -> None:
    """Exit 0, or exit 2 with one error line; no traceback either way."""
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 2), (result.exit_code, result.output)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("asyncq: error: ")
        # not the last-resort line of an exception no command expected ("TypeError: ...")
        assert not UNEXPECTED.match(lines[0]), lines[0]


@SETTINGS
@given(args=JSON_TEXT, kwargs=JSON_TEXT)
def test_enqueue_args_and_kwargs(props: tuple[Cli, str, list[str]], args: str,
                                 kwargs: str) -> None:
    run, app, _ = props
    result = run("enqueue", app, "props.take", "--args", args, "--kwargs", kwargs)
    check(result)
    parsed_args, parsed_kwargs = _json_or_none(args), _json_or_none(kwargs)
    if not isinstance(parsed_args, list):
        assert result.exit_code == 2
        assert "--args must be a JSON array" in result.stderr
    elif not isinstance(parsed_kwargs, dict):
        assert result.exit_code == 2
        assert "--kwargs must be a JSON object" in result.stderr
    if result.exit_code == 0:
        assert len(result.stdout.split()) == 1  # the task id, nothing else


@SETTINGS
@given(countdown=NUMBER_TEXT, eta=st.none() | OPTION_TEXT)
def test_enqueue_countdown_and_eta(props: tuple[Cli, str, list[str]], countdown: str,
                                   eta: str | None) -> None:
    run, app, _ = props
    result = run("enqueue", app, "props.take", "--countdown", countdown,
                 *(["--eta", eta] if eta is not None else []))
    check(result)
    if result.exit_code == 0:
        value = float(countdown)
        assert eta is None
        assert math.isfinite(value)
        assert value >= 0


@SETTINGS
@given(queue=OPTION_TEXT, task_id=st.none() | OPTION_TEXT)
def test_enqueue_queue_and_task_id(props: tuple[Cli, str, list[str]], queue: str,
                                   task_id: str | None) -> None:
    run, app, queues = props
    name = f"{queues[0]}-{queue}"
    queues.append(name)
    result = run("enqueue", app, "props.take", "--queue", name,
                 *(["--task-id", task_id] if task_id is not None else []))
    check(result)
    if result.exit_code == 0 and task_id is not None:
        assert result.stdout.strip() == task_id


@SETTINGS
@given(level=OPTION_TEXT)
def test_worker_log_levels(props: tuple[Cli, str, list[str]], level: str) -> None:
    """A bad -l fails first; a good one gets as far as the bad --unsafe-server after it."""
    run, app, _ = props
    result = run("worker", app, "-l", level, "--unsafe-server", "never")
    check(result)
    assert result.exit_code == 2
    if level.lower() in ("debug", "info", "warning", "error", "critical"):
        assert "--unsafe-server takes" in result.stderr
    else:
        assert "-l/--log-level takes" in result.stderr


@SETTINGS
@given(values=st.lists(NUMBER_TEXT, min_size=9, max_size=9))
def test_worker_numeric_options(props: tuple[Cli, str, list[str]], values: list[str]) -> None:
    """Whatever the numbers, the worker refuses them in one line or gets as far as the bad
    --unsafe-server after them (so no worker is left running)."""
    run, app, _ = props
    options = ["-c", "--prefetch", "--lease", "--shutdown-timeout", "--loop-lag", "-w",
               "--threads", "--max-tasks-per-child", "--max-memory-per-child"]
    pairs = [item for pair in zip(options, values, strict=True) for item in pair]
    result = run("worker", app, *pairs, "--unsafe-server", "never")
    check(result)
    assert result.exit_code == 2


@SETTINGS
@given(queue=OPTION_TEXT, refs=st.lists(OPTION_TEXT, max_size=3), limit=NUMBER_TEXT)
def test_dlq_commands(props: tuple[Cli, str, list[str]], queue: str, refs: list[str],
                      limit: str) -> None:
    run, app, queues = props
    name = f"{queues[0]}-{queue}"
    check(run("dlq", "list", app, "-Q", name, "--limit", limit))
    if refs:
        result = run("dlq", "requeue", app, "-Q", name, *refs)
        check(result)
        assert result.exit_code == 2  # the queue holds no dead letters
    check(run("dlq", "inspect", app, "-Q", name, refs[0] if refs else "0-1"))


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


