"""A throwaway Redis Cluster from the local ``redis-server`` and ``redis-cli`` binaries.

Each master gets a free loopback port and a free cluster-bus port (``cluster-port``),
its own directory under a temp dir, no persistence. ``redis-cli --cluster create``
joins them with no replicas. Reusable outside pytest::

    with RedisCluster.started(masters=3) as cluster:
        print(cluster.url)        # redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...

:meth:`RedisCluster.move_slot` migrates one hash slot (keys included) from its owner
to another master the way ``redis-cli --cluster reshard`` does: SETSLOT IMPORTING /
MIGRATING, MIGRATE in batches, SETSLOT NODE on every master.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

__all__ = ["ClusterNode", "RedisCluster", "free_port", "proc_cpu_seconds"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds, from /proc/<pid>/stat."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class ClusterNode:
    workdir: Path
    port: int = field(default_factory=free_port)
    bus_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=30)

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            str(self.bus_port),
            "--cluster-config-file",
            str(self.workdir / "nodes.conf"),
            "--cluster-node-timeout",
            "5000",
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            "--logfile",
            str(self.workdir / "redis.log"),
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.ConnectionError), self.client() as c:
                if c.ping():
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.address} did not start: {self.log_tail()}")

    def log_tail(self) -> str:
        log = self.workdir / "redis.log"
        return log.read_text()[-2000:] if log.exists() else "(no log)"

    def node_id(self) -> str:
        with self.client() as c:
            return str(c.execute_command("CLUSTER", "MYID").decode())

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class RedisCluster:
    """N masters, no replicas, every slot covered."""

    def __init__(self, masters: int = 3) -> None:
        if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
            raise RuntimeError(
                "a Redis Cluster needs redis-server and redis-cli "
                "(Debian/Ubuntu package redis-server)"
            )
        self.tmp = Path(tempfile.mkdtemp(prefix="asyncq-cluster-"))
        self.nodes = [ClusterNode(self.tmp / f"n{i}") for i in range(masters)]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(n.address for n in self.nodes)

    @classmethod
    @contextlib.contextmanager
    def started(cls, masters: int = 3) -> Iterator[RedisCluster]:
        cluster = cls(masters)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_ready()
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(n.address for n in self.nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_ok()

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every node says cluster_state:ok and agrees on the slot owners."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._ok(node) for node in self.nodes) and self._agree():
                return
            time.sleep(0.1)
        raise RuntimeError("the Redis Cluster did not converge: " + self.nodes[0].log_tail())

    @staticmethod
    def _ok(node: ClusterNode) -> bool:
        with node.client() as c:
            return b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO")

    def _agree(self) -> bool:
        views = set()
        for node in self.nodes:
            with node.client() as c:
                views.add(repr(sorted(c.execute_command("CLUSTER", "SLOTS"))))
        return len(views) == 1

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- slots -----------------------------------------------------------------
    def owner(self, slot: int) -> ClusterNode:
        with self.nodes[0].client() as c:
            for start, end, primary, *_ in c.execute_command("CLUSTER", "SLOTS"):
                if int(start) <= slot <= int(end):
                    return next(n for n in self.nodes if n.port == int(primary[1]))
        raise LookupError(f"slot {slot} is not covered")

    @staticmethod
    def slot_of(key: str) -> int:
        from redis.crc import key_slot

        return int(key_slot(key.encode()))

    def move_slot(
        self, slot: int, target: ClusterNode, *, batch: int = 100, pause: float = 0.0
    ) -> int:
        """Migrate ``slot`` with its keys to ``target`` while clients keep working
        (they get ASK during the move and MOVED after); returns keys moved."""
        source = self.owner(slot)
        if source is target:
            return 0
        src_id, dst_id = source.node_id(), target.node_id()
        moved = 0
        with source.client() as src, target.client() as dst:
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch):
                src.execute_command(
                    "MIGRATE", "127.0.0.1", target.port, "", 0, 30000, "KEYS", *keys
                )
                moved += len(keys)
                time.sleep(pause)
            dst.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        for node in self.nodes:
            if node not in (source, target):
                with node.client() as c:
                    c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        self.wait_ok()
        return moved


@pytest.fixture(scope="session", name="redis_cluster")
def redis_cluster_fixture() -> Iterator[RedisCluster]:
    """A 3-master Redis Cluster for the session (import this fixture to use it)."""
    try:
        cluster = RedisCluster(3)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
