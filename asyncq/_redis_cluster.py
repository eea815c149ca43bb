"""Redis Cluster plumbing shared by the cluster broker and result backend.

A cluster URL names seed nodes, comma-separated; the client learns the rest of the
cluster (and every later slot move) from them::

    redis+cluster://[user:password@]host1:port1,host2:port2[/0][?option=value...]
    rediss+cluster://...      the same over TLS

Options: ``protocol`` (2 or 3), ``ssl_cert_reqs``, ``ssl_ca_certs``, ``ssl_certfile``,
``ssl_keyfile``, ``ssl_check_hostname``. A cluster has only database 0.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from redis.asyncio.cluster import ClusterNode, RedisCluster

from asyncq._urls import mask_url
from asyncq.errors import ConfigurationError

__all__ = ["CLUSTER_SCHEMES", "make_cluster_client", "seed_nodes"]

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
_TLS_OPTIONS = {
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
}


def seed_nodes(url: str) -> list[tuple[str, int]]:
    """The ``(host, port)`` seed nodes of a cluster URL (port 6379 when not given)."""
    netloc = _netloc(url).rpartition("@")[2]
    nodes: list[tuple[str, int]] = []
    for part in netloc.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep:
            host, port = port, "6379"
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigurationError(f"bad seed node {part!r} in {mask_url(url)}")
        nodes.append((host, int(port)))
    return nodes


def _netloc(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigurationError(f"invalid Redis Cluster URL {mask_url(url)}") from None
    if parts.scheme not in CLUSTER_SCHEMES:
        raise ConfigurationError(f"not a Redis Cluster URL: {mask_url(url)}")
    if not parts.netloc or parts.netloc.endswith("@"):
        raise ConfigurationError(f"no seed nodes in {mask_url(url)}")
    if parts.path.strip("/") not in ("", "0"):
        raise ConfigurationError(f"a Redis Cluster has only database 0: {mask_url(url)}")
    return parts.netloc


def _options(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    options: dict[str, Any] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "protocol" and value in ("2", "3"):
            options["protocol"] = int(value)
        elif name in _TLS_OPTIONS and parts.scheme == "rediss+cluster":
            options[name] = value.lower() != "false" if name == "ssl_check_hostname" else value
        else:
            known = [
                "protocol",
                *(sorted(_TLS_OPTIONS) if parts.scheme.startswith("rediss") else []),
            ]
            raise ConfigurationError(
                f"unsupported option {name!r} in the Redis Cluster URL "
                f"{mask_url(url)} (known: {', '.join(known)})"
            )
    if parts.scheme == "rediss+cluster":
        options["ssl"] = True
        options.setdefault(
            "ssl_check_hostname", str(options.get("ssl_cert_reqs", "required")).lower() != "none"
        )
    return options


def _credentials(url: str) -> dict[str, Any]:
    userinfo, at, _ = _netloc(url).rpartition("@")
    if not at:
        return {}
    user, sep, password = userinfo.partition(":")
    if not sep:
        return {"password": unquote(user)}
    return (
        {"username": unquote(user), "password": unquote(password)}
        if user
        else {"password": unquote(password)}
    )


def make_cluster_client(
    url: str,
    *,
    socket_timeout: float = 15.0,
    connect_timeout: float = 5.0,
    max_connections: int = 512,
) -> RedisCluster:
    """A cluster client (no I/O yet) whose every network wait has a deadline.

    ``max_connections`` is per node; past it redis-py fails a command rather than
    waiting, so it is large (connections are opened only when needed).
    """
    nodes = [ClusterNode(host, port) for host, port in seed_nodes(url)]
    return RedisCluster(
        startup_nodes=nodes,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        socket_keepalive=True,
        health_check_interval=30,
        max_connections=max_connections,
        decode_responses=False,
        **_credentials(url),
        **_options(url),
    )
