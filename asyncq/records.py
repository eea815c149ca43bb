"""The result-record contract, in one place for brokers and result backends alike.

A record is one tag byte followed by a msgpack body. The tag lets a server-side script
(and any backend) tell a final record from the others without unpacking it::

    P PENDING  d SCHEDULED  s STARTED  R RETRY            not final: any write replaces them
    S SUCCESS  F FAILURE    C CANCELLED  V REVOKED         final and settled
    X FAILURE of a dead letter's rejection                 final for waiters, but gives way

**First final writer wins.** No write replaces a settled record (``S``, ``F``, ``C``,
``V``): not a later final one, and not a later progress or retry record either (a task
revoked while it runs stays ``REVOKED`` whatever it writes after). A rejection (``X``)
gives way to a later outcome, so a dead letter that is requeued and runs reports its
result. Every store applies this rule: the memory and RPC backends through
:func:`may_replace`, Redis in Lua through :func:`lua_prelude`, which the settle,
dead-letter and store scripts share.

**The body** is a msgpack array ``[1, value, error_type, error_message, traceback,
attempt, task, finished_at]``, optionally followed by a ninth item, a map of extras
(``"progress": [done, total]``, ``"eta": unix time``). Records without extras keep the
eight items, byte for byte as before; readers accept both shapes (a reader from
before the extras rejects a record that has them).

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
    "NOT_PLAIN",
    "REJECTED",
    "SETTLED_TAGS",
    "KeyWrite",
    "Progress",
    "ReplyTransport",
    "ResultRecord",
    "decode_record",
    "encode_record",
    "encode_success",
    "is_final",
    "is_settled",
    "lua_prelude",
    "may_replace",
    "success_value",
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
    TaskState.REVOKED: b"V",
}
_REJECTED_CODE: Final = b"X"
_SUCCESS_CODE: Final = _STATE_CODES[TaskState.SUCCESS]
_CODE_STATES: Final = {code[0]: state for state, code in _STATE_CODES.items()}
_CODE_STATES[_REJECTED_CODE[0]] = TaskState.FAILURE
#: ``error_type`` of a rejection record: the message never ran (it was dead-lettered).
REJECTED: Final = "asyncq.TaskRejected"
#: Tag bytes of final records.
FINAL_TAGS: Final = b"SFCVX"
#: Final tags that no later record replaces (first final writer wins).
SETTLED_TAGS: Final = b"SFCV"
#: What :func:`success_value` returns for a record it leaves to :func:`decode_record`.
NOT_PLAIN: Final = object()
#: An unsigned SUCCESS record without extras: the tag, then a msgpack array of 8.
_PLAIN_SUCCESS: Final = _SUCCESS_CODE + b"\x98"


@dataclass(slots=True, eq=False)
class KeyWrite:
    """One record write: ``key`` gets ``value`` for ``ttl_ms``.

    ``final`` writes follow first-final-writer-wins. ``channel`` (if set) is published
    the value after the write, and ``reply`` (if set: the sending process's reply
    channel) ``key``, a space and the value. A broker that shares a server with the
    result backend applies these with its ack, in one atomic step.
    """

    key: str
    value: bytes
    ttl_ms: int
    channel: str | None = None
    final: bool = True
    reply: str | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a running task says it is: ``done`` of ``total`` (``total`` may be None)."""

    done: float
    total: float | None = None

    @property
    def fraction(self) -> float | None:
        """``done / total`` (None without a positive total)."""
        return self.done / self.total if self.total else None


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """What a backend knows about one task.

    ``eta`` (unix time) is set on the ``SCHEDULED`` record of a countdown/eta call;
    ``progress`` on the ``STARTED`` records a running task writes with
    ``current_request().progress(done, total)``.
    """

    state: TaskState
    value: Any = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    attempt: int = 0
    task: str | None = None
    finished_at: float | None = None
    progress: Progress | None = None
    eta: float | None = None

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
    """The rule: may a write (final or not) replace the stored bytes ``old``?

    Nothing replaces a settled record; ``final`` is kept for callers that say it."""
    return not is_settled(old)


#: Reply channels are this and a process token (:mod:`asyncq.results._listener`).
REPLY_PREFIX: Final = "asyncq:reply:"
#: A reply channel's batch twin: this prefix and the same token. A listener that reads
#: batches subscribes both channels. A script that stored records for a process's tasks
#: sends them to the twin as one msgpack array ``[key, value, key, value, ...]``, and
#: only when nobody there got it (an older listener, or none) each as ``key value`` on
#: the reply channel itself, if anyone listens there (:func:`lua_prelude`).
REPLY_BATCH_PREFIX: Final = "asyncq:replies:"


def reply_twin(channel: str) -> str:
    """The batch twin of the reply channel ``channel``."""
    return REPLY_BATCH_PREFIX + channel[len(REPLY_PREFIX):]


def reply_of_twin(twin: str) -> str:
    """The reply channel whose batch twin is ``twin`` (:func:`reply_twin`'s inverse)."""
    return REPLY_PREFIX + twin[len(REPLY_BATCH_PREFIX):]


_SEND_REPLIES: Final = (
    "local function asyncq_send_replies(replies)\n"
    "  for reply, batch in pairs(replies) do\n"
    f"    local twin = string.sub(reply, 1, {len(REPLY_PREFIX)}) == '{REPLY_PREFIX}' and\n"
    f"      '{REPLY_BATCH_PREFIX}' .. string.sub(reply, {len(REPLY_PREFIX) + 1})\n"
    "    if not (twin and redis.call('PUBLISH', twin, cmsgpack.pack(batch)) > 0)\n"
    "        and redis.call('PUBSUB', 'NUMSUB', reply)[2] > 0 then\n"
    "      for i = 1, #batch, 2 do\n"
    "        redis.call('PUBLISH', reply, batch[i] .. ' ' .. batch[i + 1])\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
)


def lua_prelude(publish: str = "PUBLISH") -> str:
    """The rule in Lua, for scripts that store records (prepended when they load).

    ``asyncq_store(key, value, ttl_ms, final, channel, reply, replies)`` writes unless a
    settled record is there (whatever ``final`` says); when it wrote, it publishes
    ``value`` on ``channel`` with ``publish`` (``SPUBLISH`` on a Redis Cluster, where the
    channel shares the key's slot), notifies the reply channel ``reply`` ('' or nil for
    none: a reply channel carries the records of many tasks; a Redis Cluster passes
    none) and returns 1 if it wrote, 0 if not. Without ``replies`` it publishes
    ``key .. ' ' .. value`` on ``reply``; with a table it adds key and value to
    ``replies[reply]`` for ``asyncq_send_replies(replies)``, which sends each reply
    channel's records as one message (:data:`REPLY_BATCH_PREFIX`).
    """
    if publish not in ("PUBLISH", "SPUBLISH"):
        raise ValueError(f"not a publish command: {publish!r}")
    settled = ", ".join(f"[{tag}]=true" for tag in SETTLED_TAGS)
    return (
        "-- the result-record rule (asyncq/records.py): first final writer wins\n"
        f"local asyncq_settled_tags = {{{settled}}}\n"
        "local function asyncq_store(key, value, ttl, final, channel, reply, replies)\n"
        "  local old = redis.call('SET', key, value, 'PX', ttl, 'GET')\n"
        "  if old and asyncq_settled_tags[string.byte(old, 1)] then\n"
        "    redis.call('SET', key, old, 'PX', ttl)\n"
        "    return 0\n"
        "  end\n"
        f"  if channel ~= '' then redis.call('{publish}', channel, value) end\n"
        "  if not reply or reply == '' then return 1 end\n"
        "  if not replies then\n"
        "    redis.call('PUBLISH', reply, key .. ' ' .. value)\n"
        "    return 1\n"
        "  end\n"
        "  local batch = replies[reply]\n"
        "  if not batch then batch = {}; replies[reply] = batch end\n"
        "  batch[#batch + 1] = key\n"
        "  batch[#batch + 1] = value\n"
        "  return 1\n"
        "end\n"
        + _SEND_REPLIES
    )


def encode_record(record: ResultRecord) -> bytes:
    codec.check_keys(record.value)
    wire = [_RECORD_VERSION, record.value, record.error_type, record.error_message,
            record.traceback, record.attempt, record.task, record.finished_at]
    extras = _extras(record)
    if extras:
        wire.append(extras)
    body = codec.dumps(wire)
    if record.error_type == REJECTED and record.state is TaskState.FAILURE:
        return _REJECTED_CODE + body
    return _STATE_CODES[record.state] + body


def encode_success(value: Any, attempt: int, task: str | None, finished_at: float) -> bytes:
    """``encode_record`` of a SUCCESS record, without building the record (worker hot path)."""
    if type(value) not in codec.SCALARS:
        codec.check_keys(value)
    return _SUCCESS_CODE + codec.dumps([_RECORD_VERSION, value, None, None, None, attempt,
                                        task, finished_at])


def _extras(record: ResultRecord) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    if record.progress is not None:
        extras["progress"] = [record.progress.done, record.progress.total]
    if record.eta is not None:
        extras["eta"] = record.eta
    return extras


def decode_record(data: bytes, *, max_size: int = codec.DEFAULT_MAX_SIZE) -> ResultRecord:
    """A record from its bytes; a signature is skipped, not checked (that is the
    backend's business when signing is on: ``ResultBackend.decode``)."""
    data = strip_signature(data)
    if not data or data[0] not in _CODE_STATES:
        raise DecodeError("not an asyncq result record")
    wire = codec.loads(data[1:], max_size=max_size)
    if not isinstance(wire, list) or len(wire) not in (8, 9) or wire[0] != _RECORD_VERSION:
        raise DecodeError("result record has an unknown shape or version")
    _, value, etype, emsg, tb, attempt, task, finished = wire[:8]
    for text in (etype, emsg, tb, task):
        if text is not None and not isinstance(text, str):
            raise DecodeError("result record has a non-text error field")
    if not isinstance(attempt, int) or not isinstance(finished, int | float | None):
        raise DecodeError("result record has bad numeric fields")
    progress, eta = _decode_extras(wire[8] if len(wire) == 9 else {})
    return ResultRecord(_CODE_STATES[data[0]], value, etype, emsg, tb, attempt, task, finished,
                        progress, eta)


def success_value(data: bytes, *, max_size: int = codec.DEFAULT_MAX_SIZE) -> Any:
    """The value of an unsigned SUCCESS record as :func:`encode_success` writes it (what
    nearly every awaited task gets), without building a :class:`ResultRecord`; for any
    other record (another state, signed, with extras, odd fields) :data:`NOT_PLAIN`,
    which :func:`decode_record` is then for. Undecodable bytes are a DecodeError."""
    if data[:2] != _PLAIN_SUCCESS:
        return NOT_PLAIN
    wire = codec.loads(data[1:], max_size=max_size)  # an array of 8: the tag said so
    if (wire[0] == _RECORD_VERSION and wire[2] is None and wire[3] is None
            and wire[4] is None and type(wire[5]) is int
            and (wire[6] is None or type(wire[6]) is str)
            and type(wire[7]) in _FINISHED_TYPES):
        return wire[1]
    return NOT_PLAIN


_FINISHED_TYPES: Final = (float, int, type(None))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _decode_extras(extras: Any) -> tuple[Progress | None, float | None]:
    """The optional ninth item; unknown keys are ignored (room for later fields)."""
    if not isinstance(extras, dict):
        raise DecodeError("result record has bad extras")
    progress, eta = extras.get("progress"), extras.get("eta")
    if eta is not None and not _number(eta):
        raise DecodeError("result record has a bad eta")
    if progress is None:
        return None, eta
    if (not isinstance(progress, list) or len(progress) != 2 or not _number(progress[0])
            or not (progress[1] is None or _number(progress[1]))):
        raise DecodeError("result record has a bad progress field")
    return Progress(progress[0], progress[1]), eta


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
