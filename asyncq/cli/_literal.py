"""Printing what came from a broker inside rich markup: :func:`asyncq.cli._text.literal`
(control characters visible, bounded) with the markup escaped as well."""

from __future__ import annotations

import json
from typing import Any, Final

from rich.markup import escape

from asyncq.cli._text import literal as text_literal

__all__ = ["dump_json", "literal"]

MAX_TEXT: Final = 200


def literal(value: Any, limit: int = MAX_TEXT) -> str:
    """``value`` as text safe inside rich markup: control characters escaped and cut as
    :func:`asyncq.cli._text.literal` does, then rich markup escaped."""
    return escape(text_literal("" if value is None else str(value), limit))


def dump_json(data: Any) -> str:
    """JSON for ``--json`` (control characters escaped by JSON itself)."""
    return json.dumps(data, default=str, indent=2, sort_keys=True)
