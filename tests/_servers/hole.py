"""A loopback TCP proxy that can cut Redis replication links as a network partition does.

Every connection is forwarded to ``upstream``. While :meth:`ReplicationHole.cut` is on,
a connection that carries replication (its client sent ``REPLCONF``/``PSYNC``/``SYNC``)
is black-holed for good: bytes in either direction are read and dropped, nothing is
closed. The master keeps writing its replication stream (into the hole) and keeps
acknowledging clients; the replica sees a silent link; what the master wrote meanwhile
never arrives, even if the master is then killed (unlike a replica that is merely
stopped, whose kernel still holds the bytes).
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading

__all__ = ["ReplicationHole"]

#: a command of the replication handshake, as a whole RESP bulk string (a key such as
#: "asyncq:..." contains "SYNC" too)
_REPLICATION = re.compile(rb"\r\n(REPLCONF|PSYNC|SYNC)\r\n", re.IGNORECASE)


class _Pair:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client, self.server = client, server
        self.replication = False
        self.holed = False


class ReplicationHole:
    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._cutting = threading.Event()
        self._closed = threading.Event()
        self._pairs: list[_Pair] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def cut(self) -> None:
        self._cutting.set()

    def mend(self) -> None:
        """Stop cutting new replication links (those cut stay cut)."""
        self._cutting.clear()

    @property
    def holed(self) -> int:
        return sum(pair.holed for pair in self._pairs)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream), timeout=2)
            except OSError:  # the node is down: so is the proxy, for this connection
                client.close()
                continue
            server.settimeout(None)
            pair = _Pair(client, server)
            self._pairs.append(pair)
            for src, dst, up in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(pair, src, dst, up), daemon=True).start()

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket, up: bool) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if up and not pair.replication:
                    pair.replication = _REPLICATION.search(data) is not None
                if pair.replication and self._cutting.is_set():
                    pair.holed = True
                if not pair.holed:
                    dst.sendall(data)
        if not pair.holed:  # a closed side closes the other, unless in the hole
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(2)
        self._listener.close()
        for pair in self._pairs:
            for sock in (pair.client, pair.server):
                with contextlib.suppress(OSError):
                    sock.close()
