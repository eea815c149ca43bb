"""Reply addresses of the RPC result backend, kept by the AMQP broker."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["ReplyRoutes"]


class ReplyRoutes:
    """AMQP ``reply_to`` addresses (:class:`~asyncq.records.ReplyTransport`).

    ``own`` is this process's reply queue, opened by the RPC result backend, which is
    told of each task sent with it through ``sent``. ``lookup`` gives the reply address
    a held delivery came with, so a worker's results and retries go to the waiting
    producer.
    """

    def __init__(self) -> None:
        self.own: str | None = None
        self.sent: Callable[[str], None] | None = None
        self._held: dict[str, tuple[str, int]] = {}

    def hold(self, task_id: str, reply_to: str) -> None:
        _, count = self._held.get(task_id, (reply_to, 0))
        self._held[task_id] = (reply_to, count + 1)

    def release(self, task_id: str) -> None:
        entry = self._held.get(task_id)
        if entry is not None:
            if entry[1] <= 1:
                del self._held[task_id]
            else:
                self._held[task_id] = (entry[0], entry[1] - 1)

    def lookup(self, task_id: str) -> str | None:
        entry = self._held.get(task_id)
        return None if entry is None else entry[0]

    def reply_to_for(self, task_id: str) -> str | None:
        held = self.lookup(task_id)
        if held is not None:
            return held
        if self.own is not None and self.sent is not None:
            self.sent(task_id)
        return self.own
