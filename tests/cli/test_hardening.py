"""The CLI against hostile data (issue 13, items 3-5): credentials in URLs, broker data
printed literally, connects that cannot succeed, signals, `-w N` start failures.

Every command runs as a subprocess through pipes, as an operator's terminal or a script
would run it: what reaches stdout/stderr is asserted byte for byte where it matters.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.cli.conftest import (
    HOSTILE_REASON,
    NOT_AMQP,
    assert_one_error_line,
    cli_env,
    run_cli,
    start_cli,
    stop,
    wait_for,
    wait_until,
)


# -- item 3: credentials in URL queries ---------------------------------------------------
def test_wrong_password_in_the_query_is_never_printed(cli_dir: Path, redis_url: str) -> None:
    secret = f"s3cret-{uuid.uuid4().hex[:8]}"
    user = f"asyncq-nobody-{uuid.uuid4().hex[:6]}"  # no such ACL user: AUTH fails
    url = f"{redis_url}?username={user}&password={secret}"
    env = cli_env(url)
    for args in (["enqueue", "htasks:app", "htasks.echo", "--args", '["x"]'],
                 ["worker", "htasks:app"],
                 ["dlq", "list", "htasks:app", "-Q", "hq"]):
        done = run_cli(cli_dir, env, *args)
        line = assert_one_error_line(done, "password=***", "invalid username-password pair")
        assert line.startswith("asyncq: error: Redis broker at redis://")
        assert secret.encode() not in done.stdout + done.stderr
    banner = run_cli(cli_dir, env, "worker", "htasks:app").stderr.decode()
    assert " broker:       redis://" in banner
    assert "password=***" in banner
    repr_ = subprocess.run([sys.executable, "-c", "import htasks; print(repr(htasks.app))"],
                           cwd=cli_dir, env=env, capture_output=True, text=True, check=True)
    assert "password=***" in repr_.stdout
    assert secret not in repr_.stdout


# -- item 4: broker data printed literally ------------------------------------------------
def _forge_dead_letters(client: redis.Redis, queue: str) -> list[str]:
    key = f"asyncq:{{{queue}}}:dead"
    refs = [
        client.xadd(key, {"d": b"junk", "reason": HOSTILE_REASON, "id": "abc", "task": "[/]",
                          "deliveries": "lots", "at": "nan"}),
        client.xadd(key, {"reason": b"\xff\xfe not utf-8", "task": "[bold]x\x1b[2J",
                          "deliveries": "9" * 5000, "at": "1e400"}),
        client.xadd(key, {"d": b"x", "at": "-99999999999999999", "task": ":smile:"}),
        client.xadd(key, {"d": b"x", "reason": "A" * 5000}),
        client.xadd(key, {"unrelated": "field"}),
    ]
    return [ref.decode() for ref in refs]


def test_dlq_prints_forged_dead_letters_literally(cli_dir: Path, redis_url: str, queue: str,
                                                  redis_client: redis.Redis) -> None:
    refs = _forge_dead_letters(redis_client, queue)
    env = cli_env(redis_url, queue)
    listed = run_cli(cli_dir, env, "dlq", "list", "htasks:app", "-Q", queue)
    assert listed.returncode == 0, listed.stderr
    out = listed.stdout.decode()
    assert b"\x1b" not in listed.stdout + listed.stderr
    assert b"\x07" not in listed.stdout
    for text in ("[/]", "[bold]x\\x1b[2J", ":smile:", "[link=https://evil.test]click[/link]",
                 "\\x1b[31mRED\\x1b]8;;http://x\\x07", "\\u202eevil", "\\r\\nsecond",
                 "\ufffd\ufffd not utf-8", "4800 more characters", "5 dead letter(s)"):
        assert text in out, text
    assert "A" * 201 not in out  # a field is cut at 200 characters

    inspected = run_cli(cli_dir, env, "dlq", "inspect", "htasks:app", "-Q", queue, refs[0])
    assert inspected.returncode == 0, inspected.stderr
    assert b"\x1b" not in inspected.stdout + inspected.stderr
    assert "'task': '[/]'" in inspected.stdout.decode()
    assert "\\x1b[31mRED" in inspected.stdout.decode()

    requeued = run_cli(cli_dir, env, "dlq", "requeue", "htasks:app", "-Q", queue, "--all")
    assert requeued.returncode == 0, requeued.stderr
    assert requeued.stdout.decode().startswith("requeued 3 message(s)")  # 2 have no body
    assert "note: 2 dead letter(s) not requeued: no message body" in requeued.stderr.decode()
    assert redis_client.xlen(f"asyncq:{{{queue}}}:stream") == 3


def test_enqueue_wait_prints_results_and_remote_errors_literally(
        cli_dir: Path, redis_url: str, queue: str) -> None:
    env = cli_env(redis_url, queue)
    worker = start_cli(cli_dir, env, "worker", "htasks:app", "-l", "info")
    try:
        wait_for(worker, "ready: consuming")
        hostile = "[/]\x1b[31mred\x1b]8;;x\x07\u202e\nline"
        echoed = run_cli(cli_dir, env, "enqueue", "htasks:app", "htasks.echo",
                         "--args", json.dumps([hostile]), "--wait", "30")
        assert echoed.returncode == 0, echoed.stderr
        lines = echoed.stdout.decode().splitlines()
        assert len(lines) == 2
        assert json.loads(lines[1]) == hostile
        failed = run_cli(cli_dir, env, "enqueue", "htasks:app", "htasks.boom",
                         "--args", json.dumps([hostile]), "--wait", "30")
        line = assert_one_error_line(failed, "RuntimeError: [/]\\x1b[31mred",
                                     "\\u202e\\nline")
        for done in (echoed, failed):
            assert b"\x1b" not in done.stdout + done.stderr
        assert line
        wait_for(worker, "htasks.boom[")
        log = worker.log.read_bytes()  # the worker's own log: escaped, one record a line
        assert b"\x1b" not in log
        assert b"\x07" not in log
        assert next(ln for ln in log.decode().splitlines() if "failed in" in ln).endswith(
            "RuntimeError: [/]\\x1b[31mred\\x1b]8;;x\\x07\\u202e\\nline")
    finally:
        stop(worker)


# -- item 5: an AMQP URL at a non-AMQP listener; signals during a slow connect ---------------
def test_amqp_url_at_a_non_amqp_listener_fails_within_the_deadline(cli_dir: Path) -> None:
    started = time.monotonic()
    done = run_cli(cli_dir, cli_env(NOT_AMQP), "worker", "htasks:app", timeout=40)
    elapsed = time.monotonic() - started
    assert_one_error_line(done, "RabbitMQ at amqp://guest:***@127.0.0.1:6379/ is unavailable",
                          "is it a RabbitMQ server?")
    assert elapsed < 25, elapsed  # the connect deadline is 10 s


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("command", [["worker"], ["worker", "--beat"], ["beat"]])
def test_a_signal_stops_a_worker_that_is_still_connecting(cli_dir: Path, command: list[str],
                                                          signum: signal.Signals) -> None:
    worker = start_cli(cli_dir, cli_env(NOT_AMQP), command[0], "htasks:app", *command[1:],
                       "-l", "debug")
    try:
        wait_for(worker, "Starting connection factory")  # aio-pika: connecting (up to 10 s)
        sent = time.monotonic()
        worker.send_signal(signum)
        code = worker.wait(8)
        assert time.monotonic() - sent < 5
        text = worker.log.read_text()
        assert code == 0, text
        assert f"{signum.name} received while starting: stopping" in text
        assert "Traceback" not in text
    finally:
        stop(worker)


UVICORN_APP = '''
from asyncq import App
from asyncq.brokers.amqp import AmqpBroker

app = App("lifespan", broker=AmqpBroker("{url}", timeout=3))


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()  # lifespan.startup
        try:
            async with app:
                await send({{"type": "lifespan.startup.complete"}})
                await receive()
        except Exception as exc:
            await send({{"type": "lifespan.startup.failed", "message": repr(exc)}})
            return
        await send({{"type": "lifespan.shutdown.complete"}})
'''


def test_uvicorn_exits_when_lifespan_startup_cannot_connect(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    (tmp_path / "lifespan_app.py").write_text(UVICORN_APP.format(url=NOT_AMQP))
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "uvicorn", "lifespan_app:asgi", "--port", "0",
                           "--lifespan", "on"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=40, check=False)
    assert done.returncode != 0
    assert time.monotonic() - started < 20  # the broker's deadline is 3 s
    assert "BrokerUnavailable" in done.stderr
    assert "guest:guest" not in done.stderr


# -- `-w N`: a failed start is not restarted forever; a crash still is --------------------
def test_supervisor_stops_when_its_workers_cannotstart_cli(cli_dir: Path) -> None:
    started = time.monotonic()
    done = run_cli(cli_dir, cli_env("redis://127.0.0.1:1/0"), "worker", "htasks:app", "-w", "2",
                   timeout=60)
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert time.monotonic() - started < 30
    assert 1 <= err.count("asyncq: error: Redis broker at redis://127.0.0.1:1/0") <= 2
    assert "failed to start; stopping" in err
    assert "restarting" not in err


def test_supervisor_restarts_a_killed_worker(cli_dir: Path, redis_url: str,
                                             queue: str) -> None:
    supervisor = start_cli(cli_dir, cli_env(redis_url, queue), "worker", "htasks:app", "-w", "2",
                        "-l", "info")
    try:
        wait_until(lambda: supervisor.log.read_text().count("ready: consuming") == 2)
        children = Path(f"/proc/{supervisor.pid}/task/{supervisor.pid}/children").read_text()
        victim = int(children.split()[0])
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: supervisor.log.read_text().count("ready: consuming") == 3)
        assert f"worker process {victim} exited with -9; restarting" in (
            supervisor.log.read_text())
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(30) == 0
    finally:
        stop(supervisor)


async def test_dlq_prints_forged_amqp_dead_letters_literally(cli_dir: Path, amqp_url: str,
                                                              unique: Callable[[str], str]
                                                              ) -> None:
    from aiormq import spec

    from asyncq import App

    queue = unique("hq-amqp")
    app = App("forger", broker=amqp_url)
    async with app:
        broker: Any = app.broker
        await broker.layout.queue(queue)
        headers = {"x-asyncq-reason": HOSTILE_REASON, "x-asyncq-task": "[/]\x1b[2J",
                   "x-asyncq-task-id": "\u202e\x00", "x-asyncq-deliveries": "lots",
                   "x-asyncq-dead-at": "nan"}
        await broker.send("", f"{queue}.dead", b"junk",
                          spec.Basic.Properties(headers=headers, message_id="[link=x]r\x1b"))
        try:
            env = cli_env(amqp_url, queue)
            listed = await asyncio.to_thread(run_cli, cli_dir, env, "dlq", "list", "htasks:app",
                                             "-Q", queue)
            assert listed.returncode == 0, listed.stderr
            assert b"\x1b" not in listed.stdout + listed.stderr
            out = listed.stdout.decode()
            for text in ("[/]\\x1b[2J", "[link=x]r\\x1b", "\\x1b[31mRED", "\\u202e\\x00",
                         "1 dead letter(s)"):
                assert text in out, text
            requeued = await asyncio.to_thread(run_cli, cli_dir, env, "dlq", "requeue",
                                               "htasks:app", "-Q", queue, "--all")
            assert requeued.returncode == 0, requeued.stderr
            assert requeued.stdout.decode().startswith("requeued 1 message(s)")
        finally:
            await broker.delete_queue(queue)




def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_connecting(pid: int, port: int, timeout: float = 30.0) -> None:
    """Until process ``pid`` has a TCP connection to ``port`` (its import can take over
    1.5 s on a loaded machine: a fixed sleep sent the signal while it imported)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _connected_to(pid, port):
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} did not connect to port {port}")


def _connected_to(pid: int, port: int) -> bool:
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:  # an fd closed meanwhile: look again
        return False
    inodes = {link[8:-1] for link in links if link.startswith("socket:[")}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in f.read().splitlines()[1:]:
                fields = row.split()
                if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                    return True
    return False


@pytest.mark.parametrize("args", [["enqueue", "htasks:app", "htasks.echo", "--args", '["x"]'],
                                  ["dlq", "list", "htasks:app", "-Q", "hq"]])
def test_ctrl_c_stops_a_command_that_is_still_connecting(cli_dir: Path,
                                                         args: list[str]) -> None:
    # SIGINT as a terminal leaves it: a suite run in the background (`./.ci/run &`)
    # ignores it, and an ignored SIGINT is inherited (the command then rightly ignores it)
    with subprocess.Popen([sys.executable, "-m", "asyncq", *args], cwd=cli_dir,
                          env=cli_env(NOT_AMQP), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, preexec_fn=_default_sigint) as proc:
        try:
            _wait_connecting(proc.pid, 6379)  # it connects for up to 10 s
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=8)
            assert proc.returncode == 130
            assert time.monotonic() - sent < 5
            assert out == b""  # nothing was sent, no id printed
        finally:
            if proc.poll() is None:
                proc.kill()


@pytest.mark.parametrize("extra", [[], ["-w", "2"]], ids=["worker", "supervisor"])
def test_sigterm_right_at_the_banner_stops_the_worker_cleanly(cli_dir: Path, redis_url: str,
                                                              queue: str, extra: list[str]
                                                              ) -> None:
    """The banner is printed before the event loop installs the worker's signal handlers;
    a supervisor (or a test) that sends SIGTERM as soon as it shows must get a clean stop
    (status 0), not a process ended by the default action (-15). The banner is read from
    a pipe and the signal sent the moment it arrives, inside that window."""
    argv = [sys.executable, "-m", "asyncq", "worker", "htasks:app", "-l", "info", *extra]
    for _ in range(3):
        with subprocess.Popen(argv, cwd=cli_dir, env=cli_env(redis_url, queue),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as worker:
            assert worker.stderr is not None
            try:
                first = worker.stderr.readline()
                assert b"asyncq@" in first, first
                worker.send_signal(signal.SIGTERM)
                rest = worker.stderr.read()
                assert worker.wait(30) == 0, (first + rest).decode(errors="replace")
            finally:
                if worker.poll() is None:
                    worker.kill()
