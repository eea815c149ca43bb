"""Key names of the Redis broker: every key of a queue shares the ``{queue}`` hash tag."""

from __future__ import annotations

__all__ = ["dead_key", "delayed_key", "stream_key"]


def stream_key(queue: str) -> str:
    return f"asyncq:{{{queue}}}:stream"


def delayed_key(queue: str) -> str:
    return f"asyncq:{{{queue}}}:delayed"


def dead_key(queue: str) -> str:
    return f"asyncq:{{{queue}}}:dead"
