"""A SIGTERM that comes while the worker command starts, before the handlers of what it
runs (the event loop's, the supervisor's or the reloader's) are installed.

The default action would end the process (status -15) right after its banner; an
exception raised from the handler could land anywhere in start-up. So the signal is
noted here and acted on once those handlers are in place.
"""

from __future__ import annotations

from types import FrameType

__all__ = ["note_early", "take_early"]

_early: list[int] = []


def note_early(signum: int, _frame: FrameType | None) -> None:
    """The SIGTERM handler of the start-up (``signal.signal(SIGTERM, note_early)``)."""
    _early.append(signum)


def take_early() -> list[int]:
    """The signals :func:`note_early` noted, once."""
    signals = _early[:]
    _early.clear()
    return signals
