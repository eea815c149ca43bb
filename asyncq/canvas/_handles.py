"""Workflow handles: awaitable like a task's, rebuilt from an id in any process.

A workflow's id starts with its kind (``chain-``, ``group-``, ``chord-``); the small
record stored under it (:mod:`asyncq.canvas._store`) says how many steps or members it
has, and their ids are derived from the workflow's id, so ``app.result(workflow_id)``
needs nothing else. Group results are read from the members' own result records.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Generator, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from asyncq.canvas._spec import derive_id, final_id, stopped_ids, unpack_nodes
from asyncq.canvas._store import store_for
from asyncq.errors import ResultTimeout, ResultUnavailable, TaskCancelled, TaskFailed
from asyncq.records import ResultRecord
from asyncq.result import TaskResult, unwrap
from asyncq.states import TaskState

if TYPE_CHECKING:
    from asyncq.app import App

__all__ = ["PREFIXES", "ChainResult", "ChordResult", "GroupResult", "WorkflowResult",
           "workflow_handle"]

R = TypeVar("R")
PREFIXES: Final = ("chain-", "group-", "chord-")


class WorkflowResult(TaskResult[R]):
    """Base of the workflow handles: the id, and the record loaded on first use."""

    __slots__ = ("_info", "_owner")

    def __init__(self, app: App, workflow_id: str, info: dict[str, Any] | None = None) -> None:
        super().__init__(app.backend, workflow_id, None, app=app)
        self._owner = app
        self._info = info

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"

    def __await__(self) -> Generator[Any, None, R]:
        return cast("Generator[Any, None, R]", self.get().__await__())  # (get is its own)

    async def load(self) -> dict[str, Any]:
        """The workflow's record (ResultUnavailable when it expired or was never sent)."""
        if self._info is None:
            info = await store_for(self._backend).get_workflow(self.id)
            if info is None:
                raise ResultUnavailable(f"no workflow {self.id} (never sent, or expired)")
            self._info = info
        return self._info

    async def ids(self) -> list[str]:
        """Every task id of the workflow (the hook for revoking all of it)."""
        raise NotImplementedError

    async def revoke(self, *, terminate: bool = False) -> None:
        """Revoke every task of the workflow.

        Hook point: revocation belongs to ``app.revoke(task_id, terminate=...)`` (another
        part of asyncq); this calls it for every id of the workflow when the App has it.
        Steps not sent yet are covered too: their ids are known in advance, and a step
        found revoked when it comes stops its workflow (its handle raises).
        """
        revoke = getattr(self._owner, "revoke", None)
        if revoke is None:
            raise NotImplementedError("this asyncq has no app.revoke yet")
        for task_id in await self.ids():
            await revoke(task_id, terminate=terminate)


class _Tail(WorkflowResult[R]):
    """A workflow whose result is one task's result (a chain's last step; a chord's
    callback)."""

    __slots__ = ()

    async def tail_id(self) -> str:
        raise NotImplementedError

    async def tail(self) -> TaskResult[R]:
        return TaskResult(self._backend, await self.tail_id(), app=self._owner)

    async def get(self, timeout: float | None = None, *, propagate: bool = True) -> Any:
        if (await self.load()).get("ignored"):
            raise ResultUnavailable(f"the last task of {self.id} ignores its results")
        async with _deadline(self.id, timeout):
            tail = await self.tail_id()
            record = await self._backend.wait(tail)
        return _value(self.id, record, propagate)

    async def info(self) -> ResultRecord | None:
        return await (await self.tail()).info()


class ChainResult(_Tail[R]):
    """``chain(...).enqueue()``: awaiting it gives the last step's result; a failed step
    stops the chain and the handle raises :class:`~asyncq.TaskFailed` naming the step."""

    __slots__ = ()

    async def ids(self) -> list[str]:
        info = await self.load()
        found = info.get("ids")
        if isinstance(found, list):
            return [str(i) for i in found]
        return [derive_id(self.id, str(i)) for i in range(int(info["n"]))]

    async def tail_id(self) -> str:
        info = await self.load()
        tail = info.get("tail")
        return tail if isinstance(tail, str) else (await self.ids())[-1]

    async def steps(self) -> list[TaskResult[Any]]:
        """A handle on each step, in order (a group in the chain is not a step)."""
        info = await self.load()
        ids = info.get("steps")
        if not isinstance(ids, list):
            ids = await self.ids()
        return [TaskResult(self._backend, str(i), app=self._owner) for i in ids]


class GroupResult(WorkflowResult[list[Any]]):
    """``group(...).enqueue()``: awaiting it gives every member's result, in order."""

    __slots__ = ()

    async def ids(self) -> list[str]:
        """The id of each member's result (a chain member's: its last step's)."""
        info = await self.load()
        return member_ids(self.id, int(info["n"]), info.get("tails"))

    async def results(self) -> list[TaskResult[Any]]:
        # each holds the App, as enqueue's handles do: an App nobody else holds is
        # closed when collected, and with it the backend these handles wait on
        return [TaskResult(self._backend, i, app=self._owner) for i in await self.ids()]

    async def get(self, timeout: float | None = None, *, propagate: bool = True) -> Any:
        """Every member's value in order; the first failure (in member order) raises
        unless ``propagate=False``, which puts the failures in the list instead."""
        async with _deadline(self.id, timeout):
            records = await _final_records(self._owner, await self.ids())
        return [_value(i, r, propagate) for i, r in zip(await self.ids(), records, strict=True)]

    async def _records(self) -> list[ResultRecord | None]:
        backend = self._backend
        return list(await asyncio.gather(*(backend.get(i) for i in await self.ids())))

    async def state(self) -> TaskState:
        return _group_state(await self._records())

    async def completed_count(self) -> int:
        """How many members succeeded."""
        return sum(1 for r in await self._records() if r and r.state is TaskState.SUCCESS)

    async def info(self) -> ResultRecord | None:
        return ResultRecord(await self.state())

    async def forget(self) -> None:
        for task_id in await self.ids():
            await self._backend.forget(task_id)


class ChordResult(_Tail[R]):
    """``chord(header, callback).enqueue()``: awaiting it gives the callback's result."""

    __slots__ = ()

    async def ids(self) -> list[str]:
        info = await self.load()
        body = unpack_nodes(info["body"])
        return [*member_ids(self.id, int(info["n"]), info.get("tails")),
                *(task_id for task_id, _ in stopped_ids(body))]

    async def tail_id(self) -> str:
        info = await self.load()
        return final_id(unpack_nodes(info["body"]), info.get("result"))

    async def group(self) -> GroupResult:
        """The header's members."""
        info = await self.load()
        return GroupResult(self._owner, self.id,
                           {"k": "group", "n": info["n"], "tails": info.get("tails") or {}})


def member_ids(group_id: str, n: int, tails: dict[str, int] | None = None) -> list[str]:
    """Each member's result id: ``derive_id(group, i)``, or for a member that is a chain
    of ``m`` steps, its last step's ``derive_id(derive_id(group, i), m - 1)``."""
    ids = [derive_id(group_id, str(i)) for i in range(n)]
    for index, steps in (tails or {}).items():
        i = int(index)
        ids[i] = derive_id(ids[i], str(int(steps) - 1))
    return ids


def workflow_handle(app: App, workflow_id: str) -> WorkflowResult[Any]:
    if workflow_id.startswith("chain-"):
        return ChainResult(app, workflow_id)
    if workflow_id.startswith("group-"):
        return GroupResult(app, workflow_id)
    return ChordResult(app, workflow_id)


@contextlib.asynccontextmanager
async def _deadline(workflow_id: str, timeout: float | None) -> AsyncIterator[None]:
    """``asyncio.timeout`` that raises ResultTimeout naming the workflow."""
    try:
        async with asyncio.timeout(timeout):
            yield
    except TimeoutError:
        raise ResultTimeout(f"workflow {workflow_id} did not finish within {timeout} s"
                            ) from None


async def _final_records(app: App, ids: Sequence[str]) -> list[ResultRecord]:
    backend = app.backend
    found = list(await asyncio.gather(*(backend.get(i) for i in ids)))
    missing = [k for k, r in enumerate(found) if r is None or not r.ready]
    if missing:
        done = await asyncio.gather(*(backend.wait(ids[k]) for k in missing))
        for k, record in zip(missing, done, strict=True):
            found[k] = record
    return [r for r in found if r is not None]


def _value(task_id: str, record: ResultRecord, propagate: bool) -> Any:
    try:
        return unwrap(task_id, record)
    except (TaskFailed, TaskCancelled) as exc:
        if propagate:
            raise
        return exc


def _group_state(records: Sequence[ResultRecord | None]) -> TaskState:
    states = [TaskState.PENDING if r is None else r.state for r in records]
    if all(s is TaskState.SUCCESS for s in states):
        return TaskState.SUCCESS
    if all(s.ready for s in states):
        return TaskState.FAILURE
    if any(s is not TaskState.PENDING for s in states):
        return TaskState.STARTED
    return TaskState.PENDING
