#!/usr/bin/env python3
"""Make Redis and RabbitMQ reachable for the asyncq tests, then run a command.

Usage: python scripts/servers.py [--redis] [--amqp] -- CMD [ARGS...]

Both servers are handled unless --redis or --amqp narrows the choice.  For each one
the first of these that works wins:

1. ``$ASYNCQ_TEST_REDIS_URL`` / ``$ASYNCQ_TEST_AMQP_URL`` is set: it is used as is.
2. A server answers on 127.0.0.1:6379 (RESP ``PING``) / 127.0.0.1:5672 (AMQP protocol
   header).  ``$ASYNCQ_PROBE_REDIS_ADDR`` / ``$ASYNCQ_PROBE_AMQP_ADDR`` (``host:port``)
   probe another address instead.
3. A throwaway ``redis-server`` / ``rabbitmq-server`` is started on free loopback
   ports with all its files in a temporary directory.  When the program is missing
   and we are root on Debian, it is installed with apt-get first.

CMD then runs with both URL variables exported and its exit status is passed on.
Whatever this script started is stopped and its directory removed afterwards, also
after Ctrl-C or SIGTERM.  Stdlib only, so that it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

PREFIX = "asyncq tests:"
LOOPBACK = "127.0.0.1"
PROBE_TIMEOUT = 1.0
REDIS_BOOT_TIMEOUT = 10.0
AMQP_BOOT_TIMEOUT = 90.0
EPMD_BOOT_TIMEOUT = 5.0
STOP_TIMEOUT = 30.0
CHILD_GRACE = 10.0
RESP_PING = b"*1\r\n$4\r\nPING\r\n"
AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
AMQP_METHOD_FRAME = 0x01
LOG_TAIL_LINES = 15
EXTRA_BIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")
# Debian's /usr/sbin/rabbitmq-server is a wrapper that su's to the rabbitmq user and
# ignores our directories; the real start script lives here.
DEBIAN_RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")

Address = tuple[str, int]
Process = subprocess.Popen[bytes]
Stack = contextlib.ExitStack[None]


class Interrupted(BaseException):
    """Raised in the main thread when SIGTERM or SIGHUP arrives."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class BootError(Exception):
    """A throwaway server did not come up; the message says why, in a few words."""


@dataclass(frozen=True)
class Server:
    """How to find, probe, install and start one kind of server."""

    name: str
    url_env: str
    probe_env: str
    default_addr: Address
    program: str
    package: str
    probe: Callable[[Address], bool]
    url_for: Callable[[Address], str]
    start: Callable[[str, Stack], str]
    search_first: tuple[Path, ...] = ()


# --------------------------------------------------------------------------- output


def say(message: str, end: str = "\n") -> None:
    print(f"{PREFIX} {message}", end=end, file=sys.stderr, flush=True)


def fail(message: str, logs: Sequence[Path] = ()) -> NoReturn:
    say(message)
    for log in logs:
        for line in tail(log):
            print(f"  | {line}", file=sys.stderr)
    raise SystemExit(2)


def tail(path: Path) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [f"{path.name}: {line}" for line in text.splitlines()[-LOG_TAIL_LINES:]]


def mask(url: str) -> str:
    """Return ``url`` with any password (or lone token) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    hidden = f"{user}:***" if colon else "***"
    return urlunsplit(parts._replace(netloc=f"{hidden}@{hostport}"))


# --------------------------------------------------------------------------- probes


def exchange(addr: Address, request: bytes) -> bytes:
    """Send ``request`` to ``addr`` and return the first bytes of the reply, or b""."""
    try:
        with socket.create_connection(addr, timeout=PROBE_TIMEOUT) as sock:
            sock.sendall(request)
            return sock.recv(64)
    except OSError:
        return b""


def redis_answers(addr: Address) -> bool:
    return exchange(addr, RESP_PING).startswith(b"+PONG")


def amqp_answers(addr: Address) -> bool:
    reply = exchange(addr, AMQP_HEADER)
    return len(reply) > 0 and reply[0] == AMQP_METHOD_FRAME


def port_open(addr: Address) -> bool:
    try:
        with socket.create_connection(addr, timeout=PROBE_TIMEOUT):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def parse_addr(text: str) -> Address:
    host, _, port = text.strip().rpartition(":")
    if not host or not port.isdigit():
        fail(f"bad host:port {text!r} in a probe address variable")
    return host.strip("[]"), int(port)


def probe_addr(server: Server) -> Address:
    override = os.environ.get(server.probe_env)
    return parse_addr(override) if override else server.default_addr


# --------------------------------------------------------------------------- programs


def find_program(server: Server) -> str | None:
    for candidate in server.search_first:
        if os.access(candidate, os.X_OK):
            return str(candidate)
    path = os.pathsep.join([os.environ.get("PATH", os.defpath), *EXTRA_BIN_DIRS])
    return shutil.which(server.program, path=path)


def can_apt_install() -> bool:
    return (
        Path("/etc/debian_version").exists()
        and os.geteuid() == 0
        and shutil.which("apt-get") is not None
    )


@functools.cache
def apt_update() -> None:
    subprocess.run(["apt-get", "update", "-qq"], stdout=sys.stderr, check=False)


def apt_install(package: str) -> None:
    say(f"{package} is not installed; installing it with apt-get")
    apt_update()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    argv = ["apt-get", "install", "-y", "-qq", package]
    subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=sys.stderr, check=False)


def ensure_program(server: Server) -> str | None:
    program = find_program(server)
    if program is None and can_apt_install():
        apt_install(server.package)
        program = find_program(server)
    return program


# --------------------------------------------------------------------------- processes


def make_workdir(stack: Stack, name: str) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix=f"asyncq-{name}-"))
    stack.callback(shutil.rmtree, workdir, ignore_errors=True)
    return workdir


def spawn(
    argv: Sequence[str],
    workdir: Path,
    log: Path,
    stack: Stack,
    env: Mapping[str, str] | None = None,
) -> Process:
    """Start ``argv`` in its own session, output to ``log``; stop it when ``stack`` closes."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack.callback(stop, proc)
    return proc


def stop(proc: Process) -> None:
    """SIGTERM the process, wait, then SIGKILL whatever is left of its process group."""
    if proc.poll() is None:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_TIMEOUT)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def wait_until(proc: Process, ready: Callable[[], bool], timeout: float) -> float:
    """Poll ``ready`` until it holds; return the seconds it took."""
    started = time.monotonic()
    while not ready():
        if proc.poll() is not None:
            raise BootError(f"exited with status {proc.returncode} before answering")
        if time.monotonic() - started > timeout:
            raise BootError(f"did not answer within {timeout:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - started


def boot(
    what: str, proc: Process, ready: Callable[[], bool], timeout: float, logs: Sequence[Path]
) -> None:
    """Wait for a just-started server, finishing the "starting ..." line either way."""
    try:
        took = wait_until(proc, ready, timeout)
    except BootError as exc:
        print(file=sys.stderr)
        fail(f"the throwaway {what} {exc}; its log ends with:", logs)
    print(f" ready in {took:.1f} s", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- redis


def start_redis(program: str, stack: Stack) -> str:
    workdir = make_workdir(stack, "redis")
    addr = (LOOPBACK, free_port())
    url = f"redis://{addr[0]}:{addr[1]}/0"
    argv = [program, "--port", str(addr[1]), "--bind", LOOPBACK, "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(workdir)]
    log = workdir / "redis.log"
    say(f"Redis: starting a throwaway redis-server at {url} ...", end="")
    proc = spawn(argv, workdir, log, stack)
    boot("redis-server", proc, lambda: redis_answers(addr), REDIS_BOOT_TIMEOUT, [log])
    return url


# --------------------------------------------------------------------------- rabbitmq


def start_epmd(workdir: Path, stack: Stack) -> dict[str, str]:
    """Run a private epmd so that none is left behind; {} lets Erlang use the usual one."""
    program = shutil.which("epmd")
    if program is None:
        return {}
    addr = (LOOPBACK, free_port())
    log = workdir / "epmd.log"
    proc = spawn([program, "-port", str(addr[1]), "-address", LOOPBACK], workdir, log, stack)
    try:
        wait_until(proc, lambda: port_open(addr), EPMD_BOOT_TIMEOUT)
    except BootError as exc:
        fail(f"the throwaway epmd {exc}; its log ends with:", [log])
    return {"ERL_EPMD_PORT": str(addr[1])}


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def rabbitmq_files(workdir: Path, config: str = "") -> dict[str, str]:
    """Point every file and directory RabbitMQ uses into ``workdir``.

    ``config`` is appended to rabbitmq.conf (the TLS tests add an SSL listener with it).
    """
    return {
        "HOME": str(workdir),  # the Erlang cookie goes to $HOME/.erlang.cookie
        "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
        "RABBITMQ_LOG_BASE": str(workdir / "log"),
        "RABBITMQ_PID_FILE": str(workdir / "rabbitmq.pid"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": write(workdir / "enabled_plugins", "[].\n"),
        "RABBITMQ_CONFIG_FILE": write(workdir / "rabbitmq.conf",
                                       "log.console = false\n" + config),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(workdir / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": write(workdir / "rabbitmq-env.conf", ""),
    }


def rabbitmq_env(
    workdir: Path, node: str, port: int, epmd: dict[str, str], config: str = ""
) -> dict[str, str]:
    ignored = ("RABBITMQ_", "ERL_EPMD_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ignored)}
    env.update(rabbitmq_files(workdir, config))
    env.update(epmd)
    env.update(
        RABBITMQ_NODENAME=node,
        RABBITMQ_NODE_IP_ADDRESS=LOOPBACK,
        RABBITMQ_NODE_PORT=str(port),
        RABBITMQ_DIST_PORT=str(free_port()),
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
    )
    return env


def start_rabbitmq(program: str, stack: Stack, config: str = "") -> str:
    """Start a node; ``config`` (rabbitmq.conf lines) is added to its configuration."""
    workdir = make_workdir(stack, "rabbitmq")
    addr = (LOOPBACK, free_port())
    node = f"asyncq-test-{addr[1]}@localhost"
    url = f"amqp://guest:guest@{addr[0]}:{addr[1]}/"
    env = rabbitmq_env(workdir, node, addr[1], start_epmd(workdir, stack), config)
    log = workdir / "rabbitmq-server.log"
    say(f"RabbitMQ: starting a throwaway node {node} at {mask(url)} ...", end="")
    proc = spawn([program], workdir, log, stack, env)
    logs = [log, workdir / "log" / f"{node}.log"]
    boot("rabbitmq-server", proc, lambda: amqp_answers(addr), AMQP_BOOT_TIMEOUT, logs)
    return url


# --------------------------------------------------------------------------- choice

REDIS = Server(
    name="Redis",
    url_env="ASYNCQ_TEST_REDIS_URL",
    probe_env="ASYNCQ_PROBE_REDIS_ADDR",
    default_addr=(LOOPBACK, 6379),
    program="redis-server",
    package="redis-server",
    probe=redis_answers,
    url_for=lambda addr: f"redis://{addr[0]}:{addr[1]}/0",
    start=start_redis,
)

RABBITMQ = Server(
    name="RabbitMQ",
    url_env="ASYNCQ_TEST_AMQP_URL",
    probe_env="ASYNCQ_PROBE_AMQP_ADDR",
    default_addr=(LOOPBACK, 5672),
    program="rabbitmq-server",
    package="rabbitmq-server",
    probe=amqp_answers,
    url_for=lambda addr: f"amqp://guest:guest@{addr[0]}:{addr[1]}/",
    start=start_rabbitmq,
    search_first=(DEBIAN_RABBITMQ_BIN / "rabbitmq-server",),
)


def resolve(server: Server, stack: Stack) -> str:
    """Return a URL for ``server``: given, already running, or started here."""
    given = os.environ.get(server.url_env)
    if given:
        say(f"{server.name}: using ${server.url_env} = {mask(given)}")
        return given
    addr = probe_addr(server)
    if server.probe(addr):
        url = server.url_for(addr)
        say(f"{server.name}: using the server running at {mask(url)}")
        return url
    program = ensure_program(server)
    if program is None:
        fail(
            f"no {server.name} at {addr[0]}:{addr[1]} and no {server.program} to start "
            f"(install {server.package} or set {server.url_env})"
        )
    return server.start(program, stack)


# --------------------------------------------------------------------------- command


def exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def run_command(argv: Sequence[str], env: Mapping[str, str]) -> int:
    try:
        proc = subprocess.Popen(argv, env=env)
    except OSError as exc:
        say(f"cannot run {argv[0]}: {exc.strerror}")
        return 127
    try:
        return exit_status(proc.wait())
    except (KeyboardInterrupt, Interrupted) as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        return stop_command(proc, signum)


def stop_command(proc: Process, signum: int) -> int:
    """Let CMD finish after a signal (Ctrl-C already reached it), forcing it if needed."""
    if signum != signal.SIGINT:
        proc.send_signal(signum)
    for action in (None, proc.terminate, proc.kill):
        if action is not None:
            action()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(CHILD_GRACE)
            break
    proc.wait()
    return 128 + signum


def on_signal(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


OWN_OPTIONS = frozenset({"--redis", "--amqp", "-h", "--help"})


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="servers.py",
        description="Find or start Redis and RabbitMQ for the asyncq tests, then run CMD.",
        usage="%(prog)s [--redis] [--amqp] -- CMD [ARGS...]",
    )
    parser.add_argument("--redis", action="store_true", help="only Redis")
    parser.add_argument("--amqp", action="store_true", help="only RabbitMQ")
    own, cmd = split_command(argv)
    args = parser.parse_args(own)
    if not cmd:
        parser.error("no command given after --")
    args.cmd = cmd
    return args


def split_command(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``[OPTIONS] [--] CMD...``; the ``--`` may be left out."""
    args = list(argv)
    if "--" in args:
        index = args.index("--")
        return args[:index], args[index + 1 :]
    count = 0
    while count < len(args) and args[count] in OWN_OPTIONS:
        count += 1
    return args[:count], args[count:]


def wanted(args: argparse.Namespace) -> list[Server]:
    if not args.redis and not args.amqp:
        return [REDIS, RABBITMQ]
    return [s for s, on in ((REDIS, args.redis), (RABBITMQ, args.amqp)) if on]


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    stack: Stack = contextlib.ExitStack()
    try:
        env = dict(os.environ)
        for server in wanted(args):
            env[server.url_env] = resolve(server, stack)
        return run_command(args.cmd, env)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 128 + signal.SIGINT
    except Interrupted as exc:
        return 128 + exc.signum
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        stack.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
