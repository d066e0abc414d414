"""The benchmark scripts are run by hand, months apart: what they import from DynaKD must still be there (four of them
imported a name the bench had renamed, and failed at their first line)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).parents[2] / "benchmarks").rglob("*.py"))


def dynakd_imports(path: Path) -> list[tuple[str, str | None]]:
    """``(module, name)`` for each ``from dynakd... import name`` in ``path``; ``(module, None)`` for ``import``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "dynakd" \
                and node.level == 0:
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names if alias.name.split(".")[0] == "dynakd"]
    return found


def test_there_are_scripts():
    assert len(SCRIPTS) > 5


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(p.parents[2])))
def test_what_a_benchmark_imports_from_dynakd_exists(path):
    for module, name in dynakd_imports(path):
        imported = importlib.import_module(module)
        if name is not None and not hasattr(imported, name):
            importlib.import_module(f"{module}.{name}")  # (a submodule: ImportError where there is none)
