"""Which data files and metadata the bundle must carry, derived from what is installed.

Used by nodeforge.spec (and tests/packaging): no fixed package list. The rule:

1. The app's distributions are NodeForge's runtime dependency closure: the `dependencies` in
   pyproject.toml, then each installed distribution's own Requires-Dist, recursively (markers
   evaluated for this interpreter, extras left out: the app never asks for them).
2. Every distribution in the closure gets its metadata (`*.dist-info`): many check versions with
   importlib.metadata at import (transformers checks its dependencies' versions, kernels reads its
   own), and a missing one fails the first run with PackageNotFoundError. It is a few KB each.
3. Every distribution in the closure whose installed files (its RECORD) include non-Python files
   inside its import packages gets those files, at the same place relative to site-packages: a
   package may open them at import by `__file__`, importlib.resources or pkgutil (kernels reads
   `_internals/python_depends.json` next to its code; transformers and diffusers read JSON and
   text tables). Left out are only files nothing reads at run time: Python code (bundled as
   modules), native libraries (PyInstaller collects the ones that are loaded as binaries),
   build-time files (C/C++ headers, CMake files, static libraries, pkg-config files, type stubs)
   and the parts of Qt that PySide6's own hook collects or the spec excludes.

Run `python packaging/bundle_data.py` to print what the rule picks, without building.
"""
from __future__ import annotations

import fnmatch
import importlib.metadata as md
import re
import sys
from pathlib import Path, PurePosixPath

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent

# Files no package reads at run time (fnmatch against the file name, lower-cased).
_CODE = ("*.py", "*.pyc", "*.pyo", "*.pyd", "*.so", "*.so.*", "*.dylib", "*.dll", "*.exe")
_BUILD_TIME = ("*.h", "*.hpp", "*.hxx", "*.cuh", "*.inl", "*.c", "*.cc", "*.cpp", "*.f", "*.f90", "*.pyx", "*.pxd",
               "*.pxi", "*.pyi", "py.typed", "*.cmake", "cmakelists.txt", "*.a", "*.lib", "*.pc", "*.prl")
_NOT_READ = _CODE + _BUILD_TIME
# Folders inside a package that hold build-time files, programs or the package's own test suite.
_NOT_READ_DIRS = ("__pycache__", "include", "cmake", "pkgconfig", "bin", "tests", "test", "testing")
# Qt's own files: PySide6's PyInstaller hook collects the plugins, translations and QML the app uses
# (and leaves out the modules the spec excludes); copying the whole Qt tree would undo that.
_HOOKED_TREES = ("PySide6/Qt/", "PySide6/typesystems/", "PySide6/glue/", "PySide6/scripts/",
                 "PySide6/support/", "PySide6/doc/")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def root_requirements(root: Path = ROOT) -> list[str]:
    """NodeForge's own runtime dependencies: pyproject.toml's, or the installed metadata's."""
    try:
        import tomllib
        return list(tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"])
    except (ImportError, OSError, KeyError):
        return list(md.requires("nodeforge") or [])


def _wanted(requirement: Requirement) -> bool:
    return requirement.marker is None or requirement.marker.evaluate({"extra": ""})


def runtime_closure(requirements: list[str] | None = None) -> dict[str, md.Distribution]:
    """Installed distributions the app needs, by normalised name (not installed ones are skipped)."""
    todo = [Requirement(r) for r in (root_requirements() if requirements is None else requirements)]
    found: dict[str, md.Distribution] = {}
    while todo:
        requirement = todo.pop()
        name = _normal(requirement.name)
        if name in found or not _wanted(requirement):
            continue
        try:
            dist = md.distribution(requirement.name)
        except md.PackageNotFoundError:
            continue
        found[name] = dist
        todo += [Requirement(r) for r in (dist.requires or [])]
    return found


def _is_data(path: PurePosixPath) -> bool:
    if not path.parts or path.parts[0].endswith((".dist-info", ".egg-info", ".data")) or path.parts[0] == "..":
        return False
    if any(part in _NOT_READ_DIRS for part in path.parts[1:-1]):
        return False
    if any(str(path).startswith(tree) for tree in _HOOKED_TREES):
        return False
    name = path.name.lower()
    return not any(fnmatch.fnmatch(name, pattern) for pattern in _NOT_READ)


def _native(source: Path) -> bool:
    """A program or library whatever its name (Qt's tools, torch's test binaries): not data."""
    with source.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def data_files(dist: md.Distribution) -> list[tuple[str, str]]:
    """(installed file, folder in the bundle) for each file of `dist` the rule keeps."""
    out = []
    for record in dist.files or []:
        path = PurePosixPath(str(record))
        if len(path.parts) > 1 and _is_data(path):
            source = Path(dist.locate_file(record))
            if source.is_file() and not _native(source):
                out.append((str(source), str(path.parent)))
    return out


def bundle_datas(closure: dict[str, md.Distribution] | None = None,
                 excludes: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """Data files of every distribution in the closure that ships any, but not of modules the spec
    excludes (e.g. setuptools, which torch requires and the app never imports)."""
    closure = runtime_closure() if closure is None else closure
    skip = tuple(module.replace(".", "/") + "/" for module in excludes)
    return [entry for name in sorted(closure) for entry in data_files(closure[name])
            if not (entry[1] + "/").startswith(skip)]


def bundle_metadata(closure: dict[str, md.Distribution] | None = None) -> list[str]:
    """Distribution names whose metadata the bundle carries: the whole closure."""
    closure = runtime_closure() if closure is None else closure
    return sorted(closure[name].metadata["Name"] for name in closure)


def _report() -> None:
    closure = runtime_closure()
    print(f"{len(closure)} distributions in NodeForge's runtime closure (metadata for all)")
    for name in sorted(closure):
        files = data_files(closure[name])
        if files:
            size = sum(Path(source).stat().st_size for source, _ in files)
            print(f"  data: {closure[name].metadata['Name']} {closure[name].version}: {len(files)} files, "
                  f"{size / 1e6:.1f} MB")


if __name__ == "__main__":
    sys.exit(_report())
