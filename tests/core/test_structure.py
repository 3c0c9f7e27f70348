"""The source stays readable as it grows: every file path docs/architecture.md names is there."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_PATH = re.compile(r"^(nodeforge|nodes|tests|docs|workflows|resources|benchmarks|packaging)(/[\w.*-]+)*/?$"
                   r"|^[\w-]+\.(py|md|toml)$")


def test_every_path_docs_architecture_names_exists():
    doc = ROOT / "docs" / "architecture.md"
    if not doc.is_file():
        pytest.skip("no docs here")
    quoted = re.findall(r"`([^`\n]+)`", doc.read_text(encoding="utf-8"))
    paths = sorted({q for q in quoted if _PATH.match(q)})
    assert len(paths) >= 40, paths
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"docs/architecture.md names paths that are not there: {missing}"
