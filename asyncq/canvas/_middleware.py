"""The worker's side of workflows: send what comes next once a step is final.

:class:`Canvas` is a middleware that the worker adds only for messages carrying the
``asyncq.wf`` header (a plain task never meets it). Its ``after_run`` runs before the
step's result is recorded and its message acked, so a crash anywhere in between
leaves the message to be redelivered, and the redelivery sends the next step again
under the same derived id. A step whose result is already recorded (a duplicate
from such a resend) is not run again (``before_run``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from asyncq.canvas._handles import member_ids
from asyncq.canvas._send import RESENT, send_next
from asyncq.canvas._spec import (
    WF,
    Node,
    Spec,
    derive_id,
    stopped_ids,
    unpack_nodes,
    unpack_specs,
)
from asyncq.canvas._store import store_for
from asyncq.errors import (
    BrokerError,
    ConfigurationError,
    DecodeError,
    SerializationError,
    TaskNotRegistered,
    TimeLimitExceeded,
)
from asyncq.middleware import Job, Middleware, RunResult, Skip
from asyncq.records import (
    REJECTED,
    ResultRecord,
    decode_record,
    encode_record,
    encode_success,
)
from asyncq.states import TaskState

if TYPE_CHECKING:
    from asyncq.app import App

__all__ = ["Canvas", "deliver_chord", "failure_of"]

logger = logging.getLogger("asyncq.canvas")

_DUPLICATE: Final = "canvas.duplicate"
_MAY_REPEAT: Final = {RESENT: True}
#: Final states of a step that ran (others, such as a revocation, mean it never will).
_RAN: Final = frozenset({TaskState.SUCCESS, TaskState.FAILURE})
#: How long a step keeps trying to send what follows while the broker is away.
PERSIST_FOR: Final = 300.0
#: Errors that mean the next step cannot be built at all (recorded on the rest).
_UNSENDABLE: Final = (TaskNotRegistered, SerializationError, ConfigurationError, ValueError,
                      DecodeError)


class Canvas(Middleware):
    """Continues chains, calls links, counts chord members (see the module docstring)."""

    async def before_run(self, job: Job) -> Skip | None:
        wf = job.message.headers.get(WF)
        if not isinstance(wf, dict) or not wf.get(RESENT):
            return None  # sent once by a producer: a redelivery is the worker's business
        existing = await job.app.backend.get(job.id)
        if existing is None or not existing.ready or existing.error_type == REJECTED:
            return None
        if existing.state in _RAN:  # a resend of a step that ran: its workflow went on
            logger.info("%s[%s] already has a result; not running a resent step again",
                        job.name, job.id)
            job.state[_DUPLICATE] = True
        # else revoked or cancelled before it ran: skipped, and the workflow stops here
        return Skip(existing.state, existing.error_type or "", existing.error_message or "")

    async def after_run(self, job: Job, result: RunResult) -> None:
        wf = job.message.headers.get(WF)
        if job.state.get(_DUPLICATE) or result.state is TaskState.RETRY or \
                not isinstance(wf, dict):
            return
        if result.state is TaskState.SUCCESS:
            await _persist(job, lambda: _succeeded(job, wf, result.value))
        else:
            await _persist(job, lambda: _failed(job, wf, result))
        if isinstance(wf.get("chord"), list):
            await _persist(job, lambda: _chord_member(job, wf["chord"], result))


async def _persist(job: Job, action: Callable[[], Awaitable[None]]) -> None:
    """Run ``action`` until the servers take it (a stopping worker cancels this, and the
    message goes back to the broker unacked: the redelivery tries again)."""
    deadline = time.monotonic() + PERSIST_FOR
    delay = 0.1
    while True:
        try:
            await action()
            return
        except BrokerError as exc:
            if time.monotonic() > deadline:
                logger.error("%s[%s]: could not send the next workflow step for %.0f s; "
                             "giving up: %s", job.name, job.id, PERSIST_FOR, exc)
                return
            logger.warning("%s[%s]: sending the next workflow step failed (%s); retrying",
                           job.name, job.id, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def _succeeded(job: Job, wf: dict[str, Any], value: Any) -> None:
    rest = unpack_nodes(wf.get("chain") or [])
    if rest:
        try:
            await send_next(job.app, rest, (value,), resent=True)
        except _UNSENDABLE as exc:  # not registered here, or the value cannot be sent
            await _stop_chain(job, rest, failure_of(exc, TaskState.FAILURE), "could not start")
    for index, spec in enumerate(unpack_specs(wf.get("link") or [])):
        spec.id = derive_id(job.id, f"link{index}")
        await _send_linked(job, spec, value)


async def _failed(job: Job, wf: dict[str, Any], result: RunResult) -> None:
    failure = _describe(result)
    rest = unpack_nodes(wf.get("chain") or [])
    if rest:
        await _stop_chain(job, rest, failure, "failed")
    for index, spec in enumerate(unpack_specs(wf.get("link_error") or [])):
        spec.id = derive_id(job.id, f"err{index}")
        await _send_linked(job, spec, job.id)


async def _send_linked(job: Job, spec: Spec, first_arg: Any) -> None:
    try:
        await job.app.send_signature(
            spec.signature(job.app, first_arg, with_parent=True, extra=_MAY_REPEAT))
    except _UNSENDABLE as exc:
        logger.error("%s[%s]: cannot send the linked task %s: %s", job.name, job.id,
                     spec.task, exc)


async def _stop_chain(job: Job, rest: list[Node], failure: ResultRecord, verb: str) -> None:
    """Record on every step that will not run now that ``job``'s step stopped the chain."""
    pos = job.message.headers[WF].get("pos") or ["?", "?"]
    what = f"step {pos[0]} of {pos[1]} ({job.name}[{job.id}]) {verb}"
    await _record_stopped(job, stopped_ids(rest), failure, what)
    last = rest[-1]
    coords = last.wf.get("chord") if isinstance(last, Spec) else None
    if isinstance(last, Spec) and isinstance(coords, list):
        # a chain that was a chord's member: it failed as one
        stopped = ResultRecord(failure.state, None, failure.error_type,
                               f"{what}: {failure.error_message or ''}", failure.traceback, 0,
                               last.task, time.time())
        await _chord_report(job, coords, encode_record(stopped))


async def _record_stopped(job: Job, targets: list[tuple[str, str]], failure: ResultRecord,
                          what: str) -> None:
    backend = job.app.backend
    text = f"{what}: {failure.error_message or ''}"
    for task_id, task in targets:
        record = ResultRecord(failure.state, None, failure.error_type, text,
                              failure.traceback, 0, task, time.time())
        await backend.store(task_id, record)


def _describe(result: RunResult) -> ResultRecord:
    if result.skipped is not None:
        skip = result.skipped
        return ResultRecord(skip.state, None, skip.error_type, skip.message)
    assert result.error is not None
    return failure_of(result.error, result.state)


def failure_of(exc: BaseException, state: TaskState) -> ResultRecord:
    """The record of a failure, as the worker records it (type name, message, traceback)."""
    from asyncq.worker.outcomes import describe

    etype, text, tb = describe(exc)
    if isinstance(exc, TimeLimitExceeded):
        etype = "TimeoutError"
    return ResultRecord(state, None, etype, text, tb, 0, None, time.time())


def _member_record(job: Job, result: RunResult) -> bytes:
    if result.state is TaskState.SUCCESS:
        try:
            return encode_success(result.value, job.attempt, job.name, time.time())
        except SerializationError as exc:
            return encode_record(failure_of(exc, TaskState.FAILURE))
    failure = _describe(result)
    return encode_record(ResultRecord(failure.state, None, failure.error_type,
                                      failure.error_message, failure.traceback, job.attempt,
                                      job.name, time.time()))


async def _chord_member(job: Job, chord: list[Any], result: RunResult) -> None:
    await _chord_report(job, chord, _member_record(job, result))


async def _chord_report(job: Job, chord: list[Any], member_record: bytes) -> None:
    """Count one final member of a chord; the member that completes it sends the callback."""
    chord_id, n, index = chord
    store = store_for(job.app.backend)
    records = await store.chord_done(chord_id, n, index, member_record)
    if records is None:
        return
    info = await store.get_workflow(chord_id)
    if info is None:
        logger.error("chord %s: its record expired before every member was done; the "
                     "callback is not sent", chord_id)
        return
    body = unpack_nodes(info.get("body") or [])
    members = [decode_record(raw, max_size=job.app.codec.max_size) for raw in records]
    result_id = info.get("result")
    targets = stopped_ids(body) or ([(result_id, "group")] if isinstance(result_id, str) else [])
    await _fire(job, chord_id, body, members, member_ids(chord_id, n, info.get("tails")),
                result_id, targets)
    await store.chord_sent(chord_id)


async def _fire(job: Job, chord_id: str, body: list[Node], members: list[ResultRecord],
                ids: list[str], result_id: str | None, targets: list[tuple[str, str]]) -> None:
    bad = next((i for i, m in enumerate(members) if m.state is not TaskState.SUCCESS), None)
    if bad is None:
        try:
            await deliver_chord(job.app, chord_id, body, result_id, [m.value for m in members])
        except _UNSENDABLE as exc:
            await _record_stopped(job, targets, failure_of(exc, TaskState.FAILURE),
                                  f"chord {chord_id}: the callback could not start")
        return
    member = members[bad]
    what = (f"chord {chord_id}: member {bad + 1} of {len(members)} "
            f"({member.task}[{ids[bad]}]) failed")
    await _record_stopped(job, targets, member, what)
    first = body[0] if body else None
    if isinstance(first, Spec):
        for index, spec in enumerate(unpack_specs(first.wf.get("link_error") or [])):
            spec.id = derive_id(first.id, f"err{index}")
            await _send_linked(job, spec, first.id)


async def deliver_chord(app: App, chord_id: str, body: list[Node], result_id: str | None,
                        values: list[Any]) -> None:
    """Every member succeeded: send the callback with ``values``, or (a group ending a
    chain) record ``values`` as the result of ``result_id``."""
    if body:
        await send_next(app, body, (values,), resent=True)
    elif result_id is not None:
        await app.backend.store(result_id, ResultRecord(
            TaskState.SUCCESS, values, task="asyncq.group", finished_at=time.time()))
    else:
        logger.error("chord %s has neither a callback nor a result id", chord_id)
