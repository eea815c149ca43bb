"""Find the App a user names on the command line (``package.module:attribute``)."""

from __future__ import annotations

import importlib
import os
import sys
import traceback

from asyncq.app import App
from asyncq.errors import AsyncqError, ConfigurationError

__all__ = ["load_app"]


def load_app(path: str) -> App:
    """Import ``module:attr`` (or ``module``, finding its one App) with the cwd importable."""
    module_name, _, attr = path.partition(":")
    if not module_name:
        raise ConfigurationError(f"expected MODULE:ATTRIBUTE, got {path!r}")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigurationError(f"cannot import {module_name!r}: no module named "
                                     f"{exc.name!r} (run from the project directory?)") from None
        raise ConfigurationError(_import_failure(module_name, exc)) from None
    except AsyncqError:  # App(...) refused its arguments: the message says which
        raise
    except Exception as exc:  # the user's module failed: say where, in one line
        raise ConfigurationError(_import_failure(module_name, exc)) from None
    return _pick(module, module_name, attr)


def _import_failure(module_name: str, exc: Exception) -> str:
    """One line: the error and where (the innermost frame in the user's files, else the
    innermost frame)."""
    text, where = str(exc), ""
    if isinstance(exc, SyntaxError):
        text, where = exc.msg, f" ({exc.filename}, line {exc.lineno})"
    elif exc.__traceback__ is not None:
        frames = traceback.extract_tb(exc.__traceback__)
        cwd = os.getcwd() + os.sep
        own = [f for f in frames if f.filename.startswith(cwd)] or frames
        if own:
            where = f" ({own[-1].filename}, line {own[-1].lineno})"
    return f"cannot import {module_name!r}: {type(exc).__name__}: {text}{where}"


def _pick(module: object, module_name: str, attr: str) -> App:
    if attr:
        found = getattr(module, attr, None)
        if not isinstance(found, App):
            what = "not found" if found is None else f"a {type(found).__name__}, not an App"
            raise ConfigurationError(f"{module_name}:{attr} is {what}")
        return found
    apps = [value for value in vars(module).values() if isinstance(value, App)]
    if len(apps) != 1:
        raise ConfigurationError(f"{module_name} has {len(apps)} App objects; "
                                 f"name one as {module_name}:ATTRIBUTE")
    return apps[0]
