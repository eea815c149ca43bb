"""Shared Redis plumbing for the Redis broker and result backend."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions as rexc

from asyncq import _sentinel, records
from asyncq._resp import fast_packing
from asyncq._urls import mask_url, redact
from asyncq.errors import BrokerUnavailable, ConfigurationError, NotReplicated

__all__ = [
    "Replication",
    "ScriptBatch",
    "connection_errors",
    "load_lua",
    "make_client",
    "mapped_errors",
    "replication_of",
    "server_id",
    "unavailable",
]

#: Errors that mean "the server is not reachable right now" (InvalidResponse: what
#: answers is not Redis, e.g. a redis:// URL at a RabbitMQ port).
connection_errors: tuple[type[BaseException], ...] = (
    rexc.ConnectionError,
    rexc.TimeoutError,
    rexc.InvalidResponse,
    ConnectionError,
    TimeoutError,
    OSError,
)


def make_client(url: str, *, socket_timeout: float = 15.0,
                connect_timeout: float = 5.0, max_connections: int = 64) -> aioredis.Redis:
    """A client whose every network wait has a deadline (of the current master, for a
    ``redis+sentinel://`` URL)."""
    url, _ = split_replication(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigurationError(f"invalid Redis URL {mask_url(url)}") from None
    if parts.scheme in _sentinel.SCHEMES:
        return _sentinel.make_client(url, socket_timeout=socket_timeout,
                                     connect_timeout=connect_timeout,
                                     max_connections=max_connections)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ConfigurationError(f"not a Redis URL: {mask_url(url)}")
    if _decodes(parts.query):  # redis-py lets the URL override decode_responses=False
        raise ConfigurationError(
            f"decode_responses in the Redis URL {mask_url(url)}: asyncq reads and writes "
            "bytes (msgpack); remove the option")
    try:
        pool = _pool(url, parts.scheme, parts.query, socket_timeout=socket_timeout,
                     connect_timeout=connect_timeout, max_connections=max_connections)
    except (ValueError, TypeError, rexc.RedisError) as exc:  # redis-py's URL parsing
        raise ConfigurationError(f"invalid Redis URL {mask_url(url)}: "
                                 f"{redact(str(exc), url)}") from None
    return aioredis.Redis.from_pool(pool)  # the client owns (and closes) its pool


def connection_options(socket_timeout: float, connect_timeout: float,
                       max_connections: int) -> dict[str, Any]:
    """The pool and connection settings every asyncq Redis client uses (a plain URL's
    pool and a Sentinel master's alike): bytes replies, keepalive, a bounded pool."""
    return {"socket_timeout": socket_timeout, "socket_connect_timeout": connect_timeout,
            "socket_keepalive": True, "health_check_interval": 30,
            "max_connections": max_connections, "timeout": socket_timeout,
            "decode_responses": False}


def _pool(url: str, scheme: str, query: str, *, socket_timeout: float,
          connect_timeout: float, max_connections: int) -> aioredis.BlockingConnectionPool:
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        **connection_options(socket_timeout, connect_timeout, max_connections),
        **(_tls_defaults(query) if scheme == "rediss" else {}),
    )
    pool.connection_class = fast_packing(pool.connection_class)  # the same bytes, less CPU
    # An unknown URL option (?foo=1) fails only when a connection is made: build one
    # now (no I/O) so that it is a ConfigurationError here, not a TypeError later.
    pool.connection_class(**pool.connection_kwargs)
    return pool


def _decodes(query: str) -> bool:
    """Whether a URL's query sets decode_responses. redis-py passes the value on as a
    string, so any non-blank one turns decoding on, "false" and "0" included."""
    return "decode_responses" in parse_qs(query)  # parse_qs drops blank values


def _tls_defaults(query: str) -> dict[str, bool]:
    """Check the server's host name, as redis-py >= 6 does by default (5.x does not).

    Parameters in the URL win (redis-py applies them over these). Python refuses a
    host name check without certificate verification, so ``ssl_cert_reqs=none`` turns
    it off.
    """
    options = dict(parse_qsl(query))
    return {"ssl_check_hostname": options.get("ssl_cert_reqs", "required").lower() != "none"}


def server_id(url: str) -> str:
    """Identity of the server + database a URL points at (for co-located writes)."""
    url, _ = split_replication(url)
    parts = urlsplit(url)
    if parts.scheme in _sentinel.SCHEMES:
        return _sentinel.server_id(url)
    db = parts.path.strip("/") or "0"
    return f"redis://{parts.hostname or 'localhost'}:{parts.port or 6379}/{db}"


def load_lua(package: str, name: str, *, publish: str = "PUBLISH") -> str:
    """The script ``lua/<name>.lua`` of ``package``, after the result-record prelude
    (:func:`asyncq.records.lua_prelude`, notifying with ``publish``) when the script
    stores records."""
    text = (resources.files(package) / "lua" / f"{name}.lua").read_text()
    if "asyncq_store(" not in text:
        return text
    shebang, sep, body = text.partition("\n") if text.startswith("#!") else ("", "", text)
    return shebang + sep + records.lua_prelude(publish) + body  # a shebang stays first


def unavailable(what: str, url: str, exc: BaseException) -> BrokerUnavailable:
    detail = redact(str(exc), url) or type(exc).__name__
    if isinstance(exc, rexc.InvalidResponse):
        detail += " (is it a Redis server?)"
    return BrokerUnavailable(f"{what} at {mask_url(url)} is unavailable: {detail}")


@contextlib.contextmanager
def mapped_errors(what: str, url: str) -> Iterator[None]:
    """Turn connection failures into :class:`BrokerUnavailable` with a masked URL."""
    try:
        yield
    except connection_errors as exc:
        raise unavailable(what, url, exc) from None


#: The longest ``wait_timeout``: below every client deadline (socket, publish).
MAX_WAIT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Replication:
    """``?wait_replicas=N&wait_timeout=S``: writes wait (``WAIT``) for N replicas."""

    replicas: int
    timeout: float = 2.0

    def queue(self, pipe: Any) -> None:
        """Append the ``WAIT`` that covers every write queued before it."""
        pipe.execute_command("WAIT", self.replicas, int(self.timeout * 1000))

    def check(self, acked: Any) -> None:
        """Raise :class:`NotReplicated` unless ``acked`` (WAIT's reply) is enough."""
        if isinstance(acked, BaseException):
            raise acked
        if int(acked) < self.replicas:
            raise NotReplicated(
                f"{int(acked)} of {self.replicas} replica(s) acknowledged the write within "
                f"{self.timeout:g} s (wait_replicas): the master has it, but a failover "
                "now could lose it")


def split_replication(url: str) -> tuple[str, Replication | None]:
    """``url`` without asyncq's ``wait_replicas``/``wait_timeout`` options, and them."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, None  # make_client says what is wrong with it
    if "wait_" not in parts.query:
        return url, None
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in pairs if k in {"wait_replicas", "wait_timeout"}}
    rest = urlunsplit(parts._replace(query=urlencode([p for p in pairs if p[0] not in ours])))
    if not ours:
        return url, None
    return rest, _replication(ours, url)


def _replication(options: dict[str, str], url: str) -> Replication | None:
    try:
        replicas = int(options.get("wait_replicas", "0"))
        timeout = float(options.get("wait_timeout", "2"))
    except ValueError:
        raise ConfigurationError(f"wait_replicas must be an integer and wait_timeout a "
                                 f"number of seconds in {mask_url(url)}") from None
    if replicas < 0 or not 0 < timeout <= MAX_WAIT_TIMEOUT:
        raise ConfigurationError(f"wait_replicas must be >= 0 and wait_timeout in "
                                 f"(0, {MAX_WAIT_TIMEOUT:g}] s in {mask_url(url)}")
    return Replication(replicas, timeout) if replicas else None


def replication_of(url: str) -> Replication | None:
    """The URL's ``wait_replicas`` requirement, if any."""
    return split_replication(url)[1]


class ScriptBatch:
    """A pipeline that runs scripts by ``EVALSHA`` without checking them first.

    redis-py's pipeline sends ``SCRIPT EXISTS`` before every execution that includes a
    script: a whole extra round trip per settle or publish batch. Here a script that
    the server does not know (after a restart or ``SCRIPT FLUSH``) fails alone with
    ``NOSCRIPT`` and is run again on its own, which loads it; a script that failed so
    never ran, so running it again is safe.

    With ``replication``, one ``WAIT`` follows the batch's writes (and another any
    script run again) and :class:`NotReplicated` is raised when too few replicas
    acknowledged them; the ``WAIT`` reply is not among those returned.
    """

    def __init__(self, client: aioredis.Redis, replication: Replication | None = None) -> None:
        self._client = client
        self._pipe = client.pipeline(transaction=False)
        self._scripts: dict[int, tuple[Any, list[Any], list[Any]]] = {}
        self._replication = replication

    @property
    def pipe(self) -> Any:
        """The pipeline, for plain commands between the scripts."""
        return self._pipe

    def script(self, script: Any, keys: list[Any], args: list[Any]) -> None:
        self._scripts[len(self._pipe)] = (script, keys, args)  # (a cluster pipeline too)
        # (not pipe.evalsha: redis-py refuses that on a cluster pipeline, not this)
        self._pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)

    async def execute(self, *, raise_on_error: bool = True) -> list[Any]:
        wait = self._replication
        if wait is not None:
            wait.queue(self._pipe)
        try:
            replies: list[Any] = await self._pipe.execute(raise_on_error=False)
        finally:
            await self._pipe.reset()  # type: ignore[no-untyped-call]
        acked = replies.pop() if wait is not None else None
        if any(isinstance(replies[i], rexc.NoScriptError) for i in self._scripts):
            acked = await self._rerun(replies, acked)
        if wait is not None:
            wait.check(acked)
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
        return replies

    async def _rerun(self, replies: list[Any], acked: Any) -> Any:
        """Run the scripts the server did not know (which loads them) on one connection,
        and ``WAIT`` there too: ``WAIT`` covers the writes of its own connection only."""
        wait = self._replication
        if wait is None:  # any connection will do (a cluster client has no client())
            for index, (script, keys, args) in self._scripts.items():
                if isinstance(replies[index], rexc.NoScriptError):
                    replies[index] = await script(keys=keys, args=args)
            return acked
        async with self._client.client() as conn:
            for index, (script, keys, args) in self._scripts.items():
                if isinstance(replies[index], rexc.NoScriptError):
                    replies[index] = await script(keys=keys, args=args, client=conn)
            return await conn.execute_command(  # type: ignore[no-untyped-call]
                "WAIT", wait.replicas, int(wait.timeout * 1000))
