"""The one rule for queue names, on every broker (and the range of priorities).

A queue name is 1-200 characters of ``A-Z a-z 0-9 _ . : -``. Redis keys embed it in a
hash tag (``asyncq:{queue}:stream``), RabbitMQ limits names to 255 bytes and reserves
``amq.``; newlines, NUL, braces, spaces and very long names are refused before any
broker sees them: :class:`~asyncq.errors.ConfigurationError` in configuration (``App``,
``@app.task``, routes, ``Worker``), ``ValueError`` in a call's options.
"""

from __future__ import annotations

import re
from typing import Final

from asyncq.errors import ConfigurationError

__all__ = ["MAX_PRIORITY", "MAX_QUEUE_NAME", "check_priority", "check_queue", "queue_error"]

MAX_QUEUE_NAME: Final = 200
#: Priorities are 0-255 (RabbitMQ's range; a queue uses those up to its x-max-priority).
MAX_PRIORITY: Final = 255
_QUEUE_RE: Final = re.compile(rf"[A-Za-z0-9_.:\-]{{1,{MAX_QUEUE_NAME}}}")


def queue_error(name: object) -> str | None:
    """Why ``name`` is not a usable queue name, or None if it is."""
    if not isinstance(name, str):
        return f"a queue name must be a string, not {type(name).__name__}"
    if _QUEUE_RE.fullmatch(name) is None:
        shown = name if len(name) <= 60 else f"{name[:60]}..."
        return (f"invalid queue name {shown!r}: use 1-{MAX_QUEUE_NAME} characters of "
                "A-Z a-z 0-9 _ . : -")
    if name.startswith("amq."):
        return f"invalid queue name {name!r}: RabbitMQ reserves names starting with amq."
    return None


def check_queue(name: object, where: str) -> str:
    """``name`` if it is a usable queue name, else :class:`ConfigurationError`."""
    error = queue_error(name)
    if error is not None:
        raise ConfigurationError(f"{where}: {error}")
    assert isinstance(name, str)
    return name


def check_priority(priority: object) -> None:
    """``ValueError`` unless ``priority`` is None or an int in 0..:data:`MAX_PRIORITY`."""
    if priority is None:
        return
    if type(priority) is not int or not 0 <= priority <= MAX_PRIORITY:
        raise ValueError(f"options(priority=...): must be an integer 0-{MAX_PRIORITY}, "
                         f"not {priority!r}"[:200])
