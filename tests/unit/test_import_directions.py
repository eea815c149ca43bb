"""The seams hold: which parts of asyncq may import which (every import counts, also
those inside functions and under TYPE_CHECKING)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "asyncq"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every asyncq module ``path`` imports, resolved to dotted names."""
    tree = ast.parse(path.read_text())
    package = _module_name(path) if path.name == "__init__.py" else \
        _module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:  # a submodule if there is one, else the module itself
                sub = f"{base}.{alias.name}"
                found.add(sub if _is_module(sub) else base)
    return {name for name in found if name == "asyncq" or name.startswith("asyncq.")}


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _modules(*parts: str) -> list[Path]:
    out: list[Path] = []
    for part in parts:
        target = PACKAGE / part
        out += sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]
    return out


def _under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


RULES = [
    # (modules, forbidden imports)
    (("brokers",), ("asyncq.app", "asyncq.worker", "asyncq.results", "asyncq.task",
                    "asyncq.result", "asyncq.cli", "asyncq.middleware")),
    (("results",), ("asyncq.brokers", "asyncq.app", "asyncq.worker", "asyncq.task",
                    "asyncq.cli", "asyncq.middleware")),
    (("codec", "wire", "records", "message", "signing"),
     ("asyncq.brokers", "asyncq.results", "asyncq.app", "asyncq.worker", "asyncq.cli")),
]


@pytest.mark.parametrize(("parts", "forbidden"), RULES, ids=["brokers", "results", "codec"])
def test_no_wrong_way_imports(parts: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    wrong = {f"{_module_name(path)} imports {name}"
             for path in _modules(*parts) for name in _imports(path)
             if _under(name, *forbidden)}
    assert not wrong, sorted(wrong)


def test_broker_families_have_no_import_cycles() -> None:
    graph = {_module_name(p): _imports(p) for p in _modules("brokers", "results")}
    for name in list(graph):
        graph[name] = {n for n in graph[name] if n in graph and n != name}
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            raise AssertionError(" -> ".join([*path[path.index(node):], node]))
        if node in done:
            return
        for nxt in sorted(graph[node]):
            visit(nxt, [*path, node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])


def test_the_check_sees_a_wrong_way_import(tmp_path: Path) -> None:
    bad = tmp_path / "asyncq" / "brokers" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                   "    from asyncq.app import App\n"
                   "def f():\n    from ..worker import Worker\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "asyncq"
    try:
        assert _imports(bad) >= {"asyncq.app", "asyncq.worker"}
    finally:
        PACKAGE = saved
