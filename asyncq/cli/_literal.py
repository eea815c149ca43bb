"""Printing what came from a broker: literally, visibly and bounded."""

from __future__ import annotations

import json
from typing import Any, Final

from rich.markup import escape

__all__ = ["dump_json", "literal"]

MAX_TEXT: Final = 200


def literal(value: Any, limit: int = MAX_TEXT) -> str:
    """``value`` as text safe for a rich console: markup escaped, control characters
    shown as ``\\xNN`` (or ``\\n``, ``\\t``), at most ``limit`` characters (then ``…``)."""
    text = "" if value is None else str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    visible = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return escape(visible)


def dump_json(data: Any) -> str:
    """JSON for ``--json`` (control characters escaped by JSON itself)."""
    return json.dumps(data, default=str, indent=2, sort_keys=True)
