"""The CLI against careless input (issue 13, items 6-7 and "CLI input"): no broker
configured, bad URLs and options, import failures, enqueue options, dlq notes, unknown
references and the purge question: each error is one line and exit 2.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.cli.conftest import (
    assert_one_error_line,
    cli_env,
    run_cli,
    start_cli,
    stop,
    wait_for,
)


# -- item 6: no broker configured --------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["worker", "htasks:app"],
    ["enqueue", "htasks:app", "htasks.echo", "--args", '["x"]'],
    ["dlq", "list", "htasks:app", "-Q", "hq"],
    ["dlq", "inspect", "htasks:app", "-Q", "hq", "1-0"],
    ["dlq", "requeue", "htasks:app", "-Q", "hq", "--all"],
    ["dlq", "purge", "htasks:app", "-Q", "hq", "--yes"],
])
def test_the_in_process_broker_is_refused(cli_dir: Path, args: list[str]) -> None:
    done = run_cli(cli_dir, cli_env(None), *args)
    assert_one_error_line(done, "in-process memory:// broker", "ASYNCQ_BROKER",
                          "App(broker=...)")
    assert done.stdout == b""  # no task id: nothing was "sent"


# -- item 7: tracebacks instead of one line ------------------------------------------------
BAD_URLS = [
    ("redis://127.0.0.1:5672/0", "is it a Redis server?"),  # RabbitMQ's port
    ("redis://127.0.0.1:abc/0", "invalid Redis URL"),
    ("redis://127.0.0.1:99999/0", "Port out of range"),
    ("redis://[::1/0", "<unparsable url>"),
    ("redis://127.0.0.1:6379/0?socket_timeout=x", "socket_timeout"),
    ("redis://127.0.0.1:6379/0?decode_responses=1", "decode_responses"),
    ("redis://127.0.0.1:6379/0?nonsense=1", "invalid Redis URL"),
    ("rediss://127.0.0.1:6379/0?ssl_cert_reqs=bogus", "invalid Redis URL"),
    ("redis://127.0.0.1:6379/0?ssl_ca_certs=/x", "invalid Redis URL"),  # TLS option, no TLS
    ("bogus://127.0.0.1/", "no broker for URL"),
    ("amqp://guest:guest@127.0.0.1:abc/", "port"),
    ("amqp://guest:guest@127.0.0.1:5672/?queue_type=weird", "queue_type"),
    ("amqp://guest:wrong@127.0.0.1:5672/", "ACCESS_REFUSED"),
]


@pytest.mark.parametrize(("url", "needle"), BAD_URLS)
@pytest.mark.parametrize("command", [
    ["enqueue", "htasks:app", "htasks.echo", "--args", '["x"]'],
    ["dlq", "list", "htasks:app", "-Q", "hq"],
])
def test_bad_urls_are_one_line(cli_dir: Path, url: str, needle: str,
                               command: list[str]) -> None:
    done = run_cli(cli_dir, cli_env(url), *command)
    assert_one_error_line(done, needle)
    assert b"wrong" not in done.stderr


@pytest.mark.parametrize(("args", "needle"), [
    (["worker", "htasks:app", "-l", "verbose"], "-l/--log-level takes debug"),
    (["worker", "htasks:app", "-c", "0"], "--concurrency"),
    (["worker", "htasks:app", "--unsafe-server", "maybe"], "--unsafe-server takes"),
    (["worker", "htasks:app", "--bogus"], "No such option: --bogus"),
    (["worker", "htasks:app", "--lease", "inf"], "--lease takes at most 604800, not inf"),
    (["worker", "htasks:app", "--lease", "nan"], "--lease"),
    (["worker", "htasks:app", "--prefetch", "99999999999999999999"],
     "--prefetch takes at most 1000000, not 99999999999999999999"),
    (["worker", "htasks:app", "-c", "100001"], "--concurrency takes at most 100000"),
    (["worker", "htasks:app", "-w", "5000"], "--workers takes at most 1024"),
    (["worker", "htasks:app", "--shutdown-timeout", "1e300"], "--shutdown-timeout takes"),
    (["worker", "htasks:app", "--loop-lag", "inf"], "--loop-lag takes at most 86400"),
    (["worker", "htasks:app", "--max-memory-per-child", "inf"],
     "--max-memory-per-child takes at most 1048576, not inf"),
    (["frobnicate"], "No such command"),
    (["beat", "htasks:app", "-l", "verbose"], "-l/--log-level takes debug"),
    (["beat", "htasks:app", "--lease", "inf"], "--lease takes at most 86400 seconds, not inf"),
    (["dlq", "list", "htasks:app"], "Missing option '-Q'"),
    (["dlq", "list", "htasks:app", "-Q", "q", "--limit", "0"], "--limit"),
    (["dlq", "list", "htasks:app", "-Q", "q", "--limit", str(2**63)], "--limit"),
    (["dlq", "requeue", "htasks:app", "-Q", "q"], "name dead-letter references"),
    (["enqueue", "htasks:app", "htasks.echo", "--args", '{"x": 1}'],
     "--args must be a JSON array"),
    (["enqueue", "htasks:app", "htasks.echo", "--kwargs", "[1, 2]"],
     "--kwargs must be a JSON object"),
    (["enqueue", "htasks:app", "htasks.echo", "--args", "[" * 100_000], "--args must be"),
    (["enqueue", "htasks:app", "htasks.echo", "--args", "[1" + "0" * 5000 + "]"],
     "--args must be"),
    (["enqueue", "htasks:app", "htasks.echo", "--args", "not json"], "--args must be"),
    (["enqueue", "htasks:app", "htasks.echo", "--countdown", "nan"], "--countdown takes"),
    (["enqueue", "htasks:app", "htasks.echo", "--countdown", "-1"], "--countdown takes"),
    (["enqueue", "htasks:app", "htasks.echo", "--countdown", "soon"], "--countdown"),
    (["enqueue", "htasks:app", "htasks.echo", "--eta", "2030-01-01T00:00"],
     "--eta needs a time zone"),
    (["enqueue", "htasks:app", "htasks.echo", "--eta", "tomorrow"], "--eta takes an ISO-8601"),
    (["enqueue", "htasks:app", "htasks.echo", "--eta", "2030-01-01T00:00Z", "--countdown", "1"],
     "not both"),
    (["enqueue", "htasks:app", "htasks.echo", "--wait", "inf"], "--wait takes"),
    (["enqueue", "htasks:app", "htasks.echo", "--args", '["x"]', "--task-id", "bad id"],
     "invalid task id"),
    (["enqueue", "htasks:app", "htasks.echo", "--args", '["x", "y"]'], "too many"),
    (["enqueue", "htasks:app", "htasks.echo", "--args", '["x"]', "--kwargs", '{"nope": 1}'],
     "'nope'"),
])
def test_bad_options_are_one_line_and_send_nothing(cli_dir: Path, redis_url: str, queue: str,
                                                   redis_client: redis.Redis, args: list[str],
                                                   needle: str) -> None:
    done = run_cli(cli_dir, cli_env(redis_url, queue), *args)
    assert_one_error_line(done, needle)
    assert done.stdout == b""
    assert redis_client.xlen(f"asyncq:{{{queue}}}:stream") == 0


def test_unexpected_errors_are_one_line_unless_a_traceback_is_asked_for(
        cli_dir: Path) -> None:
    (cli_dir / "odd_app.py").write_text(
        "from asyncq import App\n"
        "class Odd(App):\n"
        "    @property\n"
        "    def tasks(self):\n"
        "        raise LookupError('odd \\x1b[2J')\n"
        "    @tasks.setter\n"
        "    def tasks(self, value):\n"
        "        pass\n"
        "app = Odd('odd', broker='redis://127.0.0.1:1/0')\n")
    args = ["enqueue", "odd_app:app", "t"]
    done = run_cli(cli_dir, cli_env(None), *args)
    assert_one_error_line(done, "LookupError: odd \\x1b[2J")
    shown = run_cli(cli_dir, {**cli_env(None), "ASYNCQ_TRACEBACK": "1"}, *args)
    assert shown.returncode == 2
    assert b"Traceback (most recent call last)" in shown.stderr


@pytest.mark.parametrize(("source", "needle"), [
    ("raise RuntimeError('boom \\x1b[31m')\n", "RuntimeError: boom \\x1b[31m (/"),
    ("def f(:\n", "SyntaxError: invalid syntax (/"),
    ("import asyncq_no_such_dependency\n", "No module named 'asyncq_no_such_dependency' (/"),
])
def test_an_app_module_that_fails_to_import_is_one_line_with_where(
        cli_dir: Path, source: str, needle: str) -> None:
    (cli_dir / "broken_app.py").write_text(f"x = 1\n{source}")
    for args in (["worker", "broken_app:app"], ["enqueue", "broken_app:app", "t"],
                 ["dlq", "list", "broken_app:app", "-Q", "q"]):
        done = run_cli(cli_dir, cli_env(None), *args)
        line = assert_one_error_line(done, "cannot import 'broken_app': ", needle)
        assert line.endswith("broken_app.py, line 2)")
        assert b"\x1b" not in done.stderr


# -- CLI input: enqueue options, dlq notes and unknown references ---------------------------
def test_enqueue_task_id_queue_countdown_and_eta(cli_dir: Path, redis_url: str, queue: str,
                                                 unique: Callable[[str], str],
                                                 redis_client: redis.Redis,
                                                 redis_cleanup: Callable[[str], None]) -> None:
    env = cli_env(redis_url, queue)
    other = unique("hq-other")
    redis_cleanup(other)
    done = run_cli(cli_dir, env, "enqueue", "htasks:app", "htasks.echo", "--args", '["a"]',
                   "--task-id", "my-id-1", "--queue", other)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == "my-id-1"
    assert redis_client.xlen(f"asyncq:{{{other}}}:stream") == 1
    assert redis_client.xlen(f"asyncq:{{{queue}}}:stream") == 0
    for extra in (["--countdown", "600"], ["--eta", "2031-01-01T09:00:00+02:00"],
                  ["--eta", "2031-01-01T09:00:00Z"]):
        done = run_cli(cli_dir, env, "enqueue", "htasks:app", "htasks.echo", "--args", '["b"]',
                       *extra)
        assert done.returncode == 0, done.stderr
    delayed = redis_client.zrange(f"asyncq:{{{queue}}}:delayed", 0, -1, withscores=True)
    assert len(delayed) == 3
    now_ms = time.time() * 1000
    assert 590_000 < delayed[0][1] - now_ms < 610_000
    assert delayed[1][1] == delayed[2][1] - 2 * 3600 * 1000  # +02:00 is two hours earlier


def test_dlq_list_of_a_queue_no_task_uses_says_so(cli_dir: Path, redis_url: str,
                                                 queue: str) -> None:
    done = run_cli(cli_dir, cli_env(redis_url, "hq-real"), "dlq", "list", "htasks:app", "-Q", queue)
    assert done.returncode == 0
    assert f"0 dead letter(s) in '{queue}'" in done.stdout.decode()
    assert f"note: no task of this app uses the queue '{queue}' (its tasks use: hq-real)" in (
        done.stderr.decode())
    used = run_cli(cli_dir, cli_env(redis_url, queue), "dlq", "list", "htasks:app", "-Q", queue)
    assert used.returncode == 0
    assert used.stderr == b""


def test_dlq_requeue_of_unknown_refs_fails_and_moves_nothing(
        cli_dir: Path, redis_url: str, queue: str, redis_client: redis.Redis) -> None:
    key = f"asyncq:{{{queue}}}:dead"
    known = redis_client.xadd(key, {"d": b"body", "reason": "r"}).decode()
    env = cli_env(redis_url, queue)
    done = run_cli(cli_dir, env, "dlq", "requeue", "htasks:app", "-Q", queue, known, "1-1",
                   "9-9")
    assert_one_error_line(done, "not dead letters of", "'1-1', '9-9'", "nothing requeued")
    assert redis_client.xlen(key) == 1
    bad = run_cli(cli_dir, env, "dlq", "requeue", "htasks:app", "-Q", queue, "[/]\x1b")
    assert_one_error_line(bad, "'[/]\\x1b'")
    ok = run_cli(cli_dir, env, "dlq", "requeue", "htasks:app", "-Q", queue, known)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.decode().startswith("requeued 1 message(s)")
    assert redis_client.xlen(key) == 0


def test_worker_logs_ready_with_its_queues(cli_dir: Path, redis_url: str, queue: str,
                                           unique: Callable[[str], str],
                                           redis_cleanup: Callable[[str], None]) -> None:
    second = unique("hq-second")
    redis_cleanup(second)
    worker = start_cli(cli_dir, cli_env(redis_url, queue), "worker", "htasks:app", "-l", "info",
                    "-Q", f"{queue},{second}")
    try:
        wait_for(worker, "ready:")
        text = worker.log.read_text()
        assert text.count("ready:") == 1
        assert f"INFO/MainProcess] asyncq.worker: ready: consuming {queue}, {second}" in text
        assert (f"WARNING/MainProcess] asyncq.worker: no task of this app uses the queue "
                f"'{second}' (its tasks use: {queue})") in text
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0
    finally:
        stop(worker)


def test_dlq_purge_asks_and_a_no_or_no_answer_purges_nothing(
        cli_dir: Path, redis_url: str, queue: str, redis_client: redis.Redis) -> None:
    key = f"asyncq:{{{queue}}}:dead"
    redis_client.xadd(key, {"d": b"body", "reason": "r"})
    command = [sys.executable, "-m", "asyncq", "dlq", "purge", "htasks:app", "-Q", queue]
    for answer in (b"n\n", b""):
        done = subprocess.run(command, cwd=cli_dir, env=cli_env(redis_url, queue), input=answer,
                              capture_output=True, timeout=60, check=False)
        assert_one_error_line(done, "nothing purged (answer y, or pass --yes)")
        assert redis_client.xlen(key) == 1
    done = subprocess.run(command, cwd=cli_dir, env=cli_env(redis_url, queue), input=b"y\n",
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert f"purged 1 dead letter(s) from '{queue}'" in done.stdout.decode()
    assert redis_client.xlen(key) == 0

