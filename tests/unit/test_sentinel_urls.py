"""Sentinel URLs and the ``wait_replicas`` option: parsed, checked, masked (no server)."""

from __future__ import annotations

import pytest

from asyncq import App
from asyncq._redis import Replication, replication_of, server_id, split_replication
from asyncq._sentinel import parse
from asyncq._urls import mask_url
from asyncq.errors import ConfigurationError


def test_parse_names_sentinels_service_db_and_credentials() -> None:
    target = parse(
        "redis+sentinel://u:p%40ss@10.0.0.1:26379,[::1]:26380,host/mymaster/3?sentinel_password=sp"
    )
    assert target.sentinels == (("10.0.0.1", 26379), ("::1", 26380), ("host", 26379))
    assert (target.service, target.db) == ("mymaster", 3)
    assert (target.username, target.password, target.sentinel_password) == ("u", "p@ss", "sp")
    assert parse("redis+sentinel://h/svc").db == 0


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://h:1", "names the service"),
        ("redis+sentinel://h:1/svc/x", "not a number"),
        ("redis+sentinel://h:1/svc/0/extra", "names the service"),
        ("redis+sentinel://h:port/svc", "bad sentinel address"),
        ("redis+sentinel://h:1,/svc", "bad sentinel address"),
        ("redis+sentinel://h:99999/svc", "bad sentinel address"),
        ("redis+sentinel://h:1/svc?socket_timeout=1", "unknown option"),
        ("redis+sentinel://h:1/svc?wait_replicas=x", "wait_replicas must be an integer"),
        ("redis+sentinel://h:1/svc?wait_replicas=1&wait_timeout=0", "wait_timeout in"),
        ("redis://h/0?wait_replicas=-1", "wait_replicas must be >= 0"),
    ],
)
def test_bad_urls_are_configuration_errors(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        App("bad", broker=url).broker  # noqa: B018


def test_the_error_hides_the_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        App("bad", broker="redis+sentinel://:hunter2@h:1/svc/x").broker  # noqa: B018
    assert "hunter2" not in str(caught.value)
    assert (
        mask_url("redis+sentinel://:hunter2@a:1,b:2/s/0?sentinel_password=x")
        == "redis+sentinel://:***@a:1,b:2/s/0?sentinel_password=***"
    )


def test_wait_options_are_taken_out_of_the_url() -> None:
    url, wait = split_replication("redis://h:1/0?protocol=2&wait_replicas=2&wait_timeout=0.5")
    assert (url, wait) == ("redis://h:1/0?protocol=2", Replication(2, 0.5))
    assert replication_of("redis://h/0") is None
    assert replication_of("redis://h/0?wait_replicas=0") is None
    assert App("ok", broker="redis://h:1/0?wait_replicas=1").broker.replication == Replication(
        1, 2.0
    )


def test_broker_and_backend_urls_of_one_service_share_a_server_id() -> None:
    a = server_id("redis+sentinel://b:2,a:1/svc/0?wait_replicas=1")
    assert a == server_id("redis+sentinel://a:1,b:2/svc/0")
    assert a != server_id("redis+sentinel://a:1,b:2/svc/1")
    assert a != server_id("redis+sentinel://a:1,b:2/other/0")
