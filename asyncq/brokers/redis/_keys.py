"""Key names of the Redis broker: every key of a queue shares the ``{queue}`` hash tag."""

from __future__ import annotations

__all__ = ["LEVELS", "dead_key", "delayed_key", "level_delayed_key", "level_key", "levels_key",
           "stream_key"]


def stream_key(queue: str) -> str:
    return f"asyncq:{{{queue}}}:stream"


def delayed_key(queue: str) -> str:
    return f"asyncq:{{{queue}}}:delayed"


def dead_key(queue: str) -> str:
    return f"asyncq:{{{queue}}}:dead"


#: Priorities a message may have: 0 (the default, the plain stream) to 9 (first).
LEVELS = range(10)


def level_key(queue: str, level: int) -> str:
    """The stream of priority ``level`` (1-9); level 0 is :func:`stream_key`."""
    return stream_key(queue) if level == 0 else f"asyncq:{{{queue}}}:p{level}"


def level_delayed_key(queue: str, level: int) -> str:
    """The delayed set of priority ``level``; level 0 is :func:`delayed_key`."""
    return delayed_key(queue) if level == 0 else f"asyncq:{{{queue}}}:p{level}:delayed"


def levels_key(queue: str) -> str:
    """The set of priority levels (1-9) that ever got a message on ``queue``."""
    return f"asyncq:{{{queue}}}:levels"
