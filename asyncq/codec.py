"""msgpack codec: ext types for datetime, date, UUID and Decimal; nothing else.

Decoding never imports or resolves anything named in the data: the only types it
can produce are msgpack's own plus the four ext types below. Size is checked
before unpacking.
"""

from __future__ import annotations

import datetime as dt
import decimal
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import msgpack

from asyncq.errors import DecodeError, MessageTooLarge, SerializationError

__all__ = [
    "DEFAULT_MAX_SIZE", "SCALARS", "check_keys", "dumps", "dumps_for_lua", "loads",
    "name_unpackable", "packer", "unpacker",
]

DEFAULT_MAX_SIZE: Final = 1024 * 1024

EXT_DATETIME: Final = 1
EXT_DATE: Final = 2
EXT_UUID: Final = 3
EXT_DECIMAL: Final = 4


def _default(obj: object) -> msgpack.ExtType:
    # datetime is checked before date: it is a subclass
    if isinstance(obj, dt.datetime):
        return msgpack.ExtType(EXT_DATETIME, obj.isoformat().encode())
    if isinstance(obj, dt.date):
        return msgpack.ExtType(EXT_DATE, obj.isoformat().encode())
    if isinstance(obj, uuid.UUID):
        return msgpack.ExtType(EXT_UUID, obj.bytes)
    if isinstance(obj, decimal.Decimal):
        return msgpack.ExtType(EXT_DECIMAL, str(obj).encode())
    raise TypeError(f"cannot serialize object of type {type(obj).__name__}")


def _decode_datetime(data: bytes) -> object:
    return dt.datetime.fromisoformat(data.decode())


def _decode_date(data: bytes) -> object:
    return dt.date.fromisoformat(data.decode())


def _decode_uuid(data: bytes) -> object:
    return uuid.UUID(bytes=data)


def _decode_decimal(data: bytes) -> object:
    return decimal.Decimal(data.decode())


_EXT_DECODERS: Final[Mapping[int, Callable[[bytes], object]]] = {
    EXT_DATETIME: _decode_datetime,
    EXT_DATE: _decode_date,
    EXT_UUID: _decode_uuid,
    EXT_DECIMAL: _decode_decimal,
}


def _ext_hook(code: int, data: bytes) -> object:
    decoder = _EXT_DECODERS.get(code)
    if decoder is None:
        raise DecodeError(f"unknown msgpack ext type {code}")
    try:
        return decoder(data)
    except (ValueError, TypeError, decimal.InvalidOperation, UnicodeDecodeError) as exc:
        raise DecodeError(f"bad payload for ext type {code}: {exc}") from None


_local = threading.local()


def packer() -> Any:
    """This thread's Packer: reusing one is three times faster than ``packb`` per call.
    Its ``pack`` raises msgpack's own errors; :func:`dumps` maps them."""
    try:
        return _local.packer
    except AttributeError:
        _local.packer = msgpack.Packer(default=_default, use_bin_type=True, datetime=False)
        return _local.packer


def dumps_for_lua(obj: object) -> bytes:
    """Pack plain data for a Redis script: Redis's Lua cmsgpack knows no bin type, so
    bytes go as (binary-safe) raw strings. Only for ints, bools, str, bytes and lists."""
    try:
        return _local.lua_packer.pack(obj)  # type: ignore[no-any-return]
    except AttributeError:
        _local.lua_packer = msgpack.Packer(use_bin_type=False, autoreset=True)
        return dumps_for_lua(obj)


def dumps(obj: object) -> bytes:
    """Pack ``obj``; raise :class:`SerializationError` for unsupported values."""
    try:
        own = _local.packer
    except AttributeError:
        own = packer()
    try:
        packed: bytes = own.pack(obj)
    except (TypeError, ValueError, OverflowError) as exc:
        own.reset()  # drop whatever was half written
        raise SerializationError(str(exc)) from None
    return packed


#: Types that need no map-key check.
SCALARS: Final = frozenset((int, str, float, bool, bytes, type(None)))


#: msgpack's own nesting limit when packing: deeper values cannot be sent anyway.
_MAX_DEPTH: Final = 511


def check_keys(value: object, depth: int = 0) -> None:
    """Refuse map keys other than str and bytes, which :func:`loads` would not accept.

    msgpack can pack ``{1: "a"}``, but decoding allows only str and bytes keys (hash
    flooding protection): refusing at the source keeps such values out of queues.
    """
    if type(value) in SCALARS:
        return
    if depth > _MAX_DEPTH:
        raise SerializationError(f"value is nested deeper than {_MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if type(key) is not str and not isinstance(key, str | bytes):
                raise SerializationError(
                    f"map key {key!r} is a {type(key).__name__}: keys must be str or bytes")
            if type(item) not in SCALARS:
                check_keys(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            if type(item) not in SCALARS:
                check_keys(item, depth + 1)


def loads(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> Any:
    """Unpack bytes produced by :func:`dumps`; every failure is a :class:`DecodeError`."""
    if len(data) > max_size:
        raise MessageTooLarge(f"payload of {len(data)} bytes exceeds the {max_size} byte limit")
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            ext_hook=_ext_hook,
            timestamp=0,
        )
    except DecodeError:
        raise
    except Exception as exc:  # msgpack raises many unrelated types on bad input
        raise DecodeError(f"undecodable msgpack: {type(exc).__name__}: {exc}") from None


def unpacker(size: int) -> Any:
    """An Unpacker for ``size`` bytes fed at once, with :func:`loads`'s options: objects
    read from it one by one are what :func:`loads` makes of each one's bytes. Its errors
    are msgpack's own (and :class:`DecodeError` from an ext type)."""
    return msgpack.Unpacker(raw=False, strict_map_key=True, ext_hook=_ext_hook, timestamp=0,
                            max_buffer_size=max(1, size))


def name_unpackable(args: Sequence[object], kwargs: Mapping[str, object]) -> str | None:
    """Return a human name for the first argument that cannot be packed, if any."""
    for index, value in enumerate(args):
        if not _packable(value):
            return f"positional argument {index} ({type(value).__name__})"
    for key, value in kwargs.items():
        if not _packable(value):
            return f"argument {key!r} ({type(value).__name__})"
    return None


def _packable(value: object) -> bool:
    try:
        check_keys(value)
        dumps(value)
    except SerializationError:
        return False
    return True
