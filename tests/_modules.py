"""A file of the repository (a script, a benchmark) imported as a module by tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["ROOT", "load_file"]

ROOT = Path(__file__).resolve().parents[1]


def load_file(name: str, relative: str) -> ModuleType:
    """``ROOT / relative`` as module ``name``, loaded once per process (registered in
    ``sys.modules``: dataclasses look their module up there)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / relative)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]
