from __future__ import annotations

from collections.abc import Callable

import pytest

BROKERS = ["memory", "redis", "amqp"]


@pytest.fixture(params=BROKERS)
def any_broker(request: pytest.FixtureRequest, unique: Callable[[str], str]) -> str:
    if request.param == "memory":
        return f"memory://{unique('ops')}"
    fixture = "redis_url" if request.param == "redis" else "amqp_url"
    return str(request.getfixturevalue(fixture))


from tests.integration.conftest import real_broker, worker_env  # noqa: E402

__all__ = ["real_broker", "worker_env"]
