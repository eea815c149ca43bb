"""Redis behind Sentinel: ``redis+sentinel://[[user]:password@]host:port,host:port/service[/db]``.

The client asks the sentinels for the master of ``service`` whenever it opens a
connection, so after a failover the broker, the result backend and every worker's
consumer talk to the new master on their next command (a connection to a demoted
master fails with ``READONLY`` and is dropped; one to a dead master fails to connect).
The user-info authenticates to the master (and its replicas); ``sentinel_password`` in
the query, to the sentinels. A port left out is 26379.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

from asyncq._urls import mask_url
from asyncq.errors import ConfigurationError

__all__ = ["SCHEMES", "SentinelTarget", "make_client", "parse", "server_id"]

SCHEMES = ("redis+sentinel",)
DEFAULT_PORT = 26379
#: Query options of a Sentinel URL (asyncq's own wait_* are taken out before).
_OPTIONS = frozenset({"sentinel_password", "sentinel_username"})


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """What a Sentinel URL names."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None
    password: str | None
    sentinel_username: str | None
    sentinel_password: str | None


def parse(url: str) -> SentinelTarget:
    """The sentinels, service, db and credentials of a Sentinel URL (ConfigurationError
    when something is missing or malformed)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigurationError(f"invalid Sentinel URL {mask_url(url)}") from None
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) {', '.join(unknown)} in the Sentinel URL {mask_url(url)}"
        )
    service, db = _path(parts.path, url)
    return SentinelTarget(
        sentinels=tuple(_address(item, url) for item in hosts.split(",")),
        service=service,
        db=db,
        username=unquote(user) or None,
        password=unquote(password) or None,
        sentinel_username=options.get("sentinel_username") or None,
        sentinel_password=options.get("sentinel_password") or None,
    )


def _path(path: str, url: str) -> tuple[str, int]:
    pieces = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
    if not pieces or len(pieces) > 2:
        raise ConfigurationError(
            f"a Sentinel URL names the service, then the db: "
            f"redis+sentinel://host:26379/mymaster/0, not {mask_url(url)}"
        )
    if len(pieces) == 1 or pieces[1] == "":
        return pieces[0], 0
    if not pieces[1].isdigit():
        raise ConfigurationError(f"the db in Sentinel URL {mask_url(url)} is not a number")
    return pieces[0], int(pieces[1])


def _address(item: str, url: str) -> tuple[str, int]:
    host, port = item, ""
    if item.startswith("["):  # [v6]:port
        host, _, rest = item[1:].partition("]")
        port = rest.removeprefix(":")
    elif ":" in item:
        host, _, port = item.rpartition(":")
    if not host or (port and not port.isdigit()) or int(port or DEFAULT_PORT) > 65535:
        raise ConfigurationError(f"bad sentinel address {item!r} in {mask_url(url)}")
    return host, int(port or DEFAULT_PORT)


class _Connection(SentinelManagedConnection):
    """A connection that asks the sentinels where the master is whenever it reconnects.

    redis-py 8.2 reconnects a dropped connection that a client keeps (a client with
    ``single_connection_client``, such as the consumer's reader) when it next sends,
    by ``connect_check_health``, not ``connect``: to the address it had, which after a
    failover is a replica or nothing, so the reader failed with READONLY for ever (a
    worker consumed nothing after a failover). Here that reconnect goes through
    ``connect``, which asks the sentinels, as a connection taken from the pool does."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self.is_connected:
            await self.connect()  # type: ignore[no-untyped-call, unused-ignore]
        await super().send_packed_command(command, check_health)


class _Pool(SentinelConnectionPool, BlockingConnectionPool):
    """A Sentinel-managed pool that waits for a free connection (as the plain client's
    pool does) and closes the sentinels' own connections when it closes."""

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            await self.sentinel_manager.aclose()


def make_client(
    url: str, *, socket_timeout: float, connect_timeout: float, max_connections: int
) -> aioredis.Redis:
    """A client of the current master of the URL's service."""
    target = parse(url)
    ask_timeout = min(connect_timeout, 2.0)  # a dead sentinel must not hold a failover up
    sentinel = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
        list(target.sentinels),
        sentinel_kwargs={
            "socket_timeout": ask_timeout,
            "socket_connect_timeout": ask_timeout,
            "username": target.sentinel_username,
            "password": target.sentinel_password,
        },
    )
    from asyncq import _redis  # (it imports this module: not at the top)

    client: aioredis.Redis = sentinel.master_for(
        target.service,
        connection_pool_class=_Pool,
        connection_class=_Connection,
        db=target.db,
        username=target.username,
        password=target.password,
        **_redis.connection_options(socket_timeout, connect_timeout, max_connections),
    )
    return client


def server_id(url: str) -> str:
    """The same for every URL naming the same sentinels, service and db."""
    target = parse(url)
    hosts = ",".join(sorted(f"{host}:{port}" for host, port in target.sentinels))
    return f"redis+sentinel://{hosts}/{target.service}/{target.db}"
