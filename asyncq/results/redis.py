"""Redis result backend: ``asyncq:result:<id>`` with a TTL, completion over pub/sub.

A final record is published on the task's own channel ``asyncq:done:<id>`` and on the
reply channel of the process that sent the task (``asyncq:reply:<token>``, the token
being the first characters of every id that process makes:
:func:`asyncq.message.process_token`), a call's records for one process as one message
on the channel's twin (:data:`asyncq.records.REPLY_BATCH_PREFIX`). A process waits
for its own tasks on its one reply channel and for any other id on that id's channel;
see :mod:`asyncq.results._listener` for how neither misses a record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any

from asyncq import _redis
from asyncq._batch import Coalescer, runs_by_size
from asyncq.codec import DEFAULT_MAX_SIZE
from asyncq.message import TOKEN_CHARS, process_token
from asyncq.records import KeyWrite
from asyncq.results import DEFAULT_RESULT_TTL, ResultBackend
from asyncq.results._listener import REPLY_PREFIX, Listener

__all__ = ["RedisResultBackend", "reply_channel", "result_channel", "result_key", "write_runs"]

#: The length of the ids this package makes (:func:`asyncq.message.new_id`).
_ID_CHARS = 32
#: A record's key and its own channel: these prefixes, then the task id.
_RESULT_PREFIX = "asyncq:result:"
_DONE_PREFIX = "asyncq:done:"
#: Writes stored by one script call at most (a call holds Redis for its whole run).
_PER_CALL = 500
#: Record bytes one script call takes at most (it takes one write, however large): what
#: a call publishes reaches a subscriber's output buffer at once, and Redis cuts off a
#: subscriber past 32 MB of it (``client-output-buffer-limit pubsub``, the default);
#: between calls it sends on what it has.
_BYTES_PER_CALL = 1 << 20


def result_key(task_id: str) -> str:
    return _RESULT_PREFIX + task_id


def result_channel(task_id: str) -> str:
    return _DONE_PREFIX + task_id


def reply_channel(task_id: str) -> str | None:
    """The reply channel of the process that made ``task_id`` (ids of the shape
    :func:`~asyncq.message.new_id` makes), or None for other ids."""
    if len(task_id) != _ID_CHARS:
        return None
    return REPLY_PREFIX + task_id[:TOKEN_CHARS]


class RedisResultBackend(ResultBackend):
    #: how a script notifies waiters (``SPUBLISH`` on a cluster)
    publish_command = "PUBLISH"

    def __init__(self, url: str, *, ttl: float = DEFAULT_RESULT_TTL,
                 max_size: int = DEFAULT_MAX_SIZE, recheck_interval: float = 30.0) -> None:
        super().__init__(url, ttl=ttl, max_size=max_size)
        self.client: Any = self._make_client(url)
        self.server_id = self._server_of(url)
        self.replication = _redis.replication_of(url)
        self._store_script = self.client.register_script(
            _redis.load_lua("asyncq.results", "store_result", publish=self.publish_command))
        self._reader: Coalescer[str, bytes | None] = Coalescer(self._get_batch)
        self._listener = self._listener_class(self, self.client, recheck_interval,
                                              key_of=self.key_for,
                                              load_many=self._reader.submit_many,
                                              read_many=self._get_batch)

    @property
    def _listener_class(self) -> type[Listener]:
        return Listener

    def _make_client(self, url: str) -> Any:
        return _redis.make_client(url)

    def _server_of(self, url: str) -> str | None:
        return _redis.server_id(url)

    # the module's functions themselves: one Python call each per result written, not two
    key_for = staticmethod(result_key)
    reply_for = staticmethod(reply_channel)

    def channel_for(self, task_id: str) -> str | None:  # (typed as the base's: inline)
        return _DONE_PREFIX + task_id

    async def close(self) -> None:
        await self._listener.aclose()
        await self._reader.aclose()
        await self.client.aclose()

    async def _load(self, task_id: str) -> bytes | None:
        try:  # (mapped_errors inline: a context manager per read showed in profiles)
            return await self._reader.submit(self.key_for(task_id))
        except _redis.connection_errors as exc:
            raise _redis.unavailable("Redis result backend", self.url, exc) from None

    async def _get_batch(self, keys: Sequence[str]) -> Sequence[bytes | BaseException | None]:
        # one MGET: a pipeline of GETs cost ten times as much client CPU per key
        replies: list[Any] = await self.client.mget(keys)
        return replies

    async def _put(self, writes: Sequence[KeyWrite]) -> None:
        """One script call per :data:`_PER_CALL` writes (redis-py's packing, parsing and
        read timeout, and Redis's script call, once per batch instead of per record)."""
        await self._put_in(writes, _PER_CALL)

    async def _put_each(self, writes: Sequence[KeyWrite]) -> None:
        """One script call per write (keys of many slots, on a Redis Cluster)."""
        await self._put_in(writes, 1)

    async def _put_in(self, writes: Sequence[KeyWrite], per_call: int) -> None:
        with _redis.mapped_errors("Redis result backend", self.url):
            batch = _redis.ScriptBatch(self.client, self.replication)
            for keys, args in _script_calls(writes, per_call):
                batch.script(self._store_script, keys, args)
            await batch.execute()

    async def _delete(self, task_id: str) -> None:
        with _redis.mapped_errors("Redis result backend", self.url):
            await self.client.delete(self.key_for(task_id))

    async def _wait(self, task_id: str) -> bytes:
        return await self._waiting(task_id, None)

    def _waiting(self, task_id: str, since: int | None) -> Awaitable[bytes]:
        token = process_token()
        if len(task_id) == _ID_CHARS and task_id.startswith(token):
            return self._listener.wait_mine(task_id, REPLY_PREFIX + token, since)
        channel = self.channel_for(task_id)
        assert channel is not None
        return self._listener.wait(task_id, channel)

    def wait_now(self, task_id: str, since: int | None) -> asyncio.Future[bytes] | None:
        token = process_token()
        if since is None or len(task_id) != _ID_CHARS or not task_id.startswith(token):
            return None
        return self._listener.wait_mine_now(task_id, REPLY_PREFIX + token, since)

    def abandon(self, task_id: str, waiting: asyncio.Future[bytes]) -> None:
        self._listener.drop_mine(self.key_for(task_id).encode(), waiting)


def _script_calls(writes: Sequence[KeyWrite], per_call: int
                 ) -> list[tuple[list[str], list[Any]]]:
    """The keys and arguments of each ``store_result`` call that stores ``writes``, in
    order: one call per run of :func:`write_runs`."""
    calls: list[tuple[list[str], list[Any]]] = []
    for run in write_runs(writes, per_call):
        args: list[Any] = []
        for w in run:
            args += (w.ttl_ms, "1" if w.final else "0", w.channel or "", w.value, w.reply or "")
        calls.append(([w.key for w in run], args))
    return calls


def write_runs(writes: Sequence[KeyWrite], per_call: int = _PER_CALL
               ) -> list[Sequence[KeyWrite]]:
    """``writes`` cut, in order, into the runs one script call stores: ``per_call``
    writes and :data:`_BYTES_PER_CALL` bytes of records at most (a larger record alone)."""
    sizes = [len(w.value) for w in writes]
    return [writes[run] for run in runs_by_size(sizes, _BYTES_PER_CALL, per_call)]
