"""mkdocs hook: Sphinx roles in docstrings (``:class:`~asyncq.ResultTimeout```) shown as code.

asyncq's docstrings use Sphinx roles, which the API reference would otherwise show as
``:class:~asyncq.ResultTimeout``. A leading ``~`` keeps only the last name, as in Sphinx.
"""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":(?:class|func|meth|attr|exc|mod|data|obj):<code>(~?)([\w.]+)</code>")


def _code(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    return f"<code>{target.rsplit('.', 1)[-1] if tilde else target}</code>"


def on_page_content(html: str, **_: Any) -> str:
    return ROLE.sub(_code, html)
