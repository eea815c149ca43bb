"""Redis Cluster URLs: seed nodes, options, clear errors that never show a password."""

from __future__ import annotations

import pytest

from asyncq import App
from asyncq._redis_cluster import make_cluster_client, seed_nodes
from asyncq.brokers import broker_class
from asyncq.brokers.redis.cluster import RedisClusterBroker
from asyncq.errors import ConfigurationError
from asyncq.results import backend_class
from asyncq.results.redis_cluster import RedisClusterResultBackend


def test_seed_nodes_default_port_and_ipv6() -> None:
    assert seed_nodes("redis+cluster://a:7000,b,[::1]:7002/") == [
        ("a", 7000),
        ("b", 6379),
        ("::1", 7002),
    ]


def test_the_scheme_picks_the_cluster_classes_and_an_app_uses_them() -> None:
    url = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001"
    assert broker_class(url) is RedisClusterBroker
    assert backend_class("rediss+cluster://h:1") is RedisClusterResultBackend
    app = App("shop", broker=url)
    assert isinstance(app.broker, RedisClusterBroker)
    assert isinstance(app.backend, RedisClusterResultBackend)


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://:s3cret@h:1,h:x",
        "redis+cluster://u:s3cret@h:1/3",
        "redis+cluster://u:s3cret@h:1?decode_responses=1",
        "redis+cluster://u:s3cret@",
        "redis+cluster://u:s3cret@h:1?ssl_ca_certs=/x",  # a TLS option without TLS
    ],
)
def test_bad_urls_are_configuration_errors_without_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_cluster_client(url)
    assert "s3cret" not in str(info.value)
    assert "***" in str(info.value)


def test_credentials_and_tls_reach_the_client() -> None:
    client = make_cluster_client("rediss+cluster://me:p%40ss@h:1?ssl_cert_reqs=none")
    kwargs = client.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("me", "p@ss")
    assert kwargs["ssl_check_hostname"] is False
