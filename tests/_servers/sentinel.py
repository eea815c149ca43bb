"""A throwaway Redis master + replica + 3 Sentinels from the local ``redis-server``.

Every process gets a free loopback port and its own directory under a temp dir; the
data nodes keep nothing on disk. The sentinels (``redis-server --sentinel``, quorum 2)
judge a master down after ``down_after_ms`` and give a failover ``failover_timeout_ms``,
both low so that a failover takes a few seconds. Reusable outside pytest::

    with SentinelGroup.started() as group:
        print(group.url())            # redis+sentinel://127.0.0.1:p1,...,127.0.0.1:p3/mymaster/0
        old = group.kill_master()     # SIGKILL
        group.wait_failover(old)      # the replica is promoted
        group.restart(old)            # comes back; the sentinels make it a replica
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from tests._servers.hole import ReplicationHole

__all__ = ["Node", "SentinelGroup", "free_port"]

SERVICE = "mymaster"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    """One redis-server process (data node or sentinel) and how to start it again."""

    workdir: Path
    config: str
    sentinel: bool = False
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    #: the port others reach it at, when not its own (behind a ReplicationHole)
    alias: int | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def known_as(self, address: str | None) -> bool:
        return address in {self.address, f"127.0.0.1:{self.alias}"}

    def start(self) -> None:
        program = shutil.which("redis-server")
        if program is None:
            raise RuntimeError("needs redis-server on PATH (apt-get install redis-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "redis.conf"
        if not conf.exists():  # a sentinel rewrites its file: keep what it learnt
            conf.write_text(
                f"port {self.port}\nbind 127.0.0.1\nprotected-mode no\n"
                f"dir {self.workdir}\n{self.config}"
            )
        args = [program, str(conf), *(["--sentinel"] if self.sentinel else [])]
        with (self.workdir / "log").open("ab") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with contextlib.closing(self.client()) as client:
            while time.monotonic() < deadline:
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        return
                time.sleep(0.02)
        raise RuntimeError(
            f"redis-server on {self.address} did not start; see {self.workdir / 'log'}"
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


_DATA = 'save ""\nappendonly no\nrepl-diskless-sync yes\nrepl-diskless-sync-delay 0\n'


@dataclass
class SentinelGroup:
    root: Path
    down_after_ms: int = 1000
    failover_timeout_ms: int = 3000
    nodes: list[Node] = field(default_factory=list)
    sentinels: list[Node] = field(default_factory=list)
    startup_s: float = 0.0
    #: the master behind a ReplicationHole, through which everyone reaches it
    proxied: bool = False
    hole: ReplicationHole | None = None

    @classmethod
    @contextlib.contextmanager
    def started(cls, **options: Any) -> Iterator[SentinelGroup]:
        root = Path(tempfile.mkdtemp(prefix="asyncq-sentinel-"))
        group = cls(root, **options)
        try:
            group.start()
            yield group
        finally:
            group.stop()
            shutil.rmtree(root, ignore_errors=True)

    def start(self) -> None:
        began = time.monotonic()
        master = Node(self.root / "n0", _DATA)
        seen_at = master.port
        if self.proxied:
            self.hole = ReplicationHole(master.port)
            master.alias = seen_at = self.hole.port
        replica = Node(self.root / "n1", _DATA + f"replicaof 127.0.0.1 {seen_at}\n")
        self.nodes = [master, replica]
        monitor = (
            f"sentinel monitor {SERVICE} 127.0.0.1 {seen_at} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
            f"sentinel failover-timeout {SERVICE} {self.failover_timeout_ms}\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        self.sentinels = [Node(self.root / f"s{i}", monitor, sentinel=True) for i in range(3)]
        for node in (*self.nodes, *self.sentinels):
            node.start()
        for node in (*self.nodes, *self.sentinels):
            node.wait_ready()
        self._wait_discovered(30.0)
        self.startup_s = time.monotonic() - began

    def _wait_discovered(self, timeout: float) -> None:
        """Until the replica is in sync and every sentinel knows the other two and it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._replica_synced() and all(self._sees_all(s) for s in self.sentinels):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the sentinels did not discover each other; see {self.root}")

    def _replica_synced(self) -> bool:
        with contextlib.closing(self.nodes[1].client()) as client:
            info = client.info("replication")
        return bool(info.get("master_link_status") == "up")

    @staticmethod
    def _sees_all(sentinel: Node) -> bool:
        with contextlib.closing(sentinel.client()) as client:
            state = client.sentinel_master(SERVICE)
        return bool(state["num-other-sentinels"] >= 2 and state["num-slaves"] >= 1)

    def stop(self) -> None:
        for node in (*self.sentinels, *self.nodes):
            node.kill()
        if self.hole is not None:
            self.hole.close()

    # -- what the tests use ----------------------------------------------------------
    def url(self, db: int = 0, query: str = "") -> str:
        hosts = ",".join(s.address for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/{db}" + (f"?{query}" if query else "")

    def master_address(self) -> str | None:
        """The master as the sentinels agree on it now (None while they disagree)."""
        seen = set()
        for sentinel in self.sentinels:
            if not sentinel.alive:
                continue
            with contextlib.closing(sentinel.client()) as client:
                host, port = client.sentinel_get_master_addr_by_name(SERVICE)
            seen.add(f"{host.decode() if isinstance(host, bytes) else host}:{port}")
        return seen.pop() if len(seen) == 1 else None

    def switches(self) -> list[tuple[str, str]]:
        """The failovers so far, in order, as (old master, new master) addresses, from
        the sentinels' logs (each sentinel logs every ``+switch-master`` it learns of)."""
        seen: list[tuple[str, str]] = []
        for sentinel in self.sentinels:
            with contextlib.suppress(OSError):
                for line in (sentinel.workdir / "log").read_text(errors="replace").splitlines():
                    if "+switch-master" in line:
                        *_, old_host, old_port, new_host, new_port = line.split()
                        switch = (f"{old_host}:{old_port}", f"{new_host}:{new_port}")
                        if switch not in seen:
                            seen.append(switch)
        return seen

    def master(self) -> Node:
        address = self.master_address()
        return next(n for n in self.nodes if n.known_as(address))

    def kill_master(self) -> Node:
        """SIGKILL the current master; return it (to restart it later)."""
        node = self.master()
        node.kill()
        return node

    def wait_failover(self, old: Node, timeout: float = 30.0) -> float:
        """Seconds until every sentinel names a master other than ``old``, which then
        answers as a master."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            address = self.master_address()
            if address is not None and not old.known_as(address):
                with (
                    contextlib.closing(self.master().client()) as client,
                    contextlib.suppress(redis.RedisError),
                ):
                    if client.info("replication")["role"] == "master":
                        return time.monotonic() - began
            time.sleep(0.05)
        raise RuntimeError(f"no failover within {timeout:g} s; see {self.root}")

    def restart(self, node: Node) -> None:
        """Start a killed data node again (empty: nothing on disk); the sentinels turn it
        into a replica of the new master."""
        node.start()
        node.wait_ready()

    def wait_replicas(self, count: int, timeout: float = 30.0) -> float:
        """Seconds until the master has ``count`` replicas in sync."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            with (
                contextlib.suppress(redis.RedisError, StopIteration),
                contextlib.closing(self.master().client()) as client,
            ):
                info = client.info("replication")
                online = [
                    v
                    for k, v in info.items()
                    if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"
                ]
                if len(online) >= count:
                    return time.monotonic() - began
            time.sleep(0.1)
        raise RuntimeError(f"the master has not {count} replica(s) within {timeout:g} s")
