"""The CLI against hostile data and careless input, on the real servers (issue 13).

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
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import LIVE_WORKERS

CLI_TASKS = '''
import os
from asyncq import App

app = App(os.environ.get("H_APP", "hard"), broker=os.environ.get("H_BROKER") or None)
QUEUE = os.environ.get("H_QUEUE", "hq")


@app.task(queue=QUEUE)
async def echo(value: str) -> str:
    return value


@app.task(queue=QUEUE)
async def boom(text: str) -> None:
    raise RuntimeError(text)
'''

HOSTILE_REASON = ("[link=https://evil.test]click[/link] \x1b[31mRED\x1b]8;;http://x\x07 "
                  "\u202eevil\r\nsecond line")
NOT_AMQP = "amqp://guest:guest@127.0.0.1:6379/"  # Redis answers nothing to an AMQP header


@pytest.fixture
def cli_dir(tmp_path: Path) -> Path:
    (tmp_path / "htasks.py").write_text(textwrap.dedent(CLI_TASKS))
    return tmp_path


@pytest.fixture
def queue(unique: Callable[[str], str], redis_cleanup: Callable[[str], None]) -> str:
    name = unique("hq")
    redis_cleanup(name)
    return name


def _env(broker: str | None, queue: str = "hq") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ASYNCQ_BROKER", "ASYNCQ_BACKEND")}
    env.update(H_QUEUE=queue, H_APP=f"h{uuid.uuid4().hex[:6]}")
    if broker is not None:
        env["H_BROKER"] = broker
    return env


def run_cli(cwd: Path, env: dict[str, str], *args: str,
            timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "asyncq", *args], cwd=cwd, env=env,
                          capture_output=True, timeout=timeout, check=False)


def assert_one_error_line(done: subprocess.CompletedProcess[bytes], *needles: str) -> str:
    err = done.stderr.decode()
    assert done.returncode == 2, (done.returncode, err)
    lines = [line for line in err.splitlines() if line.startswith("asyncq: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# -- item 3: credentials in URL queries ---------------------------------------------------
def test_wrong_password_in_the_query_is_never_printed(cli_dir: Path, redis_url: str) -> None:
    secret = f"s3cret-{uuid.uuid4().hex[:8]}"
    user = f"asyncq-nobody-{uuid.uuid4().hex[:6]}"  # no such ACL user: AUTH fails
    url = f"{redis_url}?username={user}&password={secret}"
    env = _env(url)
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
    env = _env(redis_url, queue)
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
    assert redis_client.xlen(f"asyncq:{{{queue}}}:stream") == 3


def test_enqueue_wait_prints_results_and_remote_errors_literally(
        cli_dir: Path, redis_url: str, queue: str) -> None:
    env = _env(redis_url, queue)
    worker = _start(cli_dir, env, "worker", "htasks:app", "-l", "info")
    try:
        _wait_for(worker, "ready: consuming")
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
        _wait_for(worker, "htasks.boom[")
        log = worker.log.read_bytes()  # the worker's own log: escaped, one record a line
        assert b"\x1b" not in log
        assert b"\x07" not in log
        assert next(ln for ln in log.decode().splitlines() if "failed in" in ln).endswith(
            "RuntimeError: [/]\\x1b[31mred\\x1b]8;;x\\x07\\u202e\\nline")
    finally:
        _stop(worker)


# -- item 5: an AMQP URL at a non-AMQP listener; signals during a slow connect ---------------
def test_amqp_url_at_a_non_amqp_listener_fails_within_the_deadline(cli_dir: Path) -> None:
    started = time.monotonic()
    done = run_cli(cli_dir, _env(NOT_AMQP), "worker", "htasks:app", timeout=40)
    elapsed = time.monotonic() - started
    assert_one_error_line(done, "RabbitMQ at amqp://guest:***@127.0.0.1:6379/ is unavailable",
                          "is it a RabbitMQ server?")
    assert elapsed < 25, elapsed  # the connect deadline is 10 s


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_a_worker_that_is_still_connecting(cli_dir: Path,
                                                          signum: signal.Signals) -> None:
    worker = _start(cli_dir, _env(NOT_AMQP), "worker", "htasks:app")
    try:
        _wait_for(worker, "tasks:")  # the banner: it is connecting now (for up to 10 s)
        time.sleep(0.5)
        sent = time.monotonic()
        worker.send_signal(signum)
        code = worker.wait(8)
        assert time.monotonic() - sent < 5
        text = worker.log.read_text()
        assert code == 0, text
        assert f"{signum.name} received while starting: stopping" in text
        assert "Traceback" not in text
    finally:
        _stop(worker)


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
    done = run_cli(cli_dir, _env(None), *args)
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
    done = run_cli(cli_dir, _env(url), *command)
    assert_one_error_line(done, needle)
    assert b"wrong" not in done.stderr


@pytest.mark.parametrize(("args", "needle"), [
    (["worker", "htasks:app", "-l", "verbose"], "-l/--log-level takes debug"),
    (["worker", "htasks:app", "-c", "0"], "--concurrency"),
    (["worker", "htasks:app", "--unsafe-server", "maybe"], "--unsafe-server takes"),
    (["worker", "htasks:app", "--bogus"], "No such option: --bogus"),
    (["frobnicate"], "No such command"),
    (["dlq", "list", "htasks:app"], "Missing option '-Q'"),
    (["dlq", "list", "htasks:app", "-Q", "q", "--limit", "0"], "--limit"),
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
    done = run_cli(cli_dir, _env(redis_url, queue), *args)
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
    done = run_cli(cli_dir, _env(None), *args)
    assert_one_error_line(done, "LookupError: odd \\x1b[2J")
    shown = run_cli(cli_dir, {**_env(None), "ASYNCQ_TRACEBACK": "1"}, *args)
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
        done = run_cli(cli_dir, _env(None), *args)
        line = assert_one_error_line(done, "cannot import 'broken_app': ", needle)
        assert line.endswith("broken_app.py, line 2)")
        assert b"\x1b" not in done.stderr


# -- CLI input: enqueue options, dlq notes and unknown references ---------------------------
def test_enqueue_task_id_queue_countdown_and_eta(cli_dir: Path, redis_url: str, queue: str,
                                                 unique: Callable[[str], str],
                                                 redis_client: redis.Redis,
                                                 redis_cleanup: Callable[[str], None]) -> None:
    env = _env(redis_url, queue)
    other = unique("hq-other")
    redis_cleanup(other)
    done = run_cli(cli_dir, env, "enqueue", "htasks:app", "htasks.echo", "--args", '["a"]',
                   "--task-id", "my-id-1", "--queue", other)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == "my-id-1"
    assert redis_client.xlen(f"asyncq:{{{other}}}:stream") == 1
    assert redis_client.xlen(f"asyncq:{{{queue}}}:stream") == 0
    for extra in (["--countdown", "600"], ["--eta", "2099-01-01T09:00:00+02:00"],
                  ["--eta", "2099-01-01T09:00:00Z"]):
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
    done = run_cli(cli_dir, _env(redis_url, "hq-real"), "dlq", "list", "htasks:app", "-Q", queue)
    assert done.returncode == 0
    assert f"0 dead letter(s) in '{queue}'" in done.stdout.decode()
    assert f"note: no task of this app uses the queue '{queue}' (its tasks use: hq-real)" in (
        done.stderr.decode())
    used = run_cli(cli_dir, _env(redis_url, queue), "dlq", "list", "htasks:app", "-Q", queue)
    assert used.returncode == 0
    assert used.stderr == b""


def test_dlq_requeue_of_unknown_refs_fails_and_moves_nothing(
        cli_dir: Path, redis_url: str, queue: str, redis_client: redis.Redis) -> None:
    key = f"asyncq:{{{queue}}}:dead"
    known = redis_client.xadd(key, {"d": b"body", "reason": "r"}).decode()
    env = _env(redis_url, queue)
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
    worker = _start(cli_dir, _env(redis_url, queue), "worker", "htasks:app", "-l", "info",
                    "-Q", f"{queue},{second}")
    try:
        _wait_for(worker, "ready:")
        text = worker.log.read_text()
        assert text.count("ready:") == 1
        assert f"INFO/MainProcess] asyncq.worker: ready: consuming {queue}, {second}" in text
        assert (f"WARNING/MainProcess] asyncq.worker: no task of this app uses the queue "
                f"'{second}' (its tasks use: {queue})") in text
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0
    finally:
        _stop(worker)


# -- helpers: a worker process with its output in a file ----------------------------------
class _Proc(subprocess.Popen[bytes]):
    log: Path


def _start(cwd: Path, env: dict[str, str], *args: str) -> _Proc:
    log = cwd / f"cli-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as out:
        proc = _Proc([sys.executable, "-m", "asyncq", *args], cwd=cwd, env=env, stdout=out,
                     stderr=subprocess.STDOUT)
    proc.log = log
    LIVE_WORKERS.append(proc)
    return proc


def _wait_for(proc: _Proc, needle: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in proc.log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not in:\n{proc.log.read_text(errors='replace')}")


def _stop(proc: _Proc) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


# -- `-w N`: a failed start is not restarted forever; a crash still is --------------------
def test_supervisor_stops_when_its_workers_cannot_start(cli_dir: Path) -> None:
    started = time.monotonic()
    done = run_cli(cli_dir, _env("redis://127.0.0.1:1/0"), "worker", "htasks:app", "-w", "2",
                   timeout=60)
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert time.monotonic() - started < 30
    assert 1 <= err.count("asyncq: error: Redis broker at redis://127.0.0.1:1/0") <= 2
    assert "failed to start; stopping" in err
    assert "restarting" not in err


def test_supervisor_restarts_a_killed_worker(cli_dir: Path, redis_url: str,
                                             queue: str) -> None:
    supervisor = _start(cli_dir, _env(redis_url, queue), "worker", "htasks:app", "-w", "2",
                        "-l", "info")
    try:
        _wait_until(lambda: supervisor.log.read_text().count("ready: consuming") == 2)
        children = Path(f"/proc/{supervisor.pid}/task/{supervisor.pid}/children").read_text()
        victim = int(children.split()[0])
        os.kill(victim, signal.SIGKILL)
        _wait_until(lambda: supervisor.log.read_text().count("ready: consuming") == 3)
        assert f"worker process {victim} exited with -9; restarting" in (
            supervisor.log.read_text())
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(30) == 0
    finally:
        _stop(supervisor)


def _wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


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
            env = _env(amqp_url, queue)
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


def test_dlq_purge_asks_and_a_no_or_no_answer_purges_nothing(
        cli_dir: Path, redis_url: str, queue: str, redis_client: redis.Redis) -> None:
    key = f"asyncq:{{{queue}}}:dead"
    redis_client.xadd(key, {"d": b"body", "reason": "r"})
    command = [sys.executable, "-m", "asyncq", "dlq", "purge", "htasks:app", "-Q", queue]
    for answer in (b"n\n", b""):
        done = subprocess.run(command, cwd=cli_dir, env=_env(redis_url, queue), input=answer,
                              capture_output=True, timeout=60, check=False)
        assert_one_error_line(done, "nothing purged (answer y, or pass --yes)")
        assert redis_client.xlen(key) == 1
    done = subprocess.run(command, cwd=cli_dir, env=_env(redis_url, queue), input=b"y\n",
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert f"purged 1 dead letter(s) from '{queue}'" in done.stdout.decode()
    assert redis_client.xlen(key) == 0
