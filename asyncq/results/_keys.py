"""Reading the result keys of waits, many per MGET, the record resolving the wait itself.

A handle waiting on the reply channel reads its key once the channel is confirmed (a
record stored before then came over no subscription). It used to await that read and
then its wait: two futures and a coroutine per handle. Here the read's answer settles
the wait's own future, and the reads of all the handles that wait meanwhile share one
MGET (the next batch gathers while one is on the wire).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Final

from asyncq import _redis
from asyncq.errors import DecodeError, ResultUnavailable
from asyncq.records import decode_record, is_final

if TYPE_CHECKING:
    from asyncq.results import ResultBackend

__all__ = ["READ_BATCH", "KeyReads", "ReadMany"]

#: Keys read by one MGET.
READ_BATCH: Final = 1000

ReadMany = Callable[[Sequence[str]], Awaitable[Sequence[bytes | BaseException | None]]]
_Wait = tuple[str, "asyncio.Future[bytes]"]


class KeyReads:
    """Reads the keys of the waits :meth:`add` gets, a batch at a time."""

    def __init__(self, backend: ResultBackend, key_of: Callable[[str], str],
                 read_many: ReadMany) -> None:
        self._backend = backend
        self._key_of = key_of
        self._read_many = read_many
        self._unread: list[_Wait] = []
        self._runner: asyncio.Task[None] | None = None

    def add(self, task_id: str, fut: asyncio.Future[bytes]) -> None:
        """Read ``task_id``'s key: a final record resolves ``fut``, a broken one or a
        failed read fails it, none leaves it waiting."""
        self._unread.append((task_id, fut))
        runner = self._runner
        if runner is None or runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        # a batch leaves the queue once read, so that closing fails the waits of the
        # one on the wire too
        while self._unread:
            taken = self._unread[:READ_BATCH]
            batch = [w for w in taken if not w[1].done()]
            try:
                outcomes: Sequence[bytes | BaseException | None] = await self._read_many(
                    [self._key_of(task_id) for task_id, _ in batch]) if batch else []
            except Exception as exc:  # every wait of the batch gets it
                outcomes = [exc] * len(batch)
            del self._unread[:len(taken)]
            for (_, fut), raw in zip(batch, outcomes, strict=True):
                if not fut.done():
                    self._settle(fut, raw)

    def _settle(self, fut: asyncio.Future[bytes], raw: bytes | BaseException | None) -> None:
        if isinstance(raw, BaseException):
            if isinstance(raw, _redis.connection_errors):
                raw = _redis.unavailable("Redis result backend", self._backend.url, raw)
            fut.set_exception(raw)
        elif is_final(raw):
            assert raw is not None
            fut.set_result(raw)
        elif raw is not None:  # a record that is not final must at least be one
            try:
                decode_record(raw, max_size=self._backend.max_size)
            except DecodeError as exc:
                fut.set_exception(exc)

    async def aclose(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        unread, self._unread = self._unread, []
        for _, fut in unread:
            if not fut.done():
                fut.set_exception(ResultUnavailable("the result backend was closed"))
