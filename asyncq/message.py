"""The task message (what one call carries) and task ids.

Its bytes on the wire are the business of :mod:`asyncq.wire` (the envelope, size,
signing), used through each App's codec.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from asyncq import codec

__all__ = ["TOKEN_CHARS", "Message", "new_id", "new_ids", "process_token", "valid_id"]

_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}")
#: The first characters of every id this process makes: its reply token.
TOKEN_CHARS: Final = 8
_token = os.urandom(TOKEN_CHARS // 2).hex()


#: ids made ahead (one random read for many): ``new_id`` pops them
_ids: list[str] = []
_IDS_AHEAD: Final = 256


def _new_token() -> None:
    global _token
    _token = os.urandom(TOKEN_CHARS // 2).hex()
    _ids.clear()  # the parent's: neither the token nor the random bits are this child's


os.register_at_fork(after_in_child=_new_token)


def process_token() -> str:
    """This process's reply token: 8 random hex characters, new in a forked child.

    Every id :func:`new_id` makes starts with it, so whoever records a task's outcome
    can tell, from the id alone, which process's reply channel to notify (a result
    backend may notify the process that sent a task on one channel for all its tasks:
    :mod:`asyncq.results.redis`).
    """
    return _token


def new_id() -> str:
    """A task id: 32 hex characters, this process's token then 96 random bits (read
    from the system's random source for :data:`_IDS_AHEAD` ids at a time: a system call
    per enqueue was a few percent of a producer's CPU)."""
    ids = _ids
    if not ids:
        ids.extend(new_ids(_IDS_AHEAD))
    try:
        return ids.pop()  # (one step under the GIL: no two threads get the same id)
    except IndexError:  # another thread took the last ones meanwhile
        return new_ids(1)[0]


def new_ids(count: int) -> list[str]:
    """``count`` ids like :func:`new_id`'s, from one read of the system's random source."""
    raw = os.urandom(12 * count).hex()
    token = _token
    return [token + raw[i : i + 24] for i in range(0, 24 * count, 24)]


def valid_id(value: object) -> bool:
    """Task ids are 1-128 chars of ``[A-Za-z0-9_.:-]``, starting alphanumeric."""
    if type(value) is str and value.isascii() and len(value) <= 128 and value.encode().isalnum():
        return True  # (the ids new_id makes: cheaper than the pattern, or str.isalnum)
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
        """Unsigned envelope bytes (an App's codec signs and checks the size)."""
        from asyncq.wire import encode_fields

        return encode_fields(self.id, self.task, self.args, self.kwargs, self.options,
                             self.headers, self.attempt)

    @classmethod
    def decode(cls, data: bytes, *, max_size: int = codec.DEFAULT_MAX_SIZE) -> Message:
        """Parse and validate unsigned bytes; every failure is a :class:`DecodeError`."""
        from asyncq.wire import from_wire

        return from_wire(codec.loads(data, max_size=max_size))
