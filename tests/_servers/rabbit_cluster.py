"""A throwaway RabbitMQ cluster from the local ``rabbitmq-server`` binary.

Every node gets free loopback ports (AMQP and distribution), its own ``HOME`` (holding
the cluster's shared Erlang cookie), config, data and log directories under one temp
dir, and no plugins, as ``scripts/servers.py`` does for one node; the nodes share one
private ``epmd`` (nodes find each other through it). The nodes boot in parallel, then
each one after the first joins it with ``rabbitmqctl stop_app / join_cluster /
start_app``. Reusable outside pytest::

    with RabbitCluster.started(nodes=3) as cluster:
        print(cluster.url("queue_type=quorum"))   # amqp://guest:guest@127.0.0.1:p1,.../?...
        cluster.kill(cluster.nodes[1])           # SIGKILL the node's whole process group
        cluster.restart(cluster.nodes[1])        # same ports, data dir: it rejoins
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from tests._modules import load_file

__all__ = ["RabbitCluster", "RabbitClusterNode", "servers_script", "usage"]


def servers_script() -> ModuleType:
    """scripts/servers.py (its node environment and probes)."""
    return load_file("asyncq_test_servers", "scripts/servers.py")


@dataclass
class RabbitClusterNode:
    workdir: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def name(self) -> str:
        return self.env["RABBITMQ_NODENAME"]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        """The node's processes (beam.smp and its helpers: one process group)."""
        if self.proc is None:
            return []
        out = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError):
                    if os.getpgid(int(entry.name)) == self.proc.pid:
                        out.append(int(entry.name))
        return out


def usage(node: RabbitClusterNode) -> tuple[float, float]:
    """CPU seconds used so far and resident MB now, over the node's processes."""
    cpu = rss = 0.0
    for pid in node.pids():
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            rss += (
                int(Path(f"/proc/{pid}/statm").read_text().split()[1])
                * os.sysconf("SC_PAGE_SIZE")
                / 2**20
            )
    return cpu, rss


@dataclass
class RabbitCluster:
    root: Path
    size: int = 3
    program: str = ""
    nodes: list[RabbitClusterNode] = field(default_factory=list)
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    #: seconds: the nodes' boot (in parallel), the joins, the whole start
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    @contextlib.contextmanager
    def started(cls, nodes: int = 3) -> Iterator[RabbitCluster]:
        root = Path(tempfile.mkdtemp(prefix="asyncq-rabbit-cluster-"))
        cluster = cls(root, nodes)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.close()
            shutil.rmtree(root, ignore_errors=True)

    def start(self, timeout: float = 120.0) -> None:
        servers = servers_script()
        program = servers.find_program(servers.RABBITMQ)
        if program is None:
            raise RuntimeError("needs rabbitmq-server (apt-get install rabbitmq-server)")
        self.program = program
        began = time.monotonic()
        epmd = servers.start_epmd(self.root, self.stack)
        cookie = secrets.token_hex(16)
        for i in range(self.size):
            port = servers.free_port()
            workdir = self.root / f"node{i}"
            workdir.mkdir()
            env = servers.rabbitmq_env(workdir, f"asyncq-rc{i}-{port}@localhost", port, epmd)
            (workdir / ".erlang.cookie").write_text(cookie)
            (workdir / ".erlang.cookie").chmod(0o400)
            self.nodes.append(RabbitClusterNode(workdir, port, env))
        for node in self.nodes:
            self._spawn(node)
        for node in self.nodes:
            self.wait_answers(node, timeout)
        self.timings["boot_s"] = round(time.monotonic() - began, 1)
        joined = time.monotonic()
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(self._join, self.nodes[1:]))
        self.timings["join_s"] = round(time.monotonic() - joined, 1)
        self.timings["startup_s"] = round(time.monotonic() - began, 1)

    def _spawn(self, node: RabbitClusterNode) -> None:
        node.starts += 1
        with (node.workdir / f"rabbitmq-server.{node.starts}.log").open("wb") as log:
            node.proc = subprocess.Popen(
                [self.program],
                cwd=node.workdir,
                env=node.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_answers(self, node: RabbitClusterNode, timeout: float = 120.0) -> float:
        """Seconds until the node answers AMQP."""
        servers = servers_script()
        began = time.monotonic()
        while not servers.amqp_answers(("127.0.0.1", node.port)):
            if not node.alive or time.monotonic() - began > timeout:
                raise RuntimeError(f"rabbitmq-server {node.name} did not start; see {node.workdir}")
            time.sleep(0.1)
        return time.monotonic() - began

    def _join(self, node: RabbitClusterNode) -> None:
        self.ctl(node, "stop_app")
        self.ctl(node, "join_cluster", self.nodes[0].name)
        self.ctl(node, "start_app")

    def ctl(self, node: RabbitClusterNode, *args: str, timeout: float = 120.0) -> str:
        """``rabbitmqctl -n <node> args...`` with the node's environment."""
        ctl = Path(self.program).with_name("rabbitmqctl")
        done = subprocess.run(
            [str(ctl), "-n", node.name, *args],
            env=node.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode:
            raise RuntimeError(
                f"rabbitmqctl {' '.join(args)} on {node.name} failed: {done.stdout}{done.stderr}"
            )
        return done.stdout

    def url(self, query: str = "") -> str:
        hosts = ",".join(node.address for node in self.nodes)
        return f"amqp://guest:guest@{hosts}/" + (f"?{query}" if query else "")

    def kill(self, node: RabbitClusterNode) -> None:
        """SIGKILL every process of the node, no clean stop."""
        if node.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.proc.pid, signal.SIGKILL)
            node.proc.wait(10)

    def restart(self, node: RabbitClusterNode) -> float:
        """Start a killed node again (same ports, data dir: it is still a member);
        seconds until it answers."""
        self._spawn(node)
        return self.wait_answers(node)

    def queues(self, node: RabbitClusterNode, *columns: str) -> list[list[str]]:
        out = self.ctl(node, "list_queues", "-q", "--no-table-headers", "name", *columns)
        return [line.split() for line in out.splitlines() if line.strip()]

    def close(self) -> None:
        for node in self.nodes:
            if node.alive:
                assert node.proc is not None
                node.proc.terminate()  # a clean stop
        for node in self.nodes:
            if node.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.proc.wait(30)
                self.kill(node)
        self.stack.close()  # the private epmd
