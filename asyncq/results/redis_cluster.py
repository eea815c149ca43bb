"""Redis Cluster result backend (``redis+cluster://host:port,host:port``).

Records are the single-node ones under keys that carry the task id as their hash tag,
``asyncq:result:{<id>}``, so results spread over every shard. Completion is notified
with sharded pub/sub (Redis 7): the store script SPUBLISHes on
``asyncq:done:{<id>}``, a channel in the record's own slot, so a notification goes
to one shard only (plain PUBLISH is copied to every node of the cluster over its bus,
a cost that grows with the cluster). A waiter SSUBSCRIBEs on the node that owns the
slot; redis-py moves the subscription when the slot moves, and the waiter re-reads
its key after any reconnect, so a move in between misses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Sequence
from typing import Any

from redis import exceptions as rexc

from asyncq import _redis, _redis_cluster, codec
from asyncq.records import KeyWrite
from asyncq.results._listener import Listener
from asyncq.results.redis import RedisResultBackend, write_runs

__all__ = ["RedisClusterResultBackend", "cluster_result_channel", "cluster_result_key"]


def cluster_result_key(task_id: str) -> str:
    return f"asyncq:result:{{{task_id}}}"


def cluster_result_channel(task_id: str) -> str:
    return f"asyncq:done:{{{task_id}}}"


class _ShardedListener(Listener):
    """SSUBSCRIBE per channel (on the slot's owner); one reader task per node."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._node_readers: dict[str, asyncio.Task[None]] = {}

    async def _subscribe_on(self, pubsub: Any, channels: Sequence[str]) -> None:
        await self._client.initialize()  # the slot map, to route each channel
        await pubsub.ssubscribe(*channels)
        self._start_node_readers(pubsub)

    async def _unsubscribe_on(self, pubsub: Any, channels: Sequence[str]) -> None:
        await pubsub.sunsubscribe(*channels)

    def _start_node_readers(self, pubsub: Any) -> None:
        for name in list(pubsub.node_pubsub_mapping):
            reader = self._node_readers.get(name)
            if reader is None or reader.done():
                self._node_readers[name] = asyncio.get_running_loop().create_task(
                    self._read_node(pubsub, name)
                )

    async def _read_node(self, pubsub: Any, name: str) -> None:
        """Hand every message of one node's connection to the shared read loop."""
        while name in pubsub.node_pubsub_mapping:
            node = self._client.get_node(node_name=name)  # type: ignore[attr-defined]
            if node is None:
                return
            try:
                message = await pubsub.get_sharded_message(target_node=node, timeout=1.0)
            except RuntimeError:  # its connection is being replaced: not ready yet
                await asyncio.sleep(0.01)
                continue
            except Exception as exc:  # the read loop logs it and rechecks every waiter
                self._inbox.put_nowait(ConnectionError(f"{type(exc).__name__}: {exc}"))
                await asyncio.sleep(0.5)
                continue
            if message is not None:
                self._inbox.put_nowait(message)

    async def _next_message(self, pubsub: Any, timeout: float) -> Any:
        self._start_node_readers(pubsub)  # nodes that subscriptions moved to
        try:
            async with asyncio.timeout(timeout):
                item = await self._inbox.get()
        except TimeoutError:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    async def _read_buffered(self, pubsub: Any) -> None:
        """Nothing: each node's reader task owns its connection (``_read_node``)."""

    async def aclose(self) -> None:
        readers, self._node_readers = list(self._node_readers.values()), {}
        for reader in readers:
            reader.cancel()
        for reader in readers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        await super().aclose()


class RedisClusterResultBackend(RedisResultBackend):
    """Results on a Redis Cluster: per-task hash tags, sharded notifications.

    A batch of writes (a worker's settled batch) is grouped by the node that serves
    each key and each node gets one script call for all of its writes
    (``store_on_node.lua``); a node that no longer serves one of them (a slot moved)
    gets its writes again one key at a time through the cluster client, which follows
    MOVED and ASK.
    """

    publish_command = "SPUBLISH"

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self._node_script = _redis.load_lua(
            "asyncq.results", "store_on_node", publish=self.publish_command
        )
        self._node_sha = self.client.register_script(self._node_script).sha

    async def _put(self, writes: Sequence[KeyWrite]) -> None:
        if len(writes) < 2:
            return await self._put_each(writes)
        with _redis.mapped_errors("Redis result backend", self.url):
            await self.client.initialize()  # the slot map
            by_node: dict[str, tuple[Any, list[KeyWrite]]] = {}
            for w in writes:
                node = self.client.get_node_from_key(w.key)
                by_node.setdefault(node.name, (node, []))[1].append(w)
            groups = list(by_node.values())
            replies = await asyncio.gather(
                *(self._put_on(node, group) for node, group in groups), return_exceptions=True
            )
            again: list[KeyWrite] = []
            for (_, group), reply in zip(groups, replies, strict=True):
                if isinstance(reply, rexc.ResponseError):
                    again += group  # a slot moved: key by key, following the cluster
                elif isinstance(reply, BaseException):
                    raise reply
        if again:
            await self._put_each(again)
        return None

    async def _put_on(self, node: Any, writes: list[KeyWrite]) -> None:
        """A node's writes, a call per :func:`write_runs` run (what one call publishes
        reaches a subscriber's output buffer at once)."""
        for run in write_runs(writes):
            await self._put_run(node, run)

    async def _put_run(self, node: Any, writes: Sequence[KeyWrite]) -> None:
        flat: list[Any] = []
        for w in writes:
            flat += (w.key, str(w.ttl_ms), w.final, w.channel or "", w.value)  # (see _consumer)
        blob = codec.dumps_for_lua(flat)
        try:
            await self.client.execute_command("EVALSHA", self._node_sha, 0, blob, target_nodes=node)
        except rexc.NoScriptError:
            await self.client.execute_command("EVAL", self._node_script, 0, blob, target_nodes=node)

    @property
    def _listener_class(self) -> type[Listener]:
        return _ShardedListener

    async def _get_batch(self, keys: Sequence[str]) -> Sequence[bytes | BaseException | None]:
        replies: list[Any] = await self.client.mget_nonatomic(keys)  # keys of many slots
        return replies

    def reply_for(self, task_id: str) -> str | None:
        return None  # no process reply channel: a waiter SSUBSCRIBEs its task's channel

    def wait_now(self, task_id: str, since: int | None) -> asyncio.Future[bytes] | None:
        return None  # (no reply channel: every wait is a subscription of its own)

    async def _wait(self, task_id: str) -> bytes:
        return await self._listener.wait(task_id, cluster_result_channel(task_id))

    def _waiting(self, task_id: str, since: int | None) -> Awaitable[bytes]:
        return self._listener.wait(task_id, cluster_result_channel(task_id))

    def _make_client(self, url: str) -> Any:
        return _redis_cluster.make_cluster_client(url)

    def _server_of(self, url: str) -> str | None:
        return None  # a record's slot is its task id's: never written with an ack

    def key_for(self, task_id: str) -> str:
        return cluster_result_key(task_id)

    def channel_for(self, task_id: str) -> str | None:
        return cluster_result_channel(task_id)
