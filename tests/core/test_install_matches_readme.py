"""The README's set-up command is what CI installs, and it is enough for every sampler (issue 13, item 10)."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]   # the checkout (README, .ci and pyproject are not in the wheel)


def _extras(text: str) -> list[set[str]]:
    return [set(m.split(",")) for m in re.findall(r'pip install (?:-q )?"\.\[([a-z,]+)\]"', text)]


def test_ci_installs_exactly_what_the_readme_says():
    root = ROOT
    readme = _extras((root / "README.md").read_text(encoding="utf-8"))
    ci = _extras((root / ".ci" / "run").read_text(encoding="utf-8"))
    assert readme and ci
    assert ci == [readme[0]] == [{"dev"}]


def test_torchsde_is_a_normal_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = [re.split(r"[<>=;\s\[]", dep)[0].lower() for dep in project["dependencies"]]
    assert "torchsde" in names
    assert not project["optional-dependencies"].get("sde")   # an empty alias at most
