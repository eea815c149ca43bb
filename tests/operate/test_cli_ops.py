"""The operator commands against a worker started with --events, on each real broker."""

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
from click.testing import Result
from typer.testing import CliRunner

from asyncq.cli import cli
from tests.conftest import WorkerProcess, kill_live_workers
from tests.operate.conftest import forget


@pytest.fixture
def cli_in(tasks_dir: Path, monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[Callable[[dict[str, str]], None]]:
    """Run the CLI in this process (fast) on the tasks module the worker runs."""
    monkeypatch.syspath_prepend(str(tasks_dir))

    used: list[dict[str, str]] = []

    def use(env: dict[str, str]) -> None:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        sys.modules.pop("wtasks", None)
        used.append(env)

    yield use
    kill_live_workers()  # a live worker would declare its queue and exchanges again
    module = sys.modules.pop("wtasks", None)
    if module is not None:
        for env in used:
            asyncio.run(forget(module.app, [env["T_QUEUE"]]))


def asyncq(tasks_dir: Path, env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def as_json(done: Result) -> Any:
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def test_commands_against_a_running_worker(
        worker_env: dict[str, str], tasks_dir: Path, cli_in: Callable[[dict[str, str]], None],
        start_worker: Callable[..., WorkerProcess]) -> None:
    env, queue = worker_env, worker_env["T_QUEUE"]
    cli_in(env)
    run = lambda *a: asyncq(tasks_dir, env, *a)  # noqa: E731
    worker = start_worker(env, "--events-all", "--heartbeat", "0.3", "-c", "4")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        statuses = as_json(run("status", "wtasks:app", "--json", "--timeout", "0.5"))
        if statuses:
            break
    (row,) = statuses
    assert row["state"] == "online"
    assert row["queues"] == [queue]
    name = row["worker"]
    sent = run("enqueue", "wtasks:app", "wtasks.slow", "--args", "[1, 3.0]")
    task_id = sent.stdout.strip()
    time.sleep(1.0)
    active = as_json(run("inspect", "wtasks:app", "active", "--json", "--worker", name))
    assert [job["id"] for job in active[name]] == [task_id]
    assert as_json(run("control", "wtasks:app", "ping", "--json")) == {name: {"ok": "pong"}}
    depth = as_json(run("queues", "wtasks:app", "--json"))[queue]
    assert depth["waiting"] == 0
    assert depth["consumers"] >= 1
    result = as_json(run("result", "wtasks:app", task_id, "--json"))
    assert result["state"] in ("PENDING", "STARTED", "SUCCESS")
    worker.wait_for("succeeded", 10)
    if env["T_BROKER"].startswith("redis"):  # rpc:// results go to the producer only
        assert as_json(run("result", "wtasks:app", task_id, "--json"))["result"] == 1
        # and RabbitMQ keeps no event history
        deadline = time.monotonic() + 10  # events are sent every 0.25 s
        kinds: list[str] = []
        while "task-succeeded" not in kinds and time.monotonic() < deadline:
            kinds = [e["type"] for e in map(json.loads, run(
                "events", "wtasks:app", "--json", "--history", "50").stdout.splitlines())]
        assert "task-started" in kinds
        assert "task-succeeded" in kinds
    other = f"{queue}-b"
    added = as_json(run("control", "wtasks:app", "add-consumer", other, "--json"))
    assert added[name]["queues"] == [queue, other]
    last = as_json(run("control", "wtasks:app", "cancel-consumer", queue, "--json",
                       "--worker", name))
    assert "last queue" not in str(last)  # two queues now: this one may go
    assert last[name]["queues"] == [other]
    assert "last queue" in as_json(run("control", "wtasks:app", "cancel-consumer", other,
                                       "--json"))[name]["error"]
    run("control", "wtasks:app", "add-consumer", queue)
    limited = as_json(run("control", "wtasks:app", "rate-limit", "wtasks.add", "50/s",
                          "--json"))
    if env["T_BROKER"].startswith("redis"):
        assert limited == {name: {"ok": "rate limit of wtasks.add now 50/s"}}
        assert as_json(run("control", "wtasks:app", "rate-limit", "wtasks.add", "off",
                           "--json")) == {name: {"ok": "rate limit of wtasks.add now none"}}
    else:  # rpc:// results: no Redis for the shared bucket
        assert "shared through Redis" in limited[name]["error"]
    refused = run("control", "wtasks:app", "rate-limit", "wtasks.add", "fast")
    assert refused.exit_code == 2
    assert "rate_limit must look like" in refused.stderr
    assert as_json(run("control", "wtasks:app", "shutdown", "--json")) == {
        name: {"ok": "shutting down"}}
    try:
        assert worker.proc.wait(20) == 0
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the worker did not stop:\n{worker.text()}") from None
    run("enqueue", "wtasks:app", "wtasks.add", "--args", "[1, 2]")
    assert as_json(run("purge", "wtasks:app", "-Q", queue, "--yes", "--json"))["purged"] == 1
    asyncio.run(forget(sys.modules["wtasks"].app, [other]))


def test_lost_worker_is_shown_as_lost(redis_url: str, tasks_dir: Path,
                                      start_worker: Callable[..., WorkerProcess],
                                      unique: Callable[[str], str],
                                      cli_in: Callable[[dict[str, str]], None]) -> None:
    env = {"T_APP": unique("lost"), "T_BROKER": redis_url, "T_QUEUE": unique("q"),
           "T_LEDGER": str(tasks_dir / "ledger")}
    cli_in(env)
    worker = start_worker(env, "--events", "--heartbeat", "0.5")
    deadline = time.monotonic() + 20
    rows: list[dict[str, Any]] = []
    while not rows and time.monotonic() < deadline:
        rows = as_json(asyncq(tasks_dir, env, "status", "wtasks:app", "--json",
                              "--timeout", "0.2"))
    assert rows[0]["state"] == "online"
    worker.proc.kill()  # no offline event
    worker.proc.wait(10)
    deadline = time.monotonic() + 20  # lost after three missed 0.5 s heartbeats
    while True:
        (row,) = as_json(asyncq(tasks_dir, env, "status", "wtasks:app", "--json",
                                "--timeout", "0.2"))
        if row["state"] == "lost" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert row["state"] == "lost"
    text = asyncq(tasks_dir, env, "status", "wtasks:app", "--timeout", "0.2").stdout
    assert "0 online, 1 lost" in text


@pytest.mark.parametrize("hostile", ["[red]x[/red]\x1b[2J\nboom"])
def test_literal_escapes(hostile: str) -> None:
    from asyncq.cli._literal import literal

    shown = literal(hostile)
    assert "\x1b" not in shown
    assert "\n" not in shown
    assert "\\x1b" in shown
    assert shown.startswith("\\[red]")
    assert literal("a" * 1000, 50).startswith("a" * 50 + "... [950 more")


def test_worker_metrics_port_and_json_logs(
        redis_url: str, tasks_dir: Path, unique: Callable[[str], str],
        start_worker: Callable[..., WorkerProcess],
        cli_in: Callable[[dict[str, str]], None]) -> None:
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"T_APP": unique("metrics"), "T_BROKER": redis_url, "T_QUEUE": unique("q"),
           "T_LEDGER": str(tasks_dir / "ledger"), "ASYNCQ_METRICS_ADDR": "127.0.0.1"}
    cli_in(env)
    worker = start_worker(env, "--events", "--metrics-port", str(port), "--log-format",
                          "json")
    sent = asyncq(tasks_dir, env, "enqueue", "wtasks:app", "wtasks.add", "--args", "[2, 3]",
                  "--wait", "10")
    assert sent.stdout.splitlines()[-1] == "5"
    task_id = sent.stdout.splitlines()[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    line = f'asyncq_tasks_total{{outcome="succeeded",queue="{env["T_QUEUE"]}",task="wtasks.add"}}'
    assert f"{line} 1.0" in text
    deadline = time.monotonic() + 10  # and the event of the same run (events and metrics
    done: list[Any] = []  # share one pair of hooks: Observed)
    while not done and time.monotonic() < deadline:
        done = [e for e in map(json.loads, asyncq(tasks_dir, env, "events", "wtasks:app",
                                                  "--json").stdout.splitlines())
                if e.get("id") == task_id and e["type"] == "task-succeeded"]
    assert done
    worker.wait_for(task_id)
    worker.proc.terminate()
    worker.proc.wait(20)
    records = [json.loads(line) for line in worker.text().splitlines() if line.startswith("{")]
    mine = [r for r in records if r.get("task_id") == task_id]
    assert {r["message"].split(" ")[1] for r in mine} >= {"received", "succeeded"}
    assert all(r["task"] == "wtasks.add" for r in mine)
    done = next(r for r in mine if " succeeded " in r["message"])
    assert done["queue"] == env["T_QUEUE"]
    assert done["attempt"] == 0
    asyncq(tasks_dir, env, "purge", "wtasks:app", "-Q", env["T_QUEUE"], "--yes")


def test_one_metrics_port_per_worker_process(
        redis_url: str, tasks_dir: Path, unique: Callable[[str], str],
        start_worker: Callable[..., WorkerProcess]) -> None:
    import socket
    import urllib.request

    port = 0
    for _ in range(50):  # two free ports in a row
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            try:
                b.bind(("127.0.0.1", a.getsockname()[1] + 1))
            except OSError:
                continue
            port = a.getsockname()[1]
            break
    assert port, "no two free ports in a row"
    env = {"T_APP": unique("wn"), "T_BROKER": redis_url, "T_QUEUE": unique("q"),
           "T_LEDGER": str(tasks_dir / "ledger"), "ASYNCQ_METRICS_ADDR": "127.0.0.1"}
    worker = start_worker(env, "-w", "2", "--metrics-port", str(port))
    seen: set[int] = set()
    deadline = time.monotonic() + 20
    while seen != {port, port + 1} and time.monotonic() < deadline:
        for p in (port, port + 1):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{p}/metrics", timeout=2) as r:
                    if b"asyncq_tasks_in_flight" in r.read():
                        seen.add(p)
            except OSError:
                time.sleep(0.1)
    worker.proc.terminate()
    worker.proc.wait(20)
    assert seen == {port, port + 1}
