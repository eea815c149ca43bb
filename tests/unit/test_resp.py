"""The faster command packing sends exactly the bytes redis-py's own packing sends."""

from __future__ import annotations

from typing import Any

import pytest
from redis import exceptions as rexc
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection

from asyncq import _redis
from asyncq._resp import fast_packing

SETTLE = ("EVALSHA", "a" * 40, 101, "asyncq:{q}:stream",
          *[f"asyncq:result:{i:032x}" for i in range(100)], "group", b"x" * 9000)


def _wire(chunks: list[Any]) -> bytes:
    return b"".join(bytes(chunk) for chunk in chunks)


@pytest.mark.parametrize("args", [
    SETTLE,
    ("SET", "k", "é ü", "PX", 10),
    ("CONFIG GET", "maxmemory"),  # a command name redis-py splits
    ("GET", memoryview(b"ab")),
    ("SET", "k", b"y" * (2 << 20)),  # large: a chunk of its own
    ("XADD", "k", "*", "d", 1.5, -3, 2**70),
    ("PING",),
    (b"GET", b"k"),
    ("SET", "k", bytearray(b"v")),
])
def test_same_bytes_as_redis_py(args: tuple[Any, ...]) -> None:
    plain, fast = Connection(), fast_packing(Connection)()
    assert _wire(fast.pack_command(*args)) == _wire(plain.pack_command(*args))
    assert _wire(fast.pack_commands([args, ("PING",)])) == _wire(
        plain.pack_commands([args, ("PING",)]))


@pytest.mark.parametrize("bad", [True, None, object()])
def test_refuses_what_redis_py_refuses(bad: object) -> None:
    with pytest.raises(rexc.DataError):
        fast_packing(Connection)().pack_command("SET", "k", bad)


def test_one_subclass_per_connection_class() -> None:
    for cls in (Connection, SSLConnection, UnixDomainSocketConnection):
        made = fast_packing(cls)
        assert issubclass(made, cls)
        assert made is not cls
        assert fast_packing(cls) is made
        assert fast_packing(made) is made


def test_clients_from_urls_pack_fast() -> None:
    for url in ("redis://127.0.0.1:6379/0", "rediss://127.0.0.1:6380/0"):
        pool = _redis.make_client(url).connection_pool
        assert pool.connection_class is fast_packing(pool.connection_class)
