"""Bounded text from untrusted data: dead-letter reasons, task names, log lines.

A message can carry a task name, an argument name or an error text of any length (up
to the message size limit); whatever of it reaches a dead letter or a log line is cut
to :data:`MAX_FIELD` characters, with a note of how much was cut.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_FIELD", "bounded"]

#: Characters of one untrusted field kept in a dead letter's reason, task name or a log line.
MAX_FIELD: Final = 1024


def bounded(text: str, limit: int = MAX_FIELD) -> str:
    """``text``, or its first ``limit`` characters and how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters]"
