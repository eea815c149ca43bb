"""The task envelope and its wire form (a versioned msgpack array)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import msgpack

from asyncq import codec
from asyncq.errors import DecodeError, SerializationError

__all__ = [
    "ENVELOPE_VERSION", "Message", "encode_fields", "new_id", "new_ids", "peek_id", "valid_id",
]

ENVELOPE_VERSION: Final = 1
_FIELDS: Final = 8
#: peek_id reads no further than this: the version and a valid id fit well within it.
_PEEK: Final = 512
_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}")


def new_id() -> str:
    """A random 128-bit task id, hex encoded."""
    return os.urandom(16).hex()


def new_ids(count: int) -> list[str]:
    """``count`` ids like :func:`new_id`'s, from one read of the system's random source."""
    raw = os.urandom(16 * count).hex()
    return [raw[i : i + 32] for i in range(0, 32 * count, 32)]


def valid_id(value: object) -> bool:
    """Task ids are 1-128 chars of ``[A-Za-z0-9_.:-]``, starting alphanumeric."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


@dataclass(slots=True)
class Message:
    """One task invocation.

    ``options`` carries delivery options (``eta``, ``expires`` as unix times,
    ``queue``...). ``headers`` carries cross-cutting data (signing, tracing).
    Not frozen: a frozen dataclass's ``__init__`` cost five times as much, once per
    message a worker receives.
    """

    id: str
    task: str
    args: tuple[Any, ...] | list[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, Any] = field(default_factory=dict)
    attempt: int = 0

    def encode(self) -> bytes:
        """msgpack bytes; :class:`SerializationError` names an argument it cannot carry."""
        return encode_fields(self.id, self.task, self.args, self.kwargs, self.options,
                             self.headers, self.attempt)

    @classmethod
    def decode(cls, data: bytes, *, max_size: int = codec.DEFAULT_MAX_SIZE) -> Message:
        """Parse and validate; every failure is a :class:`DecodeError`."""
        return _from_wire(codec.loads(data, max_size=max_size))


def encode_fields(msg_id: str, task: str, args: tuple[Any, ...] | list[Any],
                  kwargs: Mapping[str, Any], options: Mapping[str, Any],
                  headers: Mapping[str, Any], attempt: int = 0) -> bytes:
    """The wire form of a message (``Message.encode`` without building a Message)."""
    try:
        for part in (args, kwargs, headers):
            if part:
                codec.check_keys(part)
        return codec.dumps([ENVELOPE_VERSION, msg_id, task, args, kwargs, options,
                            dict(headers) if headers else {}, attempt])
    except SerializationError as exc:
        where = codec.name_unpackable(args, kwargs) or "options or headers"
        raise SerializationError(f"task {task!r}: {where}: {exc}") from None


def _from_wire(wire: object) -> Message:
    if not isinstance(wire, list) or len(wire) != _FIELDS:
        raise DecodeError("envelope is not an asyncq message")
    version, msg_id, task, args, kwargs, options, headers, attempt = wire
    if version != ENVELOPE_VERSION:
        raise DecodeError(f"unsupported envelope version {version!r}")
    if not valid_id(msg_id):
        raise DecodeError("envelope has an invalid task id")
    if not isinstance(task, str) or not task:
        raise DecodeError("envelope has no task name")
    _check_shapes(args, kwargs, options, headers, attempt)
    return Message(msg_id, task, args, kwargs, options, headers, attempt)


def _check_shapes(args: object, kwargs: object, options: object, headers: object,
                  attempt: object) -> None:
    if (type(args) is list and type(kwargs) is dict and type(options) is dict
            and type(headers) is dict and type(attempt) is int and attempt >= 0):
        return  # msgpack made these: exact types, so the common case is one test
    if not isinstance(args, list):
        raise DecodeError("envelope args is not an array")
    for name, value in (("kwargs", kwargs), ("options", options), ("headers", headers)):
        if not isinstance(value, dict):
            raise DecodeError(f"envelope {name} is not a map")
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 0:
        raise DecodeError("envelope attempt is not a non-negative integer")


def peek_id(data: bytes) -> str | None:
    """Best effort: the task id of a message that failed to decode, if one can be read.

    Reads only the start of the envelope (its array header, version and id), so it
    also finds the id of an oversized message or one whose later fields are broken.
    """
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True, max_buffer_size=_PEEK)
    unpacker.feed(data[:_PEEK])
    try:
        if unpacker.read_array_header() != _FIELDS:
            return None
        unpacker.skip()  # the version
        msg_id = unpacker.unpack()
    except Exception:  # msgpack raises many types on bad input; there is no id then
        return None
    return msg_id if valid_id(msg_id) else None
