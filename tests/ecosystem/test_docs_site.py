"""The docs site builds with `mkdocs build --strict`, with its API reference and search."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install 'asyncq[docs]')")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
         "-d", str(site)], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    api = (site / "reference" / "api" / "index.html").read_text()
    # generated from docstrings: one method of each of a few public classes
    for name in ("enqueue_many", "TaskResult", "statistics", "asyncq_lifespan", "AsyncqError"):
        assert name in api, f"{name} is not in the API reference"
    assert ":class:" not in api  # docs/hooks/sphinx_roles.py shows roles as code
    assert "<code>ResultTimeout</code>" in api
    assert (site / "search" / "search_index.json").exists()
    assert not (site / "hooks").exists()
    assert (site / "guides" / "fastapi" / "index.html").exists()
