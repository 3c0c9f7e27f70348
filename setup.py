"""Packaging glue that pyproject.toml cannot express: ship nodes/, workflows/ and resources/
inside the wheel as nodeforge/builtin/<name>, with every file and sub-folder they hold."""
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
BUILTIN = ("nodes", "workflows", "resources")

packages = find_packages(include=["nodeforge", "nodeforge.*"])
package_dir = {}
package_data = {}
for name in BUILTIN:
    folder = ROOT / name
    if not folder.is_dir():
        continue
    # Every sub-folder becomes a (data) package so that setuptools copies its files.
    for sub in sorted(p for p in [folder, *folder.rglob("*")] if p.is_dir() and "__pycache__" not in p.parts):
        rel = sub.relative_to(ROOT)
        pkg = "nodeforge.builtin." + ".".join(rel.parts)
        packages.append(pkg)
        package_dir[pkg] = str(rel)
        package_data[pkg] = ["*"]

setup(packages=packages, package_dir=package_dir, package_data=package_data)
