"""Printing text that came from the broker: literally, on one line, bounded.

Dead letters, task names, reasons and error texts can be written by anyone with write
access to the broker. Nothing of theirs is interpreted: rich markup (``[link=...]``,
``[/]``) is never parsed (cells are :class:`rich.text.Text`), control characters and
escape sequences are shown as Python escapes (``\\x1b``, ``\\n``, ``\\u202e``) instead of
reaching the terminal, and each field is cut at a documented length.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.text import Text

__all__ = [
    "ERROR_LIMIT",
    "FIELD_LIMIT",
    "INSPECT_LIMIT",
    "LazyConsole",
    "LiteralFormatter",
    "cell",
    "literal",
]

#: Characters of one field in `asyncq dlq list` (the rest is cut, with a count).
FIELD_LIMIT = 200
#: Characters of one string in `asyncq dlq inspect`.
INSPECT_LIMIT = 2000
#: Characters of one `asyncq: error: ...` line.
ERROR_LIMIT = 2000


def _visible(char: str) -> str:
    if char.isprintable():
        return char
    return char.encode("unicode_escape").decode("ascii")


def literal(text: str, limit: int = FIELD_LIMIT) -> str:
    """``text`` with non-printable characters escaped, cut after ``limit`` characters."""
    shown = "".join(_visible(char) for char in text[:limit])
    if len(text) > limit:
        shown += f"... [{len(text) - limit} more characters]"
    return shown


def cell(text: str, limit: int = FIELD_LIMIT) -> Text:
    """A table cell that rich prints as is (no markup, no emoji codes, no highlighting)."""
    from rich.text import Text  # (rich is imported by the commands that print with it)

    return Text(literal(text, limit))


class LazyConsole:
    """rich's Console, made at the first print (160 columns wide when not a terminal):
    rich takes tens of milliseconds to import, and ``asyncq worker`` never prints
    through it."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Any = None

    def print(self, *objects: Any) -> None:
        if self._console is None:
            from rich.console import Console

            width = None if Console().is_terminal else 160
            self._console = Console(width=width, **self._options)
        self._console.print(*objects)


def _keep_lines(text: str) -> str:
    return "\n".join(literal(line, len(line)) for line in text.split("\n"))


class LiteralFormatter(logging.Formatter):
    """Log lines with control characters escaped: a task name, an exception message or
    a reason from the broker can neither split a record over lines nor drive the terminal.
    Tracebacks keep their line breaks (each line is escaped)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        return literal(text, len(text))

    def formatException(self, ei: Any) -> str:
        return _keep_lines(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _keep_lines(super().formatStack(stack_info))
