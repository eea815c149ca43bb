"""The peers' side-by-side smoke (``-m peers``) is not in the default run: it builds and
runs five other task queues, which takes minutes and depends on their packages. Run it
with ``./scripts/test tests/benchmarks -m peers``; asyncq's own benchmark smoke
(test_core_smoke.py) stays in the default run."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "peers" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="the peers' side-by-side smoke: use -m peers")
    for item in items:
        if item.get_closest_marker("peers"):
            item.add_marker(skip)
