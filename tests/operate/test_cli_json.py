"""``--json`` on every command of the ``asyncq`` tree, and the JSON the commands without
a worker print (enqueue, revoke, dlq, beat --list, the worker's banner), on each broker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from asyncq.brokers import DeadItem
from asyncq.cli import cli
from tests.conftest import WorkerProcess
from tests.operate.conftest import forget


def _leaves(command: Any, path: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], Any]]:
    if hasattr(command, "commands"):  # a group (typer may vendor its own click)
        for name, sub in command.commands.items():
            yield from _leaves(sub, (*path, name))
    else:
        yield path, command


def test_every_command_takes_json() -> None:
    leaves = dict(_leaves(typer.main.get_command(cli)))
    assert ("dlq", "list") in leaves  # the walk reaches sub-groups
    assert len(leaves) >= 16
    missing = [" ".join(path) for path, command in leaves.items()
               if not any("--json" in param.opts for param in command.params)]
    assert missing == []


@pytest.fixture
def app_env(real_broker: str, tasks_dir: Path, unique: Callable[[str], str],
            monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The tasks module of the worker tests, imported in this process for CliRunner."""
    env = {"T_APP": unique("json"), "T_BROKER": real_broker, "T_QUEUE": unique("q"),
           "T_LEDGER": str(tasks_dir / "ledger")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(tasks_dir))
    sys.modules.pop("wtasks", None)
    yield env
    module = sys.modules.pop("wtasks", None)
    if module is not None:
        asyncio.run(forget(module.app, [env["T_QUEUE"]]))


def run(*args: str) -> Any:
    done = CliRunner().invoke(cli, list(args))
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


async def _dead_letter(queue: str, reason: str) -> None:
    """One message of ``queue`` moved to its dead letters, as a worker would."""
    import wtasks

    async with wtasks.app:
        handle = await wtasks.add.enqueue(1, 2)
        consumer = wtasks.app.broker.consumer([queue], prefetch=10, lease=5)
        deliveries: list[Any] = []
        deadline = time.monotonic() + 10
        while not deliveries and time.monotonic() < deadline:
            deliveries = list(await consumer.fetch(1, 0.5))
        await consumer.dead_letter([DeadItem(deliveries[0], reason, handle.id, "wtasks.add")])
        await consumer.close()


def test_producer_and_dead_letter_commands_print_json(app_env: dict[str, str]) -> None:
    queue = app_env["T_QUEUE"]
    sent = run("enqueue", "wtasks:app", "wtasks.add", "--args", "[1, 2]", "--json")
    assert sent["task"] == "wtasks.add"
    assert sent["queue"] == queue
    assert "result" not in sent
    revoked = run("revoke", "wtasks:app", sent["id"], "--terminate", "--json")
    assert revoked == {"revoked": [sent["id"]], "terminate": True}
    assert run("purge", "wtasks:app", "-Q", queue, "--yes", "--json")["purged"] == 1

    asyncio.run(_dead_letter(queue, "bad \x1b[31m" + "x" * 3000))
    (letter,) = run("dlq", "list", "wtasks:app", "-Q", queue, "--json")
    assert letter["task"] == "wtasks.add"
    assert letter["reason"].startswith("bad \x1b[31mxxx")  # JSON escapes it; cut at 2000
    assert letter["reason"].endswith("more]")
    assert len(letter["reason"]) < 2100
    assert letter["dead_at"] == pytest.approx(time.time(), abs=60)
    shown = run("dlq", "inspect", "wtasks:app", "-Q", queue, letter["ref"], "--json")
    assert shown["decodes"] == "yes"
    assert "args" not in shown  # only with --args
    with_args = run("dlq", "inspect", "wtasks:app", "-Q", queue, letter["ref"], "--args",
                    "--json")
    assert with_args["args"] == [1, 2]
    assert run("dlq", "requeue", "wtasks:app", "-Q", queue, "--all", "--json") == {
        "queue": queue, "requeued": 1, "not_requeued": 0}
    assert run("dlq", "list", "wtasks:app", "-Q", queue, "--json") == []
    asyncio.run(_dead_letter(queue, "again"))
    assert run("dlq", "purge", "wtasks:app", "-Q", queue, "--yes", "--json") == {
        "queue": queue, "purged": 1}


def test_beat_list_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "btasks_json.py").write_text(
        "import datetime as dt\nfrom asyncq import App\n"
        "app = App('bj', broker='memory://bj')\n"
        "@app.periodic(dt.timedelta(minutes=5))\nasync def tick() -> None:\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (entry,) = run("beat", "btasks_json:app", "--list", "--json")
    assert entry["task"] == "btasks_json.tick"
    assert set(entry) == {"name", "task", "schedule", "missed", "next"}


def test_worker_banner_and_logs_as_json(redis_url: str, unique: Callable[[str], str],
                                        start_worker: Callable[..., WorkerProcess],
                                        tasks_dir: Path) -> None:
    env = {"T_APP": unique("wj"), "T_BROKER": redis_url, "T_QUEUE": unique("q"),
           "T_LEDGER": str(tasks_dir / "ledger")}
    worker = start_worker(env, "--json")
    worker.wait_for("ready", 20)
    worker.proc.terminate()
    try:
        worker.proc.wait(20)
    except subprocess.TimeoutExpired:
        raise AssertionError(worker.text()) from None
    lines = [json.loads(line) for line in worker.text().splitlines() if line.strip()]
    banner = lines[0]
    assert banner["event"] == "worker-banner"
    assert banner["queues"] == [env["T_QUEUE"]]
    assert banner["tasks"]["wtasks.add"] == env["T_QUEUE"]
    assert any("ready" in line.get("message", "") for line in lines[1:])
