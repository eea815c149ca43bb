"""TLS: ``rediss://`` and ``amqps://`` work, with certificate verification on by default.

Each server is a throwaway one that this module starts with a certificate from a CA made
at test time (trustme): a ``redis-server`` with a TLS port only and ``requirepass``, and a
RabbitMQ node (started by scripts/servers.py) with an SSL listener and a user with a
password. A client that is told to trust the CA (``?ssl_ca_certs=`` for Redis,
``?cafile=`` for RabbitMQ) gets a full round trip; one that is not fails fast with
``BrokerUnavailable``; the passwords never show in errors, reprs, the banner or logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import asyncq
from asyncq._urls import mask_url
from asyncq.cli.banner import banner
from tests._servers.rabbit_cluster import servers_script
from tests.conftest import WorkerProcess

trustme = pytest.importorskip("trustme", reason="trustme is in the dev extra")

ROOT = Path(__file__).resolve().parents[2]
REDIS_PASSWORD = f"redis-pw-{secrets.token_hex(8)}"
AMQP_USER = "asyncq-tls"
AMQP_PASSWORD = f"amqp-pw-{secrets.token_hex(8)}"
#: Every failure must be reported well within this (the clients' own deadlines are
#: 5-10 s; a certificate error is immediate).
FAIL_WITHIN = 10.0
#: How a redis-server built without TLS says so when given --tls-port.
NO_TLS_BUILD = re.compile(r"(?i)\btls\b.*\b(support|build|compiled)|"
                          r"\b(support|build|compiled)\b.*\btls\b")


servers = servers_script()


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA certificate a client must trust
    cert: Path  # the server's certificate chain (127.0.0.1 and localhost)
    key: Path
    other_cert: Path  # signed by the same CA, for another host name only
    other_key: Path


@dataclass(frozen=True)
class TlsServer:
    url: str  # with the password, without any CA
    ca_param: str  # the URL query parameter that names a CA file

    def trusting(self, ca: Path) -> str:
        return f"{self.url}?{self.ca_param}={ca}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA(organization_name="asyncq throwaway test CA")
    server = ca.issue_cert("127.0.0.1", "localhost")
    other = ca.issue_cert("not-this-host.invalid")
    pki = Pki(folder / "ca.pem", folder / "server.pem", folder / "server.key",
              folder / "other.pem", folder / "other.key")
    ca.cert_pem.write_to_path(str(pki.ca))
    for issued, cert, key in ((server, pki.cert, pki.key), (other, pki.other_cert, pki.other_key)):
        with cert.open("wb") as out:  # leaf first, then the CA
            for blob in issued.cert_chain_pems:
                out.write(blob.bytes())
        issued.private_key_pem.write_to_path(str(key))
    return pki


@pytest.fixture(scope="module")
def stack() -> Iterator[contextlib.ExitStack[None]]:
    """Owns every process this module starts (stopped, directories removed, at the end)."""
    with contextlib.ExitStack() as servers_stack:
        yield servers_stack


def _wait_for_port(proc: Any, port: int, timeout: float, what: str, log: Path) -> None:
    try:
        servers.wait_until(proc, lambda: servers.port_open((servers.LOOPBACK, port)), timeout)
    except servers.BootError as exc:
        lines = servers.tail(log)
        no_tls = [line for line in lines if NO_TLS_BUILD.search(line)]
        if no_tls:  # a redis-server built without BUILD_TLS=yes
            pytest.skip(f"the throwaway {what} cannot do TLS: {no_tls[-1]}")
        tail = "\n".join(lines)
        pytest.fail(f"the throwaway {what} {exc}; its log ends with:\n{tail}")


def _start_redis_tls(stack: contextlib.ExitStack[None], ca: Path, cert: Path,
                     key: Path) -> TlsServer:
    program = servers.find_program(servers.REDIS)
    if program is None:
        pytest.skip("no redis-server program to start a TLS server with")
    workdir = servers.make_workdir(stack, "redis-tls")
    port = servers.free_port()
    argv = [program, "--port", "0", "--tls-port", str(port), "--bind", servers.LOOPBACK,
            "--tls-cert-file", str(cert), "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
            "--requirepass", REDIS_PASSWORD, "--save", "", "--appendonly", "no",
            "--dir", str(workdir)]
    log = workdir / "redis.log"
    proc = servers.spawn(argv, workdir, log, stack)
    _wait_for_port(proc, port, servers.REDIS_BOOT_TIMEOUT, "TLS redis-server", log)
    return TlsServer(f"rediss://:{REDIS_PASSWORD}@127.0.0.1:{port}/0", "ssl_ca_certs")


@pytest.fixture(scope="module")
def redis_tls(pki: Pki, stack: contextlib.ExitStack[None]) -> TlsServer:
    return _start_redis_tls(stack, pki.ca, pki.cert, pki.key)


@pytest.fixture(scope="module")
def redis_tls_other_name(pki: Pki, stack: contextlib.ExitStack[None]) -> TlsServer:
    """A TLS redis-server whose certificate (from the trusted CA) names another host."""
    return _start_redis_tls(stack, pki.ca, pki.other_cert, pki.other_key)


def _rabbitmq_tls_config(pki: Pki, port: int) -> str:
    return "\n".join([
        f"listeners.ssl.default = {servers.LOOPBACK}:{port}",
        f"ssl_options.cacertfile = {pki.ca}",
        f"ssl_options.certfile = {pki.cert}",
        f"ssl_options.keyfile = {pki.key}",
        "ssl_options.verify = verify_none",
        "ssl_options.fail_if_no_peer_cert = false",
        f"default_user = {AMQP_USER}",
        f"default_pass = {AMQP_PASSWORD}",
        "",
    ])


@pytest.fixture(scope="module")
def amqp_tls(pki: Pki, stack: contextlib.ExitStack[None]) -> TlsServer:
    program = servers.find_program(servers.RABBITMQ)
    if program is None:
        pytest.skip("no rabbitmq-server program to start a TLS node with")
    port = servers.free_port()
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            servers.start_rabbitmq(program, stack, _rabbitmq_tls_config(pki, port))
    except SystemExit:  # servers.fail() wrote why, with the end of the node's log
        pytest.skip("the throwaway RabbitMQ node with an SSL listener did not start:\n"
                    + said.getvalue())
    deadline = time.monotonic() + 10  # the SSL listener opens with the TCP one
    while not servers.port_open((servers.LOOPBACK, port)):
        if time.monotonic() > deadline:
            pytest.skip(f"RabbitMQ answers on its TCP port but its SSL listener on {port} "
                        "did not open within 10 s")
        time.sleep(0.1)
    return TlsServer(f"amqps://{AMQP_USER}:{AMQP_PASSWORD}@127.0.0.1:{port}/", "cafile")


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def _name() -> str:
    return f"tls{uuid.uuid4().hex[:8]}"


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in (REDIS_PASSWORD, AMQP_PASSWORD):
            assert secret not in text, f"a password leaked into: {text[:300]!r}"


def _app(broker: str, backend: str | None = None) -> tuple[asyncq.App, Any]:
    queue = _name()
    app = asyncq.App(_name(), broker=broker, backend=backend, default_queue=queue)

    @app.task(name="tls.add")
    async def add(x: int, y: int) -> int:
        return x + y

    return app, add


async def _round_trip(broker: str, backend: str | None = None) -> None:
    app, add = _app(broker, backend)
    async with app, asyncq.Worker(app, concurrency=2, loop_lag_threshold=None):
        handle = await add.enqueue(20, 22)
        assert await handle.get(timeout=10) == 42
        _assert_no_secret(repr(app), repr(app.broker), repr(app.backend),
                          banner(app, queues=[app.default_queue], concurrency=2, prefetch=2))
    async with app:
        await app.broker.delete_queue(app.default_queue)


# ------------------------------------------------------------------- trusted: round trips


async def test_rediss_round_trip_with_the_ca_trusted(
        redis_tls: TlsServer, pki: Pki, logs: pytest.LogCaptureFixture) -> None:
    url = redis_tls.trusting(pki.ca)
    await _round_trip(url, url)  # broker and result backend both over TLS
    _assert_no_secret(logs.text)


async def test_amqps_round_trip_with_the_ca_trusted(
        amqp_tls: TlsServer, pki: Pki, logs: pytest.LogCaptureFixture) -> None:
    await _round_trip(amqp_tls.trusting(pki.ca))  # results come back over AMQP (RPC)
    _assert_no_secret(logs.text)


async def test_amqps_broker_with_rediss_results(
        amqp_tls: TlsServer, redis_tls: TlsServer, pki: Pki,
        logs: pytest.LogCaptureFixture) -> None:
    await _round_trip(amqp_tls.trusting(pki.ca), redis_tls.trusting(pki.ca))
    _assert_no_secret(logs.text)


# ------------------------------------------------------- untrusted: fail, fast and masked


def _check_refusal(exc: BaseException, took: float, url: str) -> None:
    text = str(exc)
    assert isinstance(exc, asyncq.BrokerUnavailable), repr(exc)
    assert took < FAIL_WITHIN, f"took {took:.1f} s to fail"
    assert "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text, text
    assert mask_url(url) in text, text  # which server, credentials masked
    _assert_no_secret(text, repr(exc))


@pytest.fixture(params=["redis", "amqp"])
def untrusted(request: pytest.FixtureRequest) -> str:
    """A URL of a TLS server, without the CA that signed its certificate."""
    server: TlsServer = request.getfixturevalue(f"{request.param}_tls")
    return server.url


async def test_enqueue_without_the_ca_fails_fast(
        untrusted: str, logs: pytest.LogCaptureFixture) -> None:
    app, add = _app(untrusted, untrusted if untrusted.startswith("rediss") else None)
    started = time.monotonic()
    with pytest.raises(asyncq.BrokerUnavailable) as caught:
        async with asyncio.timeout(FAIL_WITHIN * 2):
            await add.enqueue(1, 2)
    _check_refusal(caught.value, time.monotonic() - started, untrusted)
    _assert_no_secret(repr(app), repr(app.broker), repr(app.backend), logs.text)
    await app.close()


async def _start_worker(app: asyncq.App) -> None:
    async with asyncio.timeout(FAIL_WITHIN * 2):
        async with asyncq.Worker(app, concurrency=1, loop_lag_threshold=None):
            pass


async def test_worker_start_without_the_ca_fails_fast(
        untrusted: str, logs: pytest.LogCaptureFixture) -> None:
    app, _ = _app(untrusted, untrusted if untrusted.startswith("rediss") else None)
    started = time.monotonic()
    with pytest.raises(asyncq.BrokerUnavailable) as caught:
        await _start_worker(app)
    _check_refusal(caught.value, time.monotonic() - started, untrusted)
    _assert_no_secret(repr(app), logs.text)


def test_cli_worker_without_the_ca_exits_with_a_masked_error(
        untrusted: str, start_worker: Callable[..., WorkerProcess], tasks_dir: Path) -> None:
    """The real CLI: banner, then one clear error line and exit status 2; no password."""
    env = {"T_APP": _name(), "T_BROKER": untrusted, "T_QUEUE": _name(),
           "T_LEDGER": str(tasks_dir / "ledger.txt")}
    started = time.monotonic()
    worker = start_worker(env, "-l", "debug")
    status = worker.proc.wait(timeout=FAIL_WITHIN * 2)
    took = time.monotonic() - started
    out = worker.text()
    assert status == 2, out
    assert took < FAIL_WITHIN, f"took {took:.1f} s to exit"
    assert " broker:       " in out, out  # the banner came first
    errors = [line for line in out.splitlines() if line.startswith("asyncq: error:")]
    assert len(errors) == 1, out
    assert "unavailable" in errors[0], out
    assert "CERTIFICATE_VERIFY_FAILED" in errors[0], out
    assert "***@127.0.0.1" in out, out
    _assert_no_secret(out)


async def test_rediss_results_without_the_ca_fail_fast(
        amqp_tls: TlsServer, redis_tls: TlsServer, pki: Pki,
        logs: pytest.LogCaptureFixture) -> None:
    """A trusted broker but an untrusted result backend: reading a result fails."""
    app, add = _app(amqp_tls.trusting(pki.ca), redis_tls.url)
    async with app:
        handle = await add.enqueue(1, 2)
        started = time.monotonic()
        with pytest.raises(asyncq.BrokerUnavailable) as caught:
            async with asyncio.timeout(FAIL_WITHIN * 2):
                await handle.state()
        _check_refusal(caught.value, time.monotonic() - started, redis_tls.url)
        await app.broker.delete_queue(app.default_queue)
    _assert_no_secret(logs.text)


async def test_rediss_checks_the_host_name(redis_tls_other_name: TlsServer, pki: Pki) -> None:
    """The CA is trusted, but the certificate is for another name: refused."""
    url = redis_tls_other_name.trusting(pki.ca)
    app, add = _app(url, url)
    with pytest.raises(asyncq.BrokerUnavailable) as caught:
        async with asyncio.timeout(FAIL_WITHIN * 2):
            await add.enqueue(1, 2)
    assert "mismatch" in str(caught.value), str(caught.value)
    _assert_no_secret(str(caught.value))
    await app.close()
