"""The result-backend seam: store a task's outcome, wait for it, expire, forget.

A record is stored as one state byte followed by a msgpack body; the state byte
lets a server-side script see whether a record is final without unpacking it.
Decoding never imports anything named in a record: a forged record can only
produce data and a :class:`~asyncq.errors.TaskFailed` carrying strings.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from asyncq import codec
from asyncq._urls import mask_url
from asyncq.brokers import KeyWrite
from asyncq.errors import DecodeError, ResultTimeout
from asyncq.states import FINAL_STATES, TaskState

__all__ = [
    "DEFAULT_RESULT_TTL",
    "REJECTED",
    "ResultBackend",
    "ResultRecord",
    "decode_record",
    "encode_record",
]

DEFAULT_RESULT_TTL: Final = 24 * 3600.0
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
#: A dead letter's FAILURE: final for waiters, but a later outcome replaces it (the
#: message may be requeued from the dead-letter store and run after all).
_REJECTED_CODE: Final = b"X"
_SUCCESS_CODE: Final = _STATE_CODES[TaskState.SUCCESS]
_CODE_STATES: Final = {code[0]: state for state, code in _STATE_CODES.items()}
_CODE_STATES[_REJECTED_CODE[0]] = TaskState.FAILURE
#: ``error_type`` of a rejection record: the message never ran (it was dead-lettered).
REJECTED: Final = "asyncq.TaskRejected"
#: Tag bytes of final states (server-side scripts test for these).
FINAL_TAGS: Final = b"SFCX"
#: Final tags that no later final record replaces (first final writer wins).
SETTLED_TAGS: Final = b"SFC"


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


def encode_record(record: ResultRecord) -> bytes:
    codec.check_keys(record.value)
    body = codec.dumps([
        _RECORD_VERSION,
        record.value,
        record.error_type,
        record.error_message,
        record.traceback,
        record.attempt,
        record.task,
        record.finished_at,
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


class ResultBackend(abc.ABC):
    """Stores records; the base class does encoding, waiting and timeouts.

    Implementations fill ``_get``, ``_set_many``, ``_delete`` and ``_wait_raw``.
    """

    def __init__(self, url: str, *, ttl: float = DEFAULT_RESULT_TTL,
                 max_size: int = codec.DEFAULT_MAX_SIZE) -> None:
        self.url = url
        self.ttl = ttl
        self.max_size = max_size

    @property
    def safe_url(self) -> str:
        return mask_url(self.url)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.safe_url}>"

    #: Equal to a consumer's ``server_id`` when the broker can apply our writes with its ack.
    server_id: str | None = None

    async def connect(self) -> None:  # noqa: B027
        """Open connections (idempotent)."""

    async def close(self) -> None:  # noqa: B027
        """Close connections and wake waiters."""

    # -- hooks -------------------------------------------------------------------
    @abc.abstractmethod
    async def _get(self, task_id: str) -> bytes | None: ...

    @abc.abstractmethod
    async def _set_many(self, writes: Sequence[KeyWrite]) -> None: ...

    @abc.abstractmethod
    async def _delete(self, task_id: str) -> None: ...

    @abc.abstractmethod
    async def _wait_raw(self, task_id: str) -> bytes:
        """Return the stored bytes once a final record exists (no timeout here)."""

    @abc.abstractmethod
    def key_for(self, task_id: str) -> str: ...

    def channel_for(self, task_id: str) -> str | None:
        return None

    # -- template methods ----------------------------------------------------------
    def key_write(self, task_id: str, record: ResultRecord) -> KeyWrite:
        """The write that stores ``record`` (applied by us or by a co-located broker)."""
        return KeyWrite(
            key=self.key_for(task_id),
            value=encode_record(record),
            ttl_ms=int(self.ttl * 1000),
            channel=self.channel_for(task_id) if record.ready else None,
            final=record.ready,
        )

    def success_write(self, task_id: str, value: Any, attempt: int, task: str | None
                      ) -> KeyWrite:
        """``key_write`` of a SUCCESS record (the common case, built directly)."""
        return KeyWrite(self.key_for(task_id), encode_success(value, attempt, task, time.time()),
                        int(self.ttl * 1000), self.channel_for(task_id), True)

    async def store(self, task_id: str, record: ResultRecord) -> None:
        await self._set_many([self.key_write(task_id, record)])

    async def store_writes(self, writes: Sequence[KeyWrite]) -> None:
        if writes:
            await self._set_many(writes)

    async def get(self, task_id: str) -> ResultRecord | None:
        raw = await self._get(task_id)
        return None if raw is None else decode_record(raw, max_size=self.max_size)

    async def wait(self, task_id: str, timeout: float | None = None) -> ResultRecord:
        """The final record, raising :class:`ResultTimeout` after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                raw = await self._wait_raw(task_id)
        except TimeoutError:
            raise ResultTimeout(f"no result for task {task_id} within {timeout} s") from None
        return decode_record(raw, max_size=self.max_size)

    async def forget(self, task_id: str) -> None:
        await self._delete(task_id)


def now() -> float:
    return time.time()


def is_final_raw(raw: bytes | None) -> bool:
    return raw is not None and len(raw) > 0 and raw[0] in FINAL_TAGS


def is_settled_raw(raw: bytes | None) -> bool:
    """A final record that a later final record must not replace (not a rejection)."""
    return raw is not None and len(raw) > 0 and raw[0] in SETTLED_TAGS
