"""Printing what came from a broker inside rich markup: :func:`asyncq.cli._text.literal`
(control characters visible, bounded) with the markup escaped as well."""

from __future__ import annotations

import json
from typing import Any, Final

from asyncq.cli._text import literal as text_literal

__all__ = ["bounded_json", "dump_json", "literal"]

MAX_TEXT: Final = 200


def literal(value: Any, limit: int = MAX_TEXT) -> str:
    """``value`` as text safe inside rich markup: control characters escaped and cut as
    :func:`asyncq.cli._text.literal` does, then rich markup escaped."""
    from rich.markup import escape  # (not imported by `asyncq worker`)

    return escape(text_literal("" if value is None else str(value), limit))


def dump_json(data: Any) -> str:
    """JSON for ``--json`` (control characters escaped by JSON itself)."""
    return json.dumps(data, default=str, indent=2, sort_keys=True)


def bounded_json(value: Any, limit: int) -> Any:
    """``value`` for ``--json`` with every string (keys too) cut at ``limit`` characters
    and bytes shown as their size: what the broker holds is bounded wherever it is shown."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + f"... [{len(value) - limit} more]"
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict):
        return {bounded_json(str(k), limit): bounded_json(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [bounded_json(item, limit) for item in value]
    return value
