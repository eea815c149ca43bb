"""Retry delays: exponential backoff with a cap and full jitter (pure maths)."""

from __future__ import annotations

import random

__all__ = ["retry_delay"]


def retry_delay(attempt: int, *, base: float = 1.0, cap: float = 600.0, jitter: bool = True,
                rng: random.Random | None = None) -> float:
    """Seconds before retry number ``attempt + 1`` (``attempt`` counts from 0).

    ``base * 2**attempt`` capped at ``cap``; with ``jitter`` a uniform draw in
    ``[0, that]`` ("full jitter"), so retries of many tasks that failed together
    spread out instead of stampeding.
    """
    if attempt < 0 or base < 0 or cap < 0:
        raise ValueError("attempt, base and cap must be non-negative")
    ceiling = min(cap, base * 2.0 ** min(attempt, 64))
    if not jitter:
        return ceiling
    return (rng or random).uniform(0.0, ceiling)
