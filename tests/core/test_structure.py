"""The source stays readable as it grows: no function in nodeforge/ or the built-in node pack
nodes/ over 60 lines, and every file path docs/architecture.md names is there."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_FUNCTION_LINES = 60
_PATH = re.compile(r"^(nodeforge|nodes|tests|docs|workflows|resources|benchmarks|packaging)(/[\w.*-]+)*/?$"
                   r"|^[\w-]+\.(py|md|toml)$")


def _functions(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


@pytest.mark.parametrize("package_name, min_files", [("nodeforge", 50), ("nodes", 15)])
def test_no_function_is_longer_than_60_lines(package_name, min_files):
    package = ROOT / package_name
    if not (package / "__init__.py").is_file():
        pytest.skip("no source tree here")
    files = sorted(package.rglob("*.py"))
    assert len(files) > min_files
    too_long = [f"{path.relative_to(ROOT)}:{line} {name} ({count} lines)"
                for path in files for name, line, count in _functions(path) if count > MAX_FUNCTION_LINES]
    assert not too_long, "split these by responsibility: " + "; ".join(too_long)


def test_every_path_docs_architecture_names_exists():
    doc = ROOT / "docs" / "architecture.md"
    if not doc.is_file():
        pytest.skip("no docs here")
    quoted = re.findall(r"`([^`\n]+)`", doc.read_text(encoding="utf-8"))
    paths = sorted({q for q in quoted if _PATH.match(q)})
    assert len(paths) >= 40, paths
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"docs/architecture.md names paths that are not there: {missing}"
