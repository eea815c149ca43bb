"""Workflow state on Redis: records under ``asyncq:wf:{id}``, chords counted in Lua.

Every key of one workflow shares the hash tag ``{id}``, so on Redis Cluster a chord's
members, its flag and its record sit on one slot and the script stays atomic.
A chord of ``n`` members costs ``n`` small script calls (``HSETNX`` + ``HLEN``), each
O(1), plus one ``HGETALL`` when the last member is in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from asyncq import _redis, codec
from asyncq.canvas._store import CanvasStore

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from asyncq.results.redis import RedisResultBackend

__all__ = ["RedisCanvasStore", "workflow_key"]


def workflow_key(workflow_id: str) -> str:
    return f"asyncq:wf:{{{workflow_id}}}"


class RedisCanvasStore(CanvasStore):
    def __init__(self, backend: RedisResultBackend) -> None:
        super().__init__(backend)
        self._text = _redis.load_lua("asyncq.canvas", "chord_done")
        self._script: tuple[Redis, Any] | None = None

    @property
    def _client(self) -> Redis:
        # read each time: an App that moves to a new event loop rebuilds its client
        backend = cast("RedisResultBackend", self.backend)
        client: Redis = backend.client  # (a RedisCluster on a cluster)
        return client

    def _chord_script(self) -> Any:
        client = self._client
        if self._script is None or self._script[0] is not client:
            self._script = (client, client.register_script(self._text))
        return self._script[1]

    async def put_workflow(self, workflow_id: str, info: dict[str, Any]) -> None:
        with _redis.mapped_errors("Redis workflow store", self.backend.url):
            await self._client.set(workflow_key(workflow_id), codec.dumps(info),
                                   px=self.ttl_ms)

    async def _get_raw(self, workflow_id: str) -> bytes | None:
        with _redis.mapped_errors("Redis workflow store", self.backend.url):
            raw = await self._client.get(workflow_key(workflow_id))
            return raw if isinstance(raw, bytes) else None

    async def chord_done(self, chord_id: str, n: int, index: int, record: bytes
                         ) -> list[bytes] | None:
        base = workflow_key(chord_id)
        with _redis.mapped_errors("Redis workflow store", self.backend.url):
            reply = await self._chord_script()(keys=[f"{base}:done", f"{base}:fired"],
                                               args=[index, n, self.ttl_ms, record])
        if not isinstance(reply, list):
            return None
        records: dict[int, bytes] = {int(reply[i]): reply[i + 1]
                                     for i in range(0, len(reply), 2)}
        return [records[i] for i in range(n)]

    async def chord_sent(self, chord_id: str) -> None:
        with _redis.mapped_errors("Redis workflow store", self.backend.url):
            await self._client.set(f"{workflow_key(chord_id)}:fired", b"sent",
                                   px=self.ttl_ms, xx=True)
