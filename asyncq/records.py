"""The result-record contract, in one place for brokers and result backends alike.

A record is one tag byte followed by a msgpack body. The tag lets a server-side script
(and any backend) tell a final record from the others without unpacking it::

    P PENDING  d SCHEDULED  s STARTED  R RETRY            not final: any write replaces them
    S SUCCESS  F FAILURE    C CANCELLED                    final and settled
    X FAILURE of a dead letter's rejection                 final for waiters, but gives way

**First final writer wins.** A final write never replaces a settled record (``S``,
``F``, ``C``); a rejection (``X``) gives way to a later outcome, so a dead letter that
is requeued and runs reports its result. Every store applies this rule: the memory and
RPC backends through :func:`may_replace`, Redis in Lua through :func:`lua_prelude`,
which the settle, dead-letter and store scripts share.

Decoding never imports anything named in a record: a forged record can only produce
data and a :class:`~asyncq.errors.TaskFailed` carrying strings.

Brokers and backends both import this module; it imports neither.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol, runtime_checkable

from asyncq import codec
from asyncq._record_signing import strip_signature
from asyncq.errors import DecodeError
from asyncq.states import FINAL_STATES, TaskState

__all__ = [
    "FINAL_TAGS",
    "REJECTED",
    "SETTLED_TAGS",
    "KeyWrite",
    "ReplyTransport",
    "ResultRecord",
    "decode_record",
    "encode_record",
    "encode_success",
    "is_final",
    "is_settled",
    "lua_prelude",
    "may_replace",
]

_RECORD_VERSION: Final = 1
_STATE_CODES: Final = {
    TaskState.PENDING: b"P",
    TaskState.SCHEDULED: b"d",
    TaskState.STARTED: b"s",
    TaskState.RETRY: b"R",
    TaskState.SUCCESS: b"S",
    TaskState.FAILURE: b"F",
    TaskState.CANCELLED: b"C",
}
_REJECTED_CODE: Final = b"X"
_SUCCESS_CODE: Final = _STATE_CODES[TaskState.SUCCESS]
_CODE_STATES: Final = {code[0]: state for state, code in _STATE_CODES.items()}
_CODE_STATES[_REJECTED_CODE[0]] = TaskState.FAILURE
#: ``error_type`` of a rejection record: the message never ran (it was dead-lettered).
REJECTED: Final = "asyncq.TaskRejected"
#: Tag bytes of final records.
FINAL_TAGS: Final = b"SFCX"
#: Final tags that no later final record replaces (first final writer wins).
SETTLED_TAGS: Final = b"SFC"


@dataclass(slots=True, eq=False)
class KeyWrite:
    """One record write: ``key`` gets ``value`` for ``ttl_ms``.

    ``final`` writes follow first-final-writer-wins. ``channel`` (if set) is published
    the value after the write. A broker that shares a server with the result backend
    applies these with its ack, in one atomic step.
    """

    key: str
    value: bytes
    ttl_ms: int
    channel: str | None = None
    final: bool = True


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """What a backend knows about one task."""

    state: TaskState
    value: Any = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    attempt: int = 0
    task: str | None = None
    finished_at: float | None = None

    @property
    def ready(self) -> bool:
        return self.state in FINAL_STATES


def is_final(raw: bytes | None) -> bool:
    """Whether stored bytes are a final record (waiters stop at it)."""
    return raw is not None and len(raw) > 0 and raw[0] in FINAL_TAGS


def is_settled(raw: bytes | None) -> bool:
    """A final record that a later final record must not replace (not a rejection)."""
    return raw is not None and len(raw) > 0 and raw[0] in SETTLED_TAGS


def may_replace(old: bytes | None, *, final: bool) -> bool:
    """The rule: may a write (final or not) replace the stored bytes ``old``?"""
    return not (final and is_settled(old))


def lua_prelude() -> str:
    """The rule in Lua, for scripts that store records (prepended when they load).

    ``asyncq_store(key, value, ttl_ms, final, channel)`` writes unless ``final`` and a
    settled record is there, publishes ``value`` on ``channel`` ('' for none) when it
    wrote, and returns 1 if it wrote, 0 if not.
    """
    settled = ", ".join(f"[{tag}]=true" for tag in SETTLED_TAGS)
    return (
        "-- the result-record rule (asyncq/records.py): first final writer wins\n"
        f"local asyncq_settled_tags = {{{settled}}}\n"
        "local function asyncq_store(key, value, ttl, final, channel)\n"
        "  local old = redis.call('SET', key, value, 'PX', ttl, 'GET')\n"
        "  if final and old and asyncq_settled_tags[string.byte(old, 1)] then\n"
        "    redis.call('SET', key, old, 'PX', ttl)\n"
        "    return 0\n"
        "  end\n"
        "  if channel ~= '' then redis.call('PUBLISH', channel, value) end\n"
        "  return 1\n"
        "end\n"
    )


def encode_record(record: ResultRecord) -> bytes:
    codec.check_keys(record.value)
    body = codec.dumps([
        _RECORD_VERSION, record.value, record.error_type, record.error_message,
        record.traceback, record.attempt, record.task, record.finished_at,
    ])
    if record.error_type == REJECTED and record.state is TaskState.FAILURE:
        return _REJECTED_CODE + body
    return _STATE_CODES[record.state] + body


def encode_success(value: Any, attempt: int, task: str | None, finished_at: float) -> bytes:
    """``encode_record`` of a SUCCESS record, without building the record (worker hot path)."""
    codec.check_keys(value)
    return _SUCCESS_CODE + codec.dumps([_RECORD_VERSION, value, None, None, None, attempt,
                                        task, finished_at])


def decode_record(data: bytes, *, max_size: int = codec.DEFAULT_MAX_SIZE) -> ResultRecord:
    """A record from its bytes; a signature is skipped, not checked (that is the
    backend's business when signing is on: ``ResultBackend.decode``)."""
    data = strip_signature(data)
    if not data or data[0] not in _CODE_STATES:
        raise DecodeError("not an asyncq result record")
    wire = codec.loads(data[1:], max_size=max_size)
    if not isinstance(wire, list) or len(wire) != 8 or wire[0] != _RECORD_VERSION:
        raise DecodeError("result record has an unknown shape or version")
    _, value, etype, emsg, tb, attempt, task, finished = wire
    for text in (etype, emsg, tb, task):
        if text is not None and not isinstance(text, str):
            raise DecodeError("result record has a non-text error field")
    if not isinstance(attempt, int) or not isinstance(finished, int | float | None):
        raise DecodeError("result record has bad numeric fields")
    return ResultRecord(_CODE_STATES[data[0]], value, etype, emsg, tb, attempt, task, finished)


@runtime_checkable
class ReplyTransport(Protocol):
    """What a broker offers to carry records back to the process that sent the task
    (the RPC result backend, ``asyncq.results.rpc``): RabbitMQ's ``reply_to``.

    The producer side opens a reply address; the broker stamps it on every message it
    publishes and reports each task id it sent (``on_sent``), and hands every record
    that arrives there to ``on_reply(task_id, value)``. The worker side asks where the
    record of a delivery it holds goes (``reply_address``) and sends it there.
    """

    async def open_replies(self, on_reply: Callable[[str, bytes], None],
                           on_sent: Callable[[str], None]) -> str:
        """Start receiving records; return this process's reply address."""
        ...

    async def close_replies(self) -> None: ...

    def reply_address(self, task_id: str) -> str | None:
        """The reply address of a delivery this process holds, if it came with one."""
        ...

    def send_reply(self, address: str, task_id: str, value: bytes) -> Awaitable[bool]:
        """Send a record; False when nobody is there any more (the producer is gone)."""
        ...
